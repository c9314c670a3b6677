"""Writes for tenants, members, groups and API keys. Each takes the tenant (or an object of it)
first and keyword-only arguments, and runs in one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from apps.core.exceptions import ApplicationError, Conflict, NotAuthenticated, PermissionDenied

from . import keys
from .actors import Actor
from .models import (
    ApiKey,
    DirectoryEvent,
    Membership,
    Role,
    Scope,
    Tenant,
    TenantGroup,
    tenant_username_validator,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

UserModel = get_user_model()

# last_used_at is written at most this often per key, so authentication is not a write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _record(
    tenant: Tenant,
    kind: str,
    actor: Actor | None,
    *,
    member: Membership | None = None,
    group: TenantGroup | None = None,
    details: dict | None = None,
) -> None:
    """The history of the tenant's directory (models.DirectoryEvent), in the change's own transaction.
    `actor` is None for the operator's commands and the platform's own changes."""
    DirectoryEvent.objects.create(
        tenant=tenant,
        kind=kind,
        member=member.username if member else "",
        group=group.name if group else "",
        details=details or {},
        actor=_actor_name(tenant, actor),
        actor_api_key_prefix=actor.api_key.prefix if actor and actor.api_key else "",
    )


def _actor_name(tenant: Tenant, actor: Actor | None) -> str:
    """The name the tenant knows the acting person by: their tenant-local username, else (a
    superuser on the admin site) the global one; empty for a key acting as itself, or nobody."""
    if actor is None or actor.user is None or (actor.api_key and actor.user.pk == actor.api_key.service_user_id):
        return ""
    membership = Membership.objects.filter(tenant=tenant, user=actor.user).first()
    return membership.username if membership else actor.user.get_username()


# --------------------------------------------------------------------------- tenants
@transaction.atomic
def tenant_create(*, slug: str, name: str, owner: User | None = None) -> Tenant:
    if Tenant.objects.filter(slug=slug).exists():
        raise Conflict(f"A tenant with slug '{slug}' already exists.", code="tenant_exists")
    tenant = Tenant(slug=slug, name=name.strip())
    try:
        tenant.full_clean()
    except ValidationError as exc:
        problems = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items())
        raise ApplicationError(
            f"Invalid tenant: {problems}", code="invalid_tenant", extra={"fields": exc.message_dict}
        ) from exc
    tenant.save()
    _group_create(tenant=tenant, name=TenantGroup.EVERYONE, is_everyone=True)
    if owner is not None:
        membership_add(tenant=tenant, user=owner, username=owner.get_username(), role=Role.OWNER)
    return tenant


@transaction.atomic
def tenant_set_active(*, tenant: Tenant, active: bool) -> bool:
    """Suspend (or lift the suspension of) a whole tenant: every request of its keys and members is
    refused from the next one on (resolution._require_active reads the flag on every request), and
    so is work a worker starts later for it (resolution.stored_caller_context). Nothing is deleted
    or revoked, so lifting it restores everything as it was. Returns whether anything changed."""
    locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
    changed = locked.is_active != active
    if changed:
        locked.is_active = active
        locked.save(update_fields=["is_active"])
    tenant.is_active = active
    return changed


# --------------------------------------------------------------------------- members
def _validate_username(username: str) -> None:
    try:
        tenant_username_validator(username)
    except ValidationError as exc:
        raise ApplicationError(f"Invalid username {username!r}: {exc.messages[0]}", code="invalid_username") from exc


def _validate_role(role: str) -> None:
    if role not in Role.values:
        raise ApplicationError(f"Unknown role {role!r}: use one of {', '.join(Role.values)}.", code="invalid_role")


def _require_can_grant(
    role: str, granting_scopes: frozenset[str] | None, *, action: str, granting_role: str | None = None
) -> None:
    """Nobody hands out, or takes away, a role holding more than they hold themselves, and only an
    owner gives or takes the owner role. `granting_scopes` None means a trusted caller (a command,
    a superuser); `granting_role` is the caller's own role (None for an API key)."""
    from .resolution import ROLE_SCOPES, reserved_scopes

    if granting_scopes is None:
        return
    if role == Role.OWNER and granting_role != Role.OWNER:
        raise PermissionDenied(f"Only an owner can {action} the role 'owner'.", code="role_escalation")
    reserved = reserved_scopes(role)
    if reserved and granting_role != Role.OWNER:
        raise PermissionDenied(
            f"Only an owner can {action} the role '{role}': it holds {', '.join(reserved)}, which only that role may "
            "use (the compliance team is the owner's to appoint).",
            code="role_escalation",
        )
    beyond = sorted(ROLE_SCOPES[role] - granting_scopes)
    if beyond:
        raise PermissionDenied(
            f"You cannot {action} the role '{role}': it holds scope(s) you do not ({', '.join(beyond)}).",
            code="role_escalation",
        )


