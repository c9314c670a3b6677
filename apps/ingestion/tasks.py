"""Celery tasks of ingestion: thin wrappers over services.py.

Transient faults (database or search engine unavailable) are retried with exponential backoff;
bad content is not (the service marks the version failed). Late acknowledgement (set globally)
hands the task of a worker killed mid-way to another worker, and the service is idempotent."""

from __future__ import annotations

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError

from apps.core.exceptions import TransientError

from . import services

TRANSIENT = (TransientError, OperationalError, InterfaceError, ConnectionError)


class IngestionTask(Task):
    autoretry_for = TRANSIENT
    retry_backoff = 2
    retry_backoff_max = 300
    retry_jitter = True
    max_retries = 8

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        version_id = kwargs.get("version_id", args[0] if args else None)
        if version_id is not None:
            kind = "temporarily unavailable services" if isinstance(exc, TRANSIENT) else "an internal error"
            services.version_fail(
                version_id=version_id, reason=f"Ingestion stopped after {self.request.retries} retries on {kind}: {exc}"
            )


@shared_task(base=IngestionTask, name="ingestion.ingest_version")
def ingest_version(version_id: int) -> dict:
    return services.ingest_version(version_id=version_id).__dict__


@shared_task(name="ingestion.requeue_stalled")
def requeue_stalled() -> list[int]:
    """Periodic (CELERY_BEAT_SCHEDULE): re-sends versions whose task never arrived (the broker was
    down at upload) or whose worker died mid-way. Ingestion is idempotent, so a duplicate is harmless."""
    return services.requeue_stalled()
