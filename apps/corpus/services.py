"""Writes to the corpus that are not ingestion's own: forgetting versions whose content is gone."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from apps.documents import events as document_events

from . import events
from .models import Chunk, Section
from .types import ChunkRef


def refs_of(*, tenant_id: int, **filters: Any) -> list[ChunkRef]:
    """The tenant's chunks matching `filters` (Chunk field look-ups), by id and tenant."""
    rows = Chunk.objects.for_tenant(tenant_id).filter(**filters).values_list("id", flat=True)
    return [ChunkRef(chunk_id, tenant_id) for chunk_id in rows]


@transaction.atomic
def versions_forget(*, tenant_id: int, version_ids: Iterable[int]) -> int:
    """Delete the sections (with their sentences) and chunks, texts and vectors, of these versions
    of the tenant, and announce the chunks removed so the index drops them after commit. Returns how
    many chunks went."""
    ids = list(version_ids)
    refs = refs_of(tenant_id=tenant_id, version_id__in=ids)
    Chunk.objects.for_tenant(tenant_id).filter(version_id__in=ids).delete()
    Section.objects.for_tenant(tenant_id).filter(version_id__in=ids).delete()
    if refs:
        events.announce(events.ChunksRemoved(tuple(refs)))
    return len(refs)


def _document_purged(event: document_events.DocumentPurged) -> None:
    versions_forget(tenant_id=event.tenant_id, version_ids=event.version_ids)


def connect() -> None:
    # In the purge's transaction: a committed purge leaves no text or vector behind.
    document_events.subscribe(document_events.DocumentPurged, _document_purged, immediately=True)
