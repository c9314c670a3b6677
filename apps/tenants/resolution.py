"""Tenant resolution, in one place.

Every API request is resolved to a `TenantContext` here and nowhere else:

* an API key → its own tenant (an ``X-Tenant`` header, if sent, must name that same tenant);
* a logged-in user → the tenant named by the ``X-Tenant`` header, where the user must hold an
  active membership.

The DRF permission class (permissions.TenantPermission) calls `resolve_tenant_context` on every
request, so no endpoint can forget it. Failures are typed errors with a message saying what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from apps.core.exceptions import NotAuthenticated, NotFound, PermissionDenied

from .actors import Actor
from .models import ApiKey, Membership, Role, Scope, Tenant

TENANT_HEADER = "X-Tenant"

# What a member may do, by role, in the same vocabulary as API key scopes. For documents the
# scope only opens the endpoints: a reader's grants (view/change/manage) decide per object.
_ALL_BUT_ACTING = frozenset(Scope.values) - {Scope.ACT_AS_USER}
ROLE_SCOPES: dict[str, frozenset[str]] = {
    Role.OWNER: _ALL_BUT_ACTING,
    Role.ADMIN: _ALL_BUT_ACTING,
    Role.EDITOR: frozenset({Scope.SEARCH, Scope.ASK, Scope.DOCUMENTS_READ, Scope.DOCUMENTS_WRITE, Scope.EVALUATION}),
    Role.READER: frozenset({Scope.SEARCH, Scope.ASK, Scope.DOCUMENTS_READ, Scope.DOCUMENTS_WRITE}),
    Role.COMPLIANCE: frozenset({Scope.AUDIT_READ}),
}

# Who reads the audit trail: the compliance role only (docs/audit.md, "Review"). Owners and admins
# hold audit:read in ROLE_SCOPES so that they may give the compliance role, but may not use it: the
# audit API refuses them (apps/audit/api.py compliance_context), and key creation refuses them a
# key with it (services.api_key_create), since a key never carries a scope its creator's role may
# not use itself. This is the one place that rule is written.
AUDIT_ROLES = frozenset({Role.COMPLIANCE})
_SCOPES_FOR_ROLES_ONLY: dict[str, frozenset[str]] = {Scope.AUDIT_READ: AUDIT_ROLES}


def role_may_use(role: str, scope: str) -> bool:
    """May a member of `role` use `scope` themselves (not only hand it on with a role)?"""
    if scope not in ROLE_SCOPES[role]:
        return False
    only = _SCOPES_FOR_ROLES_ONLY.get(scope)
    return only is None or role in only


@dataclass(frozen=True)
class TenantContext:
    """Who is acting, for which tenant, allowed to do what."""

    tenant: Tenant
    user: AbstractBaseUser  # a member, or the API key's own service user
    api_key: ApiKey | None
    membership: Membership | None
    scopes: frozenset[str]

    @property
    def role(self) -> str | None:
        """The caller's member role; None for an API key acting as itself."""
        return self.membership.role if self.membership else None

    @property
    def actor(self) -> Actor:
        return Actor(user=self.user, api_key=self.api_key)

    def allows(self, scope: str) -> bool:
        return scope in self.scopes

    def require(self, scope: str) -> None:
        if not self.allows(scope):
            who = f"API key '{self.api_key.name}'" if self.api_key else f"role '{self.membership.role}'"
            raise PermissionDenied(
                f"This needs the '{scope}' scope, which {who} does not have.",
                code="scope_missing",
                extra={"required_scope": scope, "scopes": sorted(self.scopes)},
            )


def _require_active(tenant: Tenant) -> None:
    if not tenant.is_active:
        raise PermissionDenied(f"Tenant '{tenant.slug}' is inactive.", code="tenant_inactive")


def resolve_tenant_context(
    *, user: AbstractBaseUser | AnonymousUser | None, api_key: ApiKey | None, tenant_slug: str | None
) -> TenantContext:
    tenant_slug = (tenant_slug or "").strip() or None

    if api_key is not None:
        tenant = api_key.tenant
        if tenant_slug is not None and tenant_slug != tenant.slug:
            raise PermissionDenied(
                f"This API key belongs to another tenant than '{tenant_slug}': drop the "
                f"{TENANT_HEADER} header or use a key of that tenant.",
                code="tenant_mismatch",
            )
        _require_active(tenant)
        return TenantContext(
            tenant=tenant,
            user=api_key.service_user,
            api_key=api_key,
            membership=None,
            scopes=frozenset(api_key.scopes),
        )

    if user is None or not user.is_authenticated:
        raise NotAuthenticated(
            "Authentication required: send 'Authorization: Api-Key <key>', or log in and name "
            f"the tenant in the {TENANT_HEADER} header.",
        )
    if tenant_slug is None:
        raise PermissionDenied(
            f"Name the tenant in the {TENANT_HEADER} header (its slug).",
            code="tenant_header_missing",
            extra={"your_tenants": sorted(user.memberships.filter(is_active=True).values_list("tenant__slug", flat=True))},
        )
    membership = (
        Membership.objects.select_related("tenant").filter(user=user, tenant__slug=tenant_slug).first()
    )
    if membership is None:
        # Same answer whether the tenant exists or not: membership is what reveals a tenant.
        raise NotFound(f"No tenant '{tenant_slug}' among your memberships.", code="tenant_not_found")
    _require_active(membership.tenant)
    if not membership.is_active:
        raise PermissionDenied(
            f"Your membership in tenant '{tenant_slug}' is deactivated.", code="membership_inactive"
        )
    return TenantContext(
        tenant=membership.tenant,
        user=user,
        api_key=None,
        membership=membership,
        scopes=ROLE_SCOPES[membership.role],
    )


def act_for_user(context: TenantContext, username: str) -> TenantContext:
    """An API key acting for a named member of its tenant: that member's access applies (their
    grants, groups and role), within what both the key and the member's role allow. Audit records
    keep both the key and the member."""
    if context.api_key is None:
        raise PermissionDenied(
            "Only an API key can act for another user; signed-in members act as themselves.", code="act_as_user_denied"
        )
    context.require(Scope.ACT_AS_USER)
    membership = (
        Membership.objects.select_related("user", "tenant")
        .filter(tenant=context.tenant, username=username, is_active=True)
        .first()
    )
    if membership is None:
        raise NotFound(f"No active member '{username}' in tenant '{context.tenant.slug}'.", code="user_not_found")
    return TenantContext(
        tenant=context.tenant,
        user=membership.user,
        api_key=context.api_key,
        membership=membership,
        scopes=context.scopes & ROLE_SCOPES[membership.role],
    )


def member_context(membership: Membership) -> TenantContext:
    """A member's context outside a request (commands, evaluation runs): their role's scopes."""
    _require_active(membership.tenant)
    if not membership.is_active:
        raise PermissionDenied(f"Member '{membership.username}' is deactivated.", code="membership_inactive")
    return TenantContext(tenant=membership.tenant, user=membership.user, api_key=None, membership=membership,
                         scopes=ROLE_SCOPES[membership.role])
