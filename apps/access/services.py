"""Grants: who may view, change or manage a collection or document (django-guardian)."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, Group
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from guardian.shortcuts import assign_perm, get_groups_with_perms, get_users_with_perms
from guardian.utils import get_group_obj_perms_model, get_user_obj_perms_model

from apps.documents.models import Collection, Document, DocumentEvent
from apps.search import sync as search_sync
from apps.tenants.actors import Actor

from .levels import Level, codename, codenames_up_to


@dataclass(frozen=True)
class Grant:
    principal: AbstractBaseUser | Group
    level: Level


def _clear(obj) -> None:
    content_type = ContentType.objects.get_for_model(obj)
    for model in (get_user_obj_perms_model(), get_group_obj_perms_model()):
        model.objects.filter(content_type=content_type, object_pk=str(obj.pk)).delete()


def grants_list(obj: Collection | Document) -> list[Grant]:
    """The grants made on this object itself (highest level per principal)."""
    model_name = obj._meta.model_name

    def highest(perms: list[str]) -> Level | None:
        held = [level for level in Level if codename(level, model_name) in perms]
        return max(held) if held else None

    grants = []
    for user, perms in get_users_with_perms(obj, attach_perms=True, with_group_users=False, with_superusers=False).items():
        if (level := highest(perms)) is not None:
            grants.append(Grant(user, level))
    for group, perms in get_groups_with_perms(obj, attach_perms=True).items():
        if (level := highest(perms)) is not None:
            grants.append(Grant(group, level))
    return grants


@transaction.atomic
def grants_replace(*, obj: Collection | Document, grants: list[Grant], actor: Actor) -> list[Grant]:
    """Make `grants` the complete set on `obj`. On a document this ends inheritance from its
    collection: from now on only the document's own grants count."""
    _clear(obj)
    model_name = obj._meta.model_name
    for grant in grants:
        for perm in codenames_up_to(grant.level, model_name):
            assign_perm(f"documents.{perm}", grant.principal, obj)
    if isinstance(obj, Document):
        Document.objects.filter(pk=obj.pk).update(has_own_grants=True)
        obj.has_own_grants = True
        _record(obj, actor, {"grants": [_describe(g) for g in grants]})
        search_sync.document_changed(obj.pk)
    else:
        search_sync.collection_grants_changed(obj.pk)
    return grants_list(obj)


@transaction.atomic
def document_grants_inherit(*, document: Document, actor: Actor) -> None:
    """Drop the document's own grants: it reads its collection's again."""
    _clear(document)
    Document.objects.filter(pk=document.pk).update(has_own_grants=False)
    document.has_own_grants = False
    _record(document, actor, {"grants": "inherited from collection"})
    search_sync.document_changed(document.pk)


def _describe(grant: Grant) -> dict:
    kind = "group" if isinstance(grant.principal, Group) else "user"
    return {kind: grant.principal.pk, "level": grant.level.label}


def _record(document: Document, actor: Actor, details: dict) -> None:
    DocumentEvent.objects.create(
        document=document, action=DocumentEvent.Action.GRANTS_CHANGED, actor=actor.user, api_key=actor.api_key, details=details
    )
