"""Reads of collections and documents, always through the caller's access (apps/access/checks.py),
so nothing of another tenant, and nothing the caller may not read, is ever returned."""

from __future__ import annotations

from datetime import date

from django.db.models import QuerySet

from apps.access.checks import visible_collections, visible_documents
from apps.core.exceptions import NotFound
from apps.tenants.resolution import TenantContext

from .models import Collection, Document, DocumentEvent, DocumentVersion


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
    document = visible_documents(context).select_related("collection", "published_version").filter(pk=document_id).first()
    if document is None:
        raise NotFound(f"No document {document_id}.", code="document_not_found")
    return document


def version_list(*, document: Document) -> QuerySet[DocumentVersion]:
    return document.versions.order_by("-number")


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


def document_history(*, document: Document) -> QuerySet[DocumentEvent]:
    return document.events.select_related("actor", "api_key", "version").order_by("-created_at", "-id")
