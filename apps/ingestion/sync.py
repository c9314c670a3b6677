"""Starting ingestion: queued once the upload's transaction commits, never before (the worker
must find the version row and its file). With the broker down the upload still succeeds: the
version stays pending and `requeue_stalled` sends it once the broker is back."""

from django.db import transaction

from apps.core.queue import enqueue


def version_uploaded(version_id: int) -> None:
    from .tasks import ingest_version

    transaction.on_commit(lambda: enqueue(ingest_version, version_id))
