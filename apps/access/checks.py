"""Who may do what to a collection or document, answered in one place.

Tenant roles give defaults (owner/admin manage everything, editors change everything, readers and
compliance see only what is granted; an API key with documents:write manages everything); below that, django-guardian's per-object permissions on the
document, or on its collection when the document has no grants of its own.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet
from guardian.shortcuts import get_objects_for_user

from apps.core.exceptions import PermissionDenied
from apps.documents.models import Collection, Document
from apps.tenants.models import Role, Scope
from apps.tenants.resolution import TenantContext

from .levels import Level, codename
from .principals import grant_source

_ROLE_LEVEL = {Role.OWNER: Level.MANAGE, Role.ADMIN: Level.MANAGE, Role.EDITOR: Level.CHANGE}


def role_level(context: TenantContext) -> int:
    """The level a caller holds on every object of the tenant, whatever the grants say."""
    if context.membership is not None:
        return _ROLE_LEVEL.get(context.membership.role, 0)
    # A tenant app's key with documents:write runs the whole document lifecycle of its tenant.
    return Level.MANAGE if context.allows(Scope.DOCUMENTS_WRITE) else 0


def holds(context: TenantContext, obj: Collection | Document, level: Level) -> bool:
    if obj.tenant_id != context.tenant.pk:
        return False
    if role_level(context) >= level:
        return True
    source = obj if isinstance(obj, Collection) else grant_source(obj)
    return context.user.has_perm(f"documents.{codename(level, source._meta.model_name)}", source)


def require(context: TenantContext, obj: Collection | Document, level: Level) -> None:
    if not holds(context, obj, level):
        kind = obj._meta.verbose_name
        raise PermissionDenied(
            f"You need '{level.label}' access to this {kind} for that.",
            code="access_denied",
            extra={"required_level": level.label},
        )


def require_role_level(context: TenantContext, level: Level, action: str) -> None:
    """For actions on the tenant as a whole (creating a collection), where no object grants apply."""
    if role_level(context) < level:
        raise PermissionDenied(
            f"{action} needs the owner, admin or editor role (or an API key with documents:write).",
            code="access_denied",
            extra={"required_level": level.label},
        )


def visible_collections(context: TenantContext) -> QuerySet[Collection]:
    collections = Collection.objects.filter(tenant=context.tenant)
    if role_level(context) >= Level.VIEW:
        return collections
    return get_objects_for_user(context.user, "documents.view_collection", klass=collections, accept_global_perms=False)


def visible_documents(context: TenantContext) -> QuerySet[Document]:
    documents = Document.objects.filter(tenant=context.tenant)
    if role_level(context) >= Level.VIEW:
        return documents
    own = get_objects_for_user(
        context.user, "documents.view_document", klass=documents.filter(has_own_grants=True), accept_global_perms=False
    )
    readable_collections = visible_collections(context)
    return documents.filter(
        Q(pk__in=own.values("pk")) | Q(has_own_grants=False, collection__in=readable_collections.values("pk"))
    )
