"""Principals: the strings that say who may read a chunk in the search index, and which of them
a caller holds. A caller may read a document iff the two sets intersect.

    user:<user id>          a user (a member, or an API key's service user)
    group:<auth group id>   a tenant group
    tenant:<id>:all         whoever reads every document of tenant <id>: owners, admins, editors,
                            and API keys with documents:write (every document carries it)

Group membership is resolved at query time (`context_principals`), so a change in membership
takes effect on the next query without touching the index.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.contrib.auth.models import Group
from django.db.models import QuerySet
from guardian.shortcuts import get_groups_with_perms, get_users_with_perms

from apps.tenants.models import Role, Scope, Tenant
from apps.tenants.resolution import TenantContext

from .checks import grants_holder
from .levels import Level, codename, model_name_of

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Roles that read (and change) every document of their tenant, whatever the grants say.
TENANT_WIDE_ROLES = (Role.OWNER, Role.ADMIN, Role.EDITOR)


def tenant_wide(tenant_id: int) -> str:
    # Qualified by tenant, so no principal of one tenant ever matches another tenant's chunks,
    # even before the backend's tenant filter.
    return f"tenant:{tenant_id}:all"


def document_reader_principals(document: Any) -> list[str]:
    """Everyone who may read this document, as index principals (for the search index)."""
    source = grants_holder(document)  # the same rule the checks use: one declaration on the model
    perm = codename(Level.VIEW, model_name_of(source))
    # guardian's annotations do not follow attach_perms: without it, users; with it, {group: [codename, ...]}.
    users = cast(
        "QuerySet[User]",
        get_users_with_perms(source, only_with_perms_in=[perm], with_group_users=False, with_superusers=False),
    )
    groups = cast("dict[Group, list[str]]", get_groups_with_perms(source, attach_perms=True))
    principals = [tenant_wide(document.tenant_id)]
    principals += sorted(f"user:{user.pk}" for user in users)
    principals += sorted(f"group:{group.pk}" for group, perms in groups.items() if perm in perms)
    return principals


def user_principals(*, user: User, tenant: Tenant, reads_everything: bool) -> list[str]:
    """What a user holds in a tenant: themselves, the tenant's groups they are in, and
    `tenant:<id>:all` when their role reads everything."""
    principals = [f"user:{user.pk}"]
    group_ids = user.groups.filter(tenant_group__tenant=tenant).values_list("pk", flat=True)
    principals += sorted(f"group:{pk}" for pk in group_ids)
    if reads_everything:
        principals.append(tenant_wide(tenant.pk))
    return principals


def context_principals(context: TenantContext) -> list[str]:
    """The principals of a request's caller: a member, or an API key as its service user (a key
    that may write documents manages, and so reads, the whole tenant)."""
    if context.membership is not None:
        reads_everything = context.membership.role in TENANT_WIDE_ROLES
    else:
        reads_everything = context.allows(Scope.DOCUMENTS_WRITE)
    return user_principals(user=context.user, tenant=context.tenant, reads_everything=reads_everything)
