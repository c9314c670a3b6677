"""Celery tasks of the audit trail: thin wrappers over services.py."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from apps.tenants.models import Tenant

from . import services


@shared_task(name="audit.purge_expired")
def purge_expired() -> dict[str, int]:
    """Daily (CELERY_BEAT_SCHEDULE): records past AUDIT_RETENTION_DAYS; nothing when it is unset."""
    if not settings.AUDIT["RETENTION_DAYS"]:
        return {}
    return {tenant.slug: services.retention_purge(tenant=tenant).records for tenant in Tenant.objects.all()}
