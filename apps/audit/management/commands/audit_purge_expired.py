"""Remove audit records older than AUDIT_RETENTION_DAYS (run it daily, e.g. from cron or Celery
beat). Does nothing when no retention is set. The chains stay verifiable. A chain that does not
verify is not purged (exit status 1)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.audit.services import retention_purge_all


class Command(BaseCommand):
    help = "Purge audit records past the retention period."

    def handle(self, *args, **options):
        if not settings.AUDIT["RETENTION_DAYS"]:
            self.stdout.write("AUDIT_RETENTION_DAYS is not set: records are kept forever.")
            return
        refused = 0
        for report in retention_purge_all():
            if report.refused:
                refused += 1
                self.stdout.write(f"{report.tenant}: REFUSED, {report.refused}")
            elif report.records:
                self.stdout.write(
                    f"{report.tenant}: purged {report.records} records through sequence {report.through_sequence}"
                )
        if refused:
            raise CommandError(f"{refused} tenant chain(s) not purged: run audit_verify.", returncode=1)
