"""Remove audit records older than AUDIT_RETENTION_DAYS (run it daily, e.g. from cron or Celery
beat). Does nothing when no retention is set. The chains stay verifiable."""

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.audit.services import retention_purge_all


class Command(BaseCommand):
    help = "Purge audit records past the retention period."

    def handle(self, *args, **options):
        if not settings.AUDIT["RETENTION_DAYS"]:
            self.stdout.write("AUDIT_RETENTION_DAYS is not set: records are kept forever.")
            return
        for report in retention_purge_all():
            if report.records:
                self.stdout.write(f"{report.tenant}: purged {report.records} records through sequence {report.through_sequence}")
