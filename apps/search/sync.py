"""How the index follows the database. Search subscribes to what the documents app and the corpus
announce (connected in SearchConfig.ready()). Changes to documents queue their task once the
surrounding transaction commits, so the index never sees a change that was rolled back; until the
task lands, the permission re-check at query time closes the window, and a task lost to a broker
outage is made good by the periodic reconcile (CELERY_BEAT_SCHEDULE). Chunks stored by ingestion
are indexed at once, inside the ingestion task (corpus/events.py says why)."""

from __future__ import annotations

from apps.core.queue import enqueue
from apps.corpus import events as corpus_events
from apps.documents import events as document_events

from . import services


def _document_changed(event: document_events.DocumentChanged) -> None:
    from .tasks import sync_document

    enqueue(sync_document, event.document_id)


def _collection_grants_changed(event: document_events.CollectionGrantsChanged) -> None:
    from .tasks import sync_collection

    enqueue(sync_collection, event.collection_id)


def _chunks_stored(event: corpus_events.ChunksStored) -> None:
    services.index_versions(version_ids=list(event.version_ids))


def _chunks_removed(event: corpus_events.ChunksRemoved) -> None:
    from .tasks import delete_chunks

    enqueue(delete_chunks, [[ref.chunk_id, ref.tenant_id] for ref in event.refs])


def connect() -> None:
    document_events.subscribe(document_events.DocumentChanged, _document_changed)
    document_events.subscribe(document_events.CollectionGrantsChanged, _collection_grants_changed)
    corpus_events.subscribe(corpus_events.ChunksStored, _chunks_stored, immediately=True)
    corpus_events.subscribe(corpus_events.ChunksRemoved, _chunks_removed)
