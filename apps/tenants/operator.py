"""What the operator's commands (management/commands/tenant_create.py and its siblings) print: one
plain dict per object, the same in the JSON output and behind the text lines."""

from __future__ import annotations

from typing import Any

from apps.core.exceptions import NotFound, PermissionDenied

from .models import ApiKey, Membership, Tenant


def tenant_get(slug: str) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise NotFound(f"No tenant '{slug}'.", code="tenant_not_found")
    return tenant


def active_tenant_get(slug: str) -> Tenant:
    """The tenant, refusing a suspended one: what is made in it now would be refused anyway."""
    tenant = tenant_get(slug)
    if not tenant.is_active:
        raise PermissionDenied(
            f"Tenant '{tenant.slug}' is suspended: lift it first (tenant_deactivate {tenant.slug} --reactivate).",
            code="tenant_inactive",
        )
    return tenant


def tenant_summary(tenant: Tenant) -> dict[str, Any]:
    return {"slug": tenant.slug, "name": tenant.name, "is_active": tenant.is_active, "created_at": tenant.created_at}


def member_summary(membership: Membership, groups: list[str]) -> dict[str, Any]:
    return {
        "tenant": membership.tenant.slug,
        "username": membership.username,
        "role": membership.role,
        "email": membership.user.email,
        "is_active": membership.is_active,
        "groups": sorted(groups),
    }


def api_key_summary(api_key: ApiKey) -> dict[str, Any]:
    return {
        "tenant": api_key.tenant.slug,
        "name": api_key.name,
        "prefix": api_key.prefix,
        "scopes": api_key.scopes,
        "expires_at": api_key.expires_at,
    }
