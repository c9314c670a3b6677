"""Ingestion follows the documents app: a version uploaded (or sent back by an administrator) is
queued for ingestion once the upload's transaction commits, never before (the worker must find
the version row and its file). With the broker down the upload still succeeds: the version stays
pending and `requeue_stalled` sends it once the broker is back. Connected in IngestionConfig.ready()."""

from __future__ import annotations

from apps.core.queue import enqueue
from apps.documents import events as document_events


def _ingest(event: document_events.VersionUploaded | document_events.VersionRequeued) -> None:
    from .tasks import ingest_version

    enqueue(ingest_version, event.version_id)


def connect() -> None:
    document_events.subscribe(document_events.VersionUploaded, _ingest)
    document_events.subscribe(document_events.VersionRequeued, _ingest)