@transaction.atomic
def membership_add(
    *,
    tenant: Tenant,
    user: User,
    username: str,
    role: str = Role.READER,
    granting_scopes: frozenset[str] | None = None,
    granting_role: str | None = None,
    actor: Actor | None = None,
) -> Membership:
    """Give an existing platform user a place in a tenant (a user may belong to several)."""
    _validate_username(username)
    _validate_role(role)
    _require_can_grant(role, granting_scopes, action="give", granting_role=granting_role)
    if Membership.objects.filter(tenant=tenant, username=username).exists():
        raise Conflict(f"A user named '{username}' already exists in this tenant.", code="username_taken")
    if Membership.objects.filter(tenant=tenant, user=user).exists():
        raise Conflict("That user is already a member of this tenant.", code="already_member")
    membership = Membership.objects.create(tenant=tenant, user=user, username=username, role=role)
    _join_everyone(membership)
    _record(tenant, DirectoryEvent.Kind.MEMBER_CREATED, actor, member=membership, details={"role": role})
    return membership


def _join_everyone(membership: Membership) -> None:
    everyone = TenantGroup.objects.filter(tenant=membership.tenant, is_everyone=True).first()
    if everyone is not None:
        membership.user.groups.add(everyone.auth_group)


def _internal_username(tenant: Tenant, username: str) -> str:
    # Django usernames are global; tenant-local names are not. "<name>@<tenant slug>" is readable
    # in the admin and cannot collide across tenants (a slug has no '@').
    candidate = f"{username}@{tenant.slug}"
    if len(candidate) > 150 or UserModel.objects.filter(username=candidate).exists():
        candidate = f"user-{uuid.uuid4().hex}"
    return candidate


@transaction.atomic
def member_create(
    *,
    tenant: Tenant,
    username: str,
    role: str = Role.READER,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    external_id: str = "",
    granting_scopes: frozenset[str] | None = None,
    granting_role: str | None = None,
    actor: Actor | None = None,
) -> Membership:
    """A new person of this tenant, provisioned by the tenant app. They authenticate through the
    tenant app (which acts for them), so no password is set."""
    _validate_username(username)
    _validate_role(role)
    _require_can_grant(role, granting_scopes, action="give", granting_role=granting_role)
    _validate_person(email=email, first_name=first_name, last_name=last_name)
    if Membership.objects.filter(tenant=tenant, username=username).exists():
        raise Conflict(f"A user named '{username}' already exists in this tenant.", code="username_taken")
    user = UserModel(
        username=_internal_username(tenant, username), email=email, first_name=first_name, last_name=last_name
    )
    user.set_unusable_password()
    user.save()
    membership = Membership.objects.create(
        tenant=tenant, user=user, username=username, role=role, external_id=_validate_external_id(external_id)
    )
    _join_everyone(membership)
    _record(tenant, DirectoryEvent.Kind.MEMBER_CREATED, actor, member=membership, details={"role": role})
    return membership


def _validate_external_id(external_id: str) -> str:
    if len(external_id) > 255:
        raise ApplicationError("An external id has at most 255 characters.", code="invalid_external_id")
    return external_id


_MEMBER_FIELDS = {"email": 254, "first_name": 150, "last_name": 150}  # the auth user's column lengths


