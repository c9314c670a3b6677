"""Tenant resolution, in one place.

Every API request is resolved to a `TenantContext` here and nowhere else:

* an API key → its own tenant (an ``X-Tenant`` header, if sent, must name that same tenant);
* a logged-in user → the tenant named by the ``X-Tenant`` header, where the user must hold an
  active membership.

The DRF permission class (permissions.TenantPermission) calls `resolve_tenant_context` on every
request, so no endpoint can forget it. Failures are typed errors with a message saying what to fix.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from django.contrib.auth.models import AnonymousUser

from apps.core.exceptions import ApplicationError, NotAuthenticated, NotFound, PermissionDenied

from .actors import Actor
from .models import ApiKey, Membership, Role, Scope, Tenant

if TYPE_CHECKING:
    from django.contrib.auth.models import User

TENANT_HEADER = "X-Tenant"

# What a member may do, by role, in the same vocabulary as API key scopes. For documents the
# scope only opens the endpoints: a reader's grants (view/change/manage) decide per object.
_ALL_BUT_ACTING = frozenset(Scope.values) - {Scope.ACT_AS_USER}
ROLE_SCOPES: dict[str, frozenset[str]] = {
    Role.OWNER: _ALL_BUT_ACTING,
    Role.ADMIN: _ALL_BUT_ACTING,
    Role.EDITOR: frozenset({Scope.SEARCH, Scope.ASK, Scope.DOCUMENTS_READ, Scope.DOCUMENTS_WRITE, Scope.EVALUATION}),
    Role.READER: frozenset({Scope.SEARCH, Scope.ASK, Scope.DOCUMENTS_READ, Scope.DOCUMENTS_WRITE}),
    Role.COMPLIANCE: frozenset({Scope.AUDIT_READ, Scope.DOCUMENTS_RETENTION}),
}

# Who reads the audit trail: the compliance role only (docs/audit.md, "Review"). Owners and admins
# hold audit:read in ROLE_SCOPES (so the compliance role's scopes are a subset of theirs; only an
# owner gives that role: reserved_scopes, tenants.services._require_can_grant), but may not use it: the
# audit API refuses them (apps/audit/api.py compliance_context), and key creation refuses them a
# key with it (services.api_key_create), since a key never carries a scope its creator's role may
# not use itself. This is the one place that rule is written.
AUDIT_ROLES = frozenset({Role.COMPLIANCE})
# Who sets and lifts legal holds and retention dates: the roles the compliance team owns, owner and
# compliance (admins hold the scope without using it, like audit:read). Keys need the scope itself;
# apps/documents/services.py (retention_authority) enforces it below the API, for every caller.
RETENTION_ROLES = frozenset({Role.OWNER, Role.COMPLIANCE})
_SCOPES_FOR_ROLES_ONLY: dict[str, frozenset[str]] = {
    Scope.AUDIT_READ: AUDIT_ROLES,
    Scope.DOCUMENTS_RETENTION: RETENTION_ROLES,
}


def reserved_scopes(role: str) -> list[str]:
    """The scopes of `role` that only some roles may use (audit:read, documents:retention): an admin
    holds them to hand on, so only an owner gives or takes a role that carries them
    (tenants.services._require_can_grant), or an admin could make themselves the compliance team."""
    return sorted(scope for scope in ROLE_SCOPES[role] if scope in _SCOPES_FOR_ROLES_ONLY)


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
    user: User  # a member, or the API key's own service user
    api_key: ApiKey | None
    membership: Membership | None
    scopes: frozenset[str]
    # Set by act_for only: whom a retrieval runs for was resolved there (the audited answer
    # services refuse a context without it, so no path can retrieve around the act-as rule).
    acting_resolved: bool = False

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
            who = f"API key '{self.api_key.name}'" if self.api_key else f"role '{self.role}'"
            raise PermissionDenied(
                f"This needs the '{scope}' scope, which {who} does not have.",
                code="scope_missing",
                extra={"required_scope": scope, "scopes": sorted(self.scopes)},
            )


def _require_active(tenant: Tenant) -> None:
    if not tenant.is_active:
        raise PermissionDenied(f"Tenant '{tenant.slug}' is inactive.", code="tenant_inactive")


def resolve_tenant_context(
    *, user: User | AnonymousUser | None, api_key: ApiKey | None, tenant_slug: str | None
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
            extra={
                "your_tenants": sorted(
                    Membership.objects.of_user(user).filter(is_active=True).values_list("tenant__slug", flat=True)
                )
            },
        )
    membership = Membership.objects.select_related("tenant").filter(user=user, tenant__slug=tenant_slug).first()
    if membership is None:
        # Same answer whether the tenant exists or not: membership is what reveals a tenant.
        raise NotFound(f"No tenant '{tenant_slug}' among your memberships.", code="tenant_not_found")
    _require_active(membership.tenant)
    if not membership.is_active:
        raise PermissionDenied(f"Your membership in tenant '{tenant_slug}' is deactivated.", code="membership_inactive")
    return TenantContext(
        tenant=membership.tenant,
        user=user,
        api_key=None,
        membership=membership,
        scopes=ROLE_SCOPES[membership.role],
    )


def act_for(
    context: TenantContext, *, as_user: str | None = None, require: Iterable[str] = (), member_required: bool = False
) -> TenantContext:
    """Whom a retrieval runs for, resolved in one place: every path that retrieves (search and ask,
    with or without `as_user`, evaluation runs when submitted and again when a worker executes
    them, the `ask` and `evaluate_beir` commands) comes through here.

    * `context` is the caller: a member (a request's, or `member_context` outside one) or an API
      key acting as itself.
    * With `as_user`, an API key acts for that active member of its tenant: it needs
      `act_as_user`, and the result holds only the scopes both the key and the member's role
      allow. A member may name only themselves.
    * `member_required`: the retrieval must run as a member (evaluation runs), so a key must name one.
    * Every scope of `require` must be held by the result, for a member acting as themselves too.

    The result is marked `acting_resolved`; audit records of its retrievals name both the key and
    the member (apps/audit/services._who)."""
    if as_user:
        if context.api_key is None:
            if context.membership is None or as_user != context.membership.username:
                raise PermissionDenied(
                    "Only an API key can act for another user; signed-in members act as themselves.",
                    code="act_as_user_denied",
                )
            acting = context
        else:
            context.require(Scope.ACT_AS_USER)
            membership = (
                Membership.objects.select_related("user")
                .filter(tenant=context.tenant, username=as_user, is_active=True)
                .first()
            )
            if membership is None:
                raise NotFound(
                    f"No active member '{as_user}' in tenant '{context.tenant.slug}'.", code="user_not_found"
                )
            membership.tenant = context.tenant  # the row the filter named: no join to fetch it again
            acting = TenantContext(
                tenant=context.tenant,
                user=membership.user,
                api_key=context.api_key,
                membership=membership,
                scopes=context.scopes & ROLE_SCOPES[membership.role],
            )
    elif member_required and context.membership is None:
        raise ApplicationError(
            "An API key must name the member this runs as: as_user (needs the act_as_user scope).",
            code="as_user_required",
            extra={"fields": {"as_user": ["Required for API keys."]}},
        )
    else:
        acting = context
    for scope in require:
        acting.require(scope)
    return replace(acting, acting_resolved=True)


def act_for_user(context: TenantContext, username: str) -> TenantContext:
    """An API key acting for a named member of its tenant (act_for with `as_user`)."""
    if context.api_key is None:
        raise PermissionDenied(
            "Only an API key can act for another user; signed-in members act as themselves.", code="act_as_user_denied"
        )
    return act_for(context, as_user=username)


def member_context(membership: Membership) -> TenantContext:
    """A member as the caller outside a request (commands): their role's scopes. What they may
    retrieve is then decided by act_for, like a request's."""
    _require_active(membership.tenant)
    if not membership.is_active:
        raise PermissionDenied(f"Member '{membership.username}' is deactivated.", code="membership_inactive")
    return TenantContext(
        tenant=membership.tenant,
        user=membership.user,
        api_key=None,
        membership=membership,
        scopes=ROLE_SCOPES[membership.role],
    )


def stored_caller_context(
    *, tenant: Tenant, api_key: ApiKey | None, api_key_prefix: str = "", username: str = ""
) -> TenantContext:
    """The caller of work started earlier (an evaluation run a worker executes), checked again now
    as a request would be: the tenant active; a key not deleted, revoked or expired; a member who
    started it themselves still active. The member the work runs for is then resolved by act_for."""
    tenant.refresh_from_db(fields=["is_active"])
    _require_active(tenant)
    if api_key_prefix:
        if api_key is None:
            raise PermissionDenied(
                f"The API key {api_key_prefix}… that started this was deleted.", code="api_key_deleted"
            )
        api_key.refresh_from_db(fields=["revoked_at", "expires_at", "scopes"])
        if api_key.revoked_at is not None:
            raise PermissionDenied(
                f"The API key {api_key.prefix}… that started this was revoked on "
                f"{api_key.revoked_at:%Y-%m-%d %H:%M} UTC.",
                code="api_key_revoked",
            )
        if api_key.is_expired:
            raise PermissionDenied(
                f"The API key {api_key.prefix}… that started this expired on {api_key.expires_at:%Y-%m-%d %H:%M} UTC.",
                code="api_key_expired",
            )
        return TenantContext(
            tenant=tenant, user=api_key.service_user, api_key=api_key, membership=None, scopes=frozenset(api_key.scopes)
        )
    membership = Membership.objects.select_related("tenant", "user").filter(tenant=tenant, username=username).first()
    if membership is None:
        raise NotFound(f"No member '{username}' in tenant '{tenant.slug}'.", code="user_not_found")
    return member_context(membership)
