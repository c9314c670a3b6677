"""Celery tasks of the search index: thin wrappers over services.py. A search engine that is down
is a transient fault: retried with exponential backoff (and late acknowledgement, set globally)."""

from __future__ import annotations

from celery import shared_task

from . import services
from .backends.base import SearchBackendError
from .types import ChunkRef

RETRY = {
    "autoretry_for": (SearchBackendError,),
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 10,
}


@shared_task(name="search.sync_document", **RETRY)
def sync_document(document_id: int) -> int:
    return services.sync_document(document_id=document_id)


@shared_task(name="search.sync_collection", **RETRY)
def sync_collection(collection_id: int) -> int:
    return services.sync_collection(collection_id=collection_id)


@shared_task(name="search.delete_chunks", **RETRY)
def delete_chunks(refs: list[list]) -> int:
    return services.delete_chunks(refs=[ChunkRef(chunk_id, tenant_id) for chunk_id, tenant_id in refs])


@shared_task(name="search.reconcile", **RETRY)
def reconcile() -> dict:
    """Periodic (CELERY_BEAT_SCHEDULE): makes good any index update lost to a broker outage."""
    return services.reconcile(repair=True).__dict__
