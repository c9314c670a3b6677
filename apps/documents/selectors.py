"""Reads of collections and documents, always through the caller's access (apps/access/checks.py),
so nothing of another tenant, and nothing the caller may not read, is ever returned."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, TypedDict

from django.db.models import OuterRef, QuerySet, Subquery

from apps.access.checks import granted, visible
from apps.access.levels import Level
from apps.core.exceptions import NotFound
from apps.tenants.models import Membership
from apps.tenants.resolution import TenantContext

from .models import Collection, Document, DocumentEvent, DocumentState, DocumentVersion

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


def visible_collections(context: TenantContext) -> QuerySet[Collection]:
    return visible(context, Collection.objects.all())


def visible_documents(context: TenantContext) -> QuerySet[Document]:
    """What the caller may see, state included (Document.level_to_see)."""
    return visible(context, Document.objects.all())


def readable_published_documents(context: TenantContext) -> QuerySet[Document]:
    """The published documents the caller may read: what a search may show (its re-check). The
    same set as `visible_documents(context).filter(state=PUBLISHED)`, since grants are cumulative,
    from two guardian look-ups instead of six."""
    return granted(context, Document.objects.filter(state=DocumentState.PUBLISHED), Level.VIEW)


def collection_list(*, context: TenantContext) -> QuerySet[Collection]:
    return visible_collections(context)


def collection_get(*, context: TenantContext, collection_id: int) -> Collection:
    collection = collection_list(context=context).filter(pk=collection_id).first()
    if collection is None:
        raise NotFound(f"No collection {collection_id}.", code="collection_not_found")
    return collection


def document_list(
    *,
    context: TenantContext,
    collection_id: int | None = None,
    state: str | None = None,
    category: str | None = None,
    tag: str | None = None,
    title_contains: str | None = None,
    effective_from: date | None = None,
    effective_to: date | None = None,
) -> QuerySet[Document]:
    documents = visible_documents(context).select_related("collection", "published_version")
    if collection_id is not None:
        documents = documents.filter(collection_id=collection_id)
    if state:
        documents = documents.filter(state=state)
    if category:
        documents = documents.filter(category=category)
    if title_contains:
        documents = documents.filter(title__icontains=title_contains)
    if effective_from:
        documents = documents.filter(effective_date__gte=effective_from)
    if effective_to:
        documents = documents.filter(effective_date__lte=effective_to)
    if tag:
        # JSON containment differs by database; filtering the ids in Python keeps one code path.
        ids = [pk for pk, tags in documents.values_list("pk", "tags") if tag in (tags or [])]
        documents = documents.filter(pk__in=ids)
    return documents.order_by("-updated_at", "-pk")


def document_get(*, context: TenantContext, document_id: int) -> Document:
    document = (
        visible_documents(context).select_related("collection", "published_version").filter(pk=document_id).first()
    )
    if document is None:
        raise NotFound(f"No document {document_id}.", code="document_not_found")
    return document


def document_get_for_retention(*, context: TenantContext, document_id: int) -> Document:
    """Any document of the caller's tenant, whatever the grants and the state: legal hold and
    retention are the compliance team's, tenant-wide (the caller's authority is checked by
    services.require_retention_authority first)."""
    document = Document.objects.filter(tenant=context.tenant, pk=document_id).first()
    if document is None:
        raise NotFound(f"No document {document_id}.", code="document_not_found")
    return document


def version_get(*, document: Document, number: int) -> DocumentVersion:
    version = document.versions.filter(number=number).first()
    if version is None:
        raise NotFound(f"Document {document.pk} has no version {number}.", code="version_not_found")
    return version


def version_get_by_id(*, context: TenantContext, version_id: int) -> DocumentVersion:
    """A version by its global id, within the caller's tenant (used by rollback)."""
    version = DocumentVersion.objects.filter(pk=version_id, document__tenant=context.tenant).first()
    if version is None:
        raise NotFound(f"No version {version_id}.", code="version_not_found")
    return version


NOT_A_MEMBER = "not a member of this tenant"  # an actor with no membership in the document's tenant


class ActorName(TypedDict):
    actor_local_username: str | None


def with_actor_names(events: QuerySet[DocumentEvent]) -> QuerySet[WithAnnotations[DocumentEvent, ActorName]]:
    """Each event with `actor_local_username`: the actor's name in the document's tenant (None
    when they hold no membership there). The global username is never shown: it carries another
    tenant's slug (`ceo@globex`)."""
    local_name = Membership.objects.filter(
        tenant_id=OuterRef("document__tenant_id"), user_id=OuterRef("actor_id")
    ).values("username")[:1]
    return events.select_related("api_key").annotate(actor_local_username=Subquery(local_name))


def event_actor_label(event: WithAnnotations[DocumentEvent, ActorName]) -> str | None:
    """Who made the change, as the history shows it: the API key by its prefix, or the person by
    their tenant-local name (events from `with_actor_names`), or a neutral label."""
    if event.api_key is not None:  # no query for an event without a key (api_key_id None)
        return f"api-key:{event.api_key.prefix}"
    if event.actor_id is None:
        return None
    return event.actor_local_username or NOT_A_MEMBER


def document_history(*, document: Document) -> QuerySet[WithAnnotations[DocumentEvent, ActorName]]:
    return with_actor_names(document.events.select_related("version")).order_by("-created_at", "-id")
