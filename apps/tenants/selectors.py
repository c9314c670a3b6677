"""Reads for tenants, members, groups and API keys. Every look-up is scoped by tenant: an id of
another tenant answers NotFound, exactly like an id that does not exist."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core.exceptions import NotFound

from .models import ApiKey, DirectoryEvent, Membership, TenantGroup


def membership_list(*, tenant) -> QuerySet[Membership]:
    return Membership.objects.filter(tenant=tenant).select_related("user")


def membership_get(*, tenant, username: str) -> Membership:
    membership = membership_list(tenant=tenant).filter(username=username).first()
    if membership is None:
        raise NotFound(f"No user '{username}' in this tenant.", code="user_not_found")
    return membership


def group_list(*, tenant) -> QuerySet[TenantGroup]:
    return TenantGroup.objects.filter(tenant=tenant).select_related("auth_group")


def group_get(*, tenant, group_id: int) -> TenantGroup:
    group = group_list(tenant=tenant).filter(pk=group_id).first()
    if group is None:
        raise NotFound(f"No group {group_id} in this tenant.", code="group_not_found")
    return group


def group_members(*, group: TenantGroup) -> QuerySet[Membership]:
    return membership_list(tenant=group.tenant).filter(user__groups=group.auth_group)


def api_key_list(*, tenant) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(tenant=tenant)


def api_key_get(*, tenant, prefix: str) -> ApiKey:
    api_key = api_key_list(tenant=tenant).filter(prefix=prefix).first()
    if api_key is None:
        raise NotFound(f"No API key '{prefix}' in this tenant.", code="api_key_not_found")
    return api_key


def directory_event_list(
    *, tenant, member: str | None = None, group: str | None = None, kind: str | None = None
) -> QuerySet[DirectoryEvent]:
    """The tenant's directory history, newest first; `member` and `group` are names as recorded."""
    events = DirectoryEvent.objects.filter(tenant=tenant).order_by("-at", "-id")
    if member is not None:
        events = events.filter(member=member)
    if group is not None:
        events = events.filter(group=group)
    if kind is not None:
        events = events.filter(kind=kind)
    return events