def _validate_person(**person: str) -> None:
    """What the API's serializers check, for every caller (the operator's commands, SCIM)."""
    for field, value in person.items():
        label = field.replace("_", " ")
        if len(value) > _MEMBER_FIELDS[field] or not value.isprintable():
            raise ApplicationError(
                f"A {label} has at most {_MEMBER_FIELDS[field]} printable characters.", code=f"invalid_{field}"
            )
    if person.get("email"):
        try:
            validate_email(person["email"])
        except ValidationError:
            raise ApplicationError(f"{person['email']!r} is not an email address.", code="invalid_email") from None


@transaction.atomic
def member_update(
    *,
    membership: Membership,
    username: str | None = None,
    external_id: str | None = None,
    granting_scopes: frozenset[str] | None = None,
    granting_role: str | None = None,
    actor: Actor | None = None,
    **person: str,
) -> Membership:
    """Change what the tenant knows a person by: their tenant-local username, email, first and last
    name, external id (None leaves a field as it is). Not the role or the active flag, which have
    their own services. Records what changed, and only if something did."""
    _require_can_grant(membership.role, granting_scopes, action="change a member with", granting_role=granting_role)
    unknown = set(person) - set(_MEMBER_FIELDS)
    if unknown:
        raise ApplicationError(f"Unknown member field(s): {', '.join(sorted(unknown))}.", code="invalid_field")
    changes: dict[str, list[str]] = {}
    if username is not None and username != membership.username:
        _validate_username(username)
        if Membership.objects.filter(tenant=membership.tenant, username=username).exists():
            raise Conflict(f"A user named '{username}' already exists in this tenant.", code="username_taken")
        changes["username"] = [membership.username, username]
        membership.username = username
    if external_id is not None and external_id != membership.external_id:
        changes["external_id"] = [membership.external_id, _validate_external_id(external_id)]
        membership.external_id = external_id
    _validate_person(**person)
    user = membership.user
    for field, value in person.items():
        if getattr(user, field) != value:
            changes[field] = [getattr(user, field), value]
            setattr(user, field, value)
    if changes:
        membership.save(update_fields=["username", "external_id"])
        user.save(update_fields=list(_MEMBER_FIELDS))
        _record(membership.tenant, DirectoryEvent.Kind.MEMBER_UPDATED, actor, member=membership, details=changes)
    return membership


@transaction.atomic
def member_set_active(
    *,
    membership: Membership,
    active: bool,
    granting_scopes: frozenset[str] | None = None,
    granting_role: str | None = None,
    actor: Actor | None = None,
) -> Membership:
    """Deactivate (or reactivate) a person in one tenant; their other memberships are untouched."""
    _require_can_grant(
        membership.role, granting_scopes, action="deactivate or reactivate a member with", granting_role=granting_role
    )
    if membership.is_active != active:
        membership.is_active = active
        membership.deactivated_at = None if active else timezone.now()
        membership.save(update_fields=["is_active", "deactivated_at"])
        kind = DirectoryEvent.Kind.MEMBER_REACTIVATED if active else DirectoryEvent.Kind.MEMBER_DEACTIVATED
        _record(membership.tenant, kind, actor, member=membership)
    return membership


@transaction.atomic
def member_set_role(
    *,
    membership: Membership,
    role: str,
    granting_scopes: frozenset[str] | None = None,
    granting_role: str | None = None,
    actor: Actor | None = None,
) -> Membership:
    _validate_role(role)
    _require_can_grant(membership.role, granting_scopes, action="change a member with", granting_role=granting_role)
    _require_can_grant(role, granting_scopes, action="give", granting_role=granting_role)
    if membership.role != role:
        details = {"role": [membership.role, role]}
        membership.role = role
        membership.save(update_fields=["role"])
        _record(membership.tenant, DirectoryEvent.Kind.ROLE_CHANGED, actor, member=membership, details=details)
    return membership


# --------------------------------------------------------------------------- groups
def _validate_group_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 150:
        raise ApplicationError("A group name needs 1 to 150 characters.", code="invalid_group_name")
    return name


@transaction.atomic
def group_create(*, tenant: Tenant, name: str, external_id: str = "", actor: Actor | None = None) -> TenantGroup:
    group = _group_create(tenant=tenant, name=_validate_group_name(name), external_id=external_id)
    _record(tenant, DirectoryEvent.Kind.GROUP_CREATED, actor, group=group)
    return group


