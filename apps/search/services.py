"""Keeping the index equal to the database: index a version's chunks, sync a document's access,
visibility and metadata onto its chunks, delete, rebuild, reconcile. Tasks call these.

The index holds the searchable chunks only (the published version of each published document):
every write sends whole chunks, and the backend deletes those that are not searchable."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction

from apps.documents.models import Document

from . import projection
from .backends import get_search_backend
from .backends.base import RebuildReport
from .types import ChunkRef


def index_version(*, version_id: int) -> int:
    return index_versions(version_ids=[version_id])


def index_versions(*, version_ids: list[int]) -> int:
    """Index the chunks of several versions in one write (one bulk request)."""
    chunks = list(projection.project(projection.chunks_of(version_id__in=version_ids)))
    get_search_backend().index_chunks(chunks)
    return len(chunks)


def sync_document(*, document_id: int) -> int:
    """Write every chunk of every version of the document as the database has it now: the published
    version's chunks with their current access and metadata, the others removed (by id: idempotent,
    and it works without update-by-query). Whole chunks, vectors included, from the chunk rows."""
    with transaction.atomic():
        # The document's row stays locked while its state is read and written to the index: a
        # sync that read an older state (a publish's) cannot write after a newer one (an archive's),
        # because the archive waits for this lock to commit, and its own sync reads after that.
        locked = Document.objects.across_tenants().select_for_update().filter(pk=document_id)  # a task's document id
        if locked.values_list("pk", flat=True).first() is None:
            return 0
        chunks = list(projection.project(projection.chunks_of(version__document_id=document_id)))
        get_search_backend().index_chunks(chunks)
    return len(chunks)


def sync_collection(*, collection_id: int, batch: int = 500) -> int:
    """A collection's grants changed: its documents that inherit them change with it. One query
    streams their chunks (the principals are computed once, for the collection), written in bulks."""
    chunks = projection.project(
        projection.chunks_of(
            version__document__collection_id=collection_id, version__document__has_own_grants=False
        ).iterator(chunk_size=batch)
    )
    backend, pending, count = get_search_backend(), [], 0
    for chunk in chunks:
        pending.append(chunk)
        if len(pending) == batch:
            backend.index_chunks(pending)
            count, pending = count + len(pending), []
    backend.index_chunks(pending)
    return count + len(pending)


def delete_chunks(*, refs: Sequence[ChunkRef]) -> int:
    get_search_backend().delete_chunks(list(refs))
    return len(refs)


def rebuild() -> RebuildReport:
    """A fresh index from the database's chunks, swapped in at once. No re-embedding: vectors are
    read from the chunk rows. A change committed while the rebuild streamed (a publish, an archive,
    a grant) may be missing from the new index, so a reconcile follows at once."""
    report = get_search_backend().rebuild(projection.all_chunks())
    reconcile(repair=True)
    return report


@dataclass(frozen=True)
class ReconcileReport:
    in_database: int
    in_index: int
    missing: int  # searchable in the database, not in the index
    stale: int  # in both, but the index differs (access, visibility, metadata or text)
    orphaned: int  # in the index, not searchable in the database (deleted, or no longer published)
    repaired: bool


def reconcile(*, repair: bool = True, batch: int = 500) -> ReconcileReport:
    """Compare every chunk of the database with the index; with `repair`, re-index what is missing
    or stale and delete what is orphaned."""
    backend = get_search_backend()
    backend.ensure_index()
    indexed = backend.fingerprints()
    counts: Counter[str] = Counter()
    seen: set[str] = set()
    pending: list = []
    for chunk in projection.all_chunks():  # searchable chunks only: anything else indexed is an orphan
        seen.add(chunk.chunk_id)
        state = indexed.get(chunk.chunk_id)
        if state is None or state[1] != chunk.fingerprint():
            counts["missing" if state is None else "stale"] += 1
            pending.append(chunk)
        if repair and len(pending) >= batch:
            backend.index_chunks(pending)
            pending = []
    orphans = [ChunkRef(chunk_id, tenant_id) for chunk_id, (tenant_id, _) in indexed.items() if chunk_id not in seen]
    if repair:
        backend.index_chunks(pending)
        backend.delete_chunks(orphans)
        backend.refresh()
    return ReconcileReport(
        in_database=len(seen),
        in_index=len(indexed),
        missing=counts["missing"],
        stale=counts["stale"],
        orphaned=len(orphans),
        repaired=repair,
    )
