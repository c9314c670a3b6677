"""What each operation on a collection or a document needs of its caller, in one place: the API
calls these `check_*` functions before a service, and so does anything else that acts for a
tenant context. The levels and how they are held (roles, grants, inheritance, states) are
access's (apps/access/checks.py); which level an operation takes is the documents app's.

Who may set legal hold and retention at all is a rule of the service itself
(services.retention_authority), since the admin site and commands change them without a context.
"""

from __future__ import annotations

from collections.abc import Collection as Fields
from enum import StrEnum

from django.db.models import QuerySet

from apps.access.checks import check_level, check_role_level, holds
from apps.access.levels import Level
from apps.tenants.resolution import TenantContext

from .models import Collection, Document, DocumentVersion
from .services import RETENTION_FIELDS


class Action(StrEnum):
    VIEW = "view"
    UPDATE = "update"  # metadata; a collection's name and description
    HISTORY = "history"
    UPLOAD = "upload"
    PUBLISH = "publish"  # publish, roll back
    LIFECYCLE = "lifecycle"  # archive, unarchive, delete, purge
    GRANTS = "grants"  # read or change who may do all this


_LEVEL = {
    Action.VIEW: Level.VIEW,
    Action.UPDATE: Level.CHANGE,
    Action.HISTORY: Level.CHANGE,
    Action.UPLOAD: Level.CHANGE,
    Action.PUBLISH: Level.MANAGE,
    Action.LIFECYCLE: Level.MANAGE,
    Action.GRANTS: Level.MANAGE,
}

# Fields whose mere presence makes a create, an update or an upload a manager's decision:
# publishing (even deferred, when ready) and what decides a purge.
MANAGING_FIELDS = RETENTION_FIELDS | {"publish_when_ready"}


def _level(action: Action, fields: Fields[str]) -> Level:
    level = _LEVEL[action]
    if action in (Action.UPDATE, Action.UPLOAD) and MANAGING_FIELDS & set(fields):
        return Level.MANAGE
    return level


def check_collection_create(context: TenantContext) -> None:
    check_role_level(context, Level.CHANGE, "Creating a collection")


def check_collection(context: TenantContext, collection: Collection, action: Action) -> None:
    check_level(context, collection, _level(action, ()))


def check_document_create(context: TenantContext, collection: Collection, fields: Fields[str]) -> None:
    """Creating a document changes its collection; with a managing field it needs manage there."""
    check_level(context, collection, _level(Action.UPDATE, fields))


def check_document(context: TenantContext, document: Document, action: Action, fields: Fields[str] = ()) -> None:
    """`fields`: the names sent with an update or an upload (`publish_when_ready` counts only when
    true: pass it only then)."""
    check_level(context, document, _level(action, fields))


def readable_versions(context: TenantContext, document: Document) -> QuerySet[DocumentVersion]:
    """The versions the caller may see: all of them for those who may change the document; the
    published one only for readers with `view` (drafts of new versions are not theirs)."""
    versions = document.versions.order_by("-number")
    if holds(context, document, Level.CHANGE):
        return versions
    if document.published_version_id is None:
        return versions.none()
    return versions.filter(pk=document.published_version_id)
