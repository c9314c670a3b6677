"""What the rest of the platform calls when something the index depends on changed. Each call
queues its task once the surrounding transaction commits, so the index never sees a change that
was rolled back. Until the task lands, the permission re-check at query time closes the window;
a task lost to a broker outage is made good by the periodic reconcile (CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction

from apps.core.queue import enqueue

from .types import ChunkRef


def document_changed(document_id: int) -> None:
    from .tasks import sync_document

    transaction.on_commit(lambda: enqueue(sync_document, document_id))


def collection_grants_changed(collection_id: int) -> None:
    from .tasks import sync_collection

    transaction.on_commit(lambda: enqueue(sync_collection, collection_id))


def chunks_removed(refs: Sequence[ChunkRef]) -> None:
    from .tasks import delete_chunks

    payload = [[ref.chunk_id, ref.tenant_id] for ref in refs]
    if payload:
        transaction.on_commit(lambda: enqueue(delete_chunks, payload))
