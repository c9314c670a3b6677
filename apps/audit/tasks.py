"""Celery tasks of the audit trail: thin wrappers over services.py."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="audit.purge_expired")
def purge_expired() -> dict[str, int]:
    """Daily (CELERY_BEAT_SCHEDULE): records past AUDIT_RETENTION_DAYS; nothing when it is unset."""
    return {report.tenant: report.records for report in services.retention_purge_all()}


@shared_task(name="audit.checkpoint")
def checkpoint() -> dict[str, int | None]:
    """Every AUDIT_CHECKPOINT_EVERY seconds (beat): a signed checkpoint of each tenant's chain head
    whose head moved since the last one, into the sink outside the database."""
    from .checkpoints import checkpoint_write_all

    return {report.tenant: report.sequence for report in checkpoint_write_all()}
