"""How the index follows the database. Search subscribes to what the documents app announces
(connected in SearchConfig.ready()); each announcement queues its task once the surrounding
transaction commits, so the index never sees a change that was rolled back. Until the task lands,
the permission re-check at query time closes the window; a task lost to a broker outage is made
good by the periodic reconcile (CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction

from apps.core.queue import enqueue
from apps.documents import events as document_events

from .types import ChunkRef


def _document_changed(event: document_events.DocumentChanged) -> None:
    from .tasks import sync_document

    enqueue(sync_document, event.document_id)


def _collection_grants_changed(event: document_events.CollectionGrantsChanged) -> None:
    from .tasks import sync_collection

    enqueue(sync_collection, event.collection_id)


def chunks_removed(refs: Sequence[ChunkRef]) -> None:
    from .tasks import delete_chunks

    payload = [[ref.chunk_id, ref.tenant_id] for ref in refs]
    if payload:
        transaction.on_commit(lambda: enqueue(delete_chunks, payload))


def connect() -> None:
    document_events.subscribe(document_events.DocumentChanged, _document_changed)
    document_events.subscribe(document_events.CollectionGrantsChanged, _collection_grants_changed)
