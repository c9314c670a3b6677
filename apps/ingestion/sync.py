"""Starting ingestion: queued once the upload's transaction commits, never before (the worker
must find the version row and its file)."""

from django.db import transaction


def version_uploaded(version_id: int) -> None:
    from .tasks import ingest_version

    transaction.on_commit(lambda: ingest_version.delay(version_id))