def _group_create(*, tenant: Tenant, name: str, is_everyone: bool = False, external_id: str = "") -> TenantGroup:
    if TenantGroup.objects.filter(tenant=tenant, name=name).exists():
        raise Conflict(f"A group named '{name}' already exists in this tenant.", code="group_exists")
    auth_group = Group.objects.create(name=f"tenant-{tenant.pk}-{uuid.uuid4().hex}")
    return TenantGroup.objects.create(
        tenant=tenant,
        name=name,
        auth_group=auth_group,
        is_everyone=is_everyone,
        external_id=_validate_external_id(external_id),
    )


def _refuse_everyone(group: TenantGroup) -> None:
    if group.is_everyone:
        raise Conflict(
            "The 'everyone' group always holds every member of the tenant; it cannot be renamed, deleted or edited.",
            code="everyone_group",
        )


@transaction.atomic
def group_rename(*, group: TenantGroup, name: str, actor: Actor | None = None) -> TenantGroup:
    return group_update(group=group, name=name, actor=actor)


@transaction.atomic
def group_update(
    *, group: TenantGroup, name: str | None = None, external_id: str | None = None, actor: Actor | None = None
) -> TenantGroup:
    """Rename a group and/or change its external id (None leaves it); records what changed."""
    _refuse_everyone(group)
    changes: dict[str, list[str]] = {}
    if name is not None:
        name = _validate_group_name(name)
        if TenantGroup.objects.filter(tenant=group.tenant, name=name).exclude(pk=group.pk).exists():
            raise Conflict(f"A group named '{name}' already exists in this tenant.", code="group_exists")
        if name != group.name:
            changes["name"] = [group.name, name]
            group.name = name
    if external_id is not None and external_id != group.external_id:
        changes["external_id"] = [group.external_id, _validate_external_id(external_id)]
        group.external_id = external_id
    if changes:
        group.save(update_fields=["name", "external_id"])
        _record(group.tenant, DirectoryEvent.Kind.GROUP_UPDATED, actor, group=group, details=changes)
    return group


@transaction.atomic
def group_delete(*, group: TenantGroup, actor: Actor | None = None) -> None:
    _refuse_everyone(group)
    _record(group.tenant, DirectoryEvent.Kind.GROUP_DELETED, actor, group=group)
    group.auth_group.delete()  # cascades to the TenantGroup and to guardian's grants


def _same_tenant(group: TenantGroup, membership: Membership) -> None:
    if group.tenant_id != membership.tenant_id:
        raise PermissionDenied("A group can only hold members of its own tenant.", code="cross_tenant")


@transaction.atomic
def group_member_add(*, group: TenantGroup, membership: Membership, actor: Actor | None = None) -> None:
    _refuse_everyone(group)
    _same_tenant(group, membership)
    if not membership.user.groups.filter(pk=group.auth_group_id).exists():
        membership.user.groups.add(group.auth_group)
        _record(group.tenant, DirectoryEvent.Kind.GROUP_MEMBER_ADDED, actor, member=membership, group=group)


@transaction.atomic
def group_member_remove(*, group: TenantGroup, membership: Membership, actor: Actor | None = None) -> None:
    _refuse_everyone(group)
    _same_tenant(group, membership)
    if membership.user.groups.filter(pk=group.auth_group_id).exists():
        membership.user.groups.remove(group.auth_group)
        _record(group.tenant, DirectoryEvent.Kind.GROUP_MEMBER_REMOVED, actor, member=membership, group=group)


