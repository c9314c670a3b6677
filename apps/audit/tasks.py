"""Celery tasks of the audit trail: thin wrappers over services.py."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="audit.purge_expired")
def purge_expired() -> dict[str, int]:
    """Daily (CELERY_BEAT_SCHEDULE): records past AUDIT_RETENTION_DAYS; nothing when it is unset."""
    return {report.tenant: report.records for report in services.retention_purge_all()}
