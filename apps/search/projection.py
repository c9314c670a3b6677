"""The search index as a projection of the database: chunk rows (text, vector) joined with their
document's current access, visibility and metadata. Rebuild, reconcile and every sync read here."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from django.db.models import F, QuerySet

from apps.access.principals import document_reader_principals
from apps.corpus.models import Chunk
from apps.documents.models import Document, DocumentState

from .types import IndexedChunk


def is_searchable(document: Document, version_id: int) -> bool:
    """Only the published version of a published document is ever found."""
    return document.state == DocumentState.PUBLISHED and document.published_version_id == version_id


def project(chunks: Iterable[Chunk]) -> Iterator[IndexedChunk]:
    # Principals depend only on where the grants live: the document itself, or (most often) its
    # collection, shared by every document that inherits them.
    principals: dict[tuple, tuple[str, ...]] = {}
    for chunk in chunks:
        document = chunk.version.document
        source = ("document", document.pk) if document.has_own_grants else ("collection", document.collection_id)
        if source not in principals:
            principals[source] = tuple(document_reader_principals(document))
        yield IndexedChunk(
            chunk_id=chunk.id,
            tenant_id=document.tenant_id,
            collection_id=document.collection_id,
            document_id=document.pk,
            version_id=chunk.version_id,
            published=is_searchable(document, chunk.version_id),
            principals=principals[source],
            title=document.title,
            text=chunk.text,
            vector=chunk.vector,
            category=document.category,
            tags=tuple(document.tags or ()),
            effective_date=document.effective_date,
        )


def chunks_of(**filters) -> QuerySet[Chunk]:
    # Across tenants: the index holds every tenant's chunks, each written under its own tenant id.
    return (
        Chunk.objects.across_tenants()
        .filter(**filters)
        .select_related("version__document")
        .order_by("version_id", "ordinal")
    )


def searchable_chunks_of(**filters) -> QuerySet[Chunk]:
    """The chunks the index holds: those of the published version of a published document."""
    return chunks_of(
        version__document__state=DocumentState.PUBLISHED,
        version__document__published_version_id=F("version_id"),
        **filters,
    )


def all_chunks() -> Iterator[IndexedChunk]:
    """Everything the index should hold, for rebuild and reconcile."""
    return project(searchable_chunks_of().iterator(chunk_size=1000))