# --------------------------------------------------------------------------- API keys
def _validate_scopes(
    scopes: Iterable[str], *, granting_scopes: frozenset[str] | None, granting_role: str | None = None
) -> list[str]:
    scopes = sorted(set(scopes))
    unknown = [s for s in scopes if s not in Scope.values]
    if unknown:
        raise ApplicationError(
            f"Unknown scope(s) {', '.join(unknown)}: use any of {', '.join(Scope.values)}.",
            code="invalid_scope",
        )
    if not scopes:
        raise ApplicationError("An API key needs at least one scope.", code="invalid_scope")
    if granting_scopes is not None:
        beyond = [s for s in scopes if s not in granting_scopes]
        if beyond:
            raise PermissionDenied(
                f"You cannot grant scope(s) you do not hold: {', '.join(beyond)}.", code="scope_escalation"
            )
    if granting_role is not None:
        from .resolution import AUDIT_ROLES, RETENTION_ROLES, role_may_use

        unusable = [s for s in scopes if not role_may_use(granting_role, s)]
        if unusable:
            why = []
            if Scope.AUDIT_READ in unusable:
                why.append(
                    f"the audit trail is for the {', '.join(sorted(AUDIT_ROLES))} role only. Drop that scope, or ask a "
                    "platform operator (a superuser, on the admin site) to create the audit key for your "
                    "compliance team"
                )
            if Scope.DOCUMENTS_RETENTION in unusable:
                why.append(
                    f"legal holds and retention dates are set by the {' and '.join(sorted(RETENTION_ROLES))} "
                    "roles only. "
                    "Drop that scope, or ask an owner to create the key"
                )
            raise PermissionDenied(
                f"A key never carries a scope its creator's role may not use, and the role '{granting_role}' may not "
                f"use {', '.join(unusable)}: {'; '.join(why) or 'drop it'}.",
                code="scope_not_usable",
                extra={"scopes": unusable},
            )
    return scopes


@transaction.atomic
def api_key_create(
    *,
    tenant: Tenant,
    name: str,
    scopes: Iterable[str],
    expires_at: datetime | None = None,
    created_by: User | None = None,
    granting_scopes: frozenset[str] | None = None,
    granting_role: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its raw value, which exists only in this return value.

    `granting_scopes` are the creator's own scopes when a tenant member or key creates the key:
    nobody hands out more than they hold. `granting_role` is a member creator's role: a key never
    carries a scope that role may not use itself (resolution.role_may_use: audit:read is the
    compliance role's). Both None is a trusted caller (a superuser on the admin site, a command).
    """
    scope_list = _validate_scopes(scopes, granting_scopes=granting_scopes, granting_role=granting_role)
    if not name.strip() or len(name.strip()) > 100 or not name.isprintable():
        raise ApplicationError(
            "An API key needs a name of 1 to 100 printable characters (no line breaks).", code="invalid_name"
        )
    if expires_at is not None and expires_at <= timezone.now():
        raise ApplicationError("expires_at must be in the future.", code="invalid_expiry")
    generated = keys.generate()
    service_user = UserModel(username=f"apikey-{generated.prefix}")
    service_user.set_unusable_password()
    service_user.save()
    api_key = ApiKey.objects.create(
        tenant=tenant,
        name=name.strip(),
        prefix=generated.prefix,
        key_hash=generated.digest,
        scopes=scope_list,
        service_user=service_user,
        created_by=created_by if created_by is not None and created_by.is_authenticated else None,
        expires_at=expires_at,
    )
    return api_key, generated.raw


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def api_key_authenticate(*, raw_key: str) -> ApiKey:
    """The key behind a raw value, or NotAuthenticated saying why not (never which part matched)."""
    prefix = keys.parse_prefix(raw_key)
    if prefix is None:
        raise NotAuthenticated(f"Malformed API key: {keys.KEY_FORMAT_HINT}.", code="api_key_malformed")
    # Across tenants: the key is what says which tenant the caller is.
    api_key = ApiKey.objects.across_tenants().select_related("tenant", "service_user").filter(prefix=prefix).first()
    # Compare against a digest even when the prefix is unknown, so both cases take the same time.
    if not keys.matches(raw_key, api_key.key_hash if api_key else "0" * 64) or api_key is None:
        raise NotAuthenticated("Unknown API key.", code="api_key_invalid")
    if api_key.revoked_at is not None:
        raise NotAuthenticated(
            f"This API key was revoked on {api_key.revoked_at:%Y-%m-%d %H:%M} UTC.", code="api_key_revoked"
        )
    if api_key.is_expired:
        raise NotAuthenticated(
            f"This API key expired on {api_key.expires_at:%Y-%m-%d %H:%M} UTC.", code="api_key_expired"
        )
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.for_tenant(api_key.tenant_id).filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key
