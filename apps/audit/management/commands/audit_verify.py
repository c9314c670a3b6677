"""Verify every tenant's audit chain (or one tenant's); name the first bad sequence.

    python manage.py audit_verify [--tenant SLUG]

Checks the retention anchors (signed, within their policy), every record and review since the
newest anchor (consecutive, linked, keyed with a key of AUDIT_KEYS), the chain head, and every
signed checkpoint in the sink outside the database. Exit status 1 when any chain is broken."""

import time

from django.core.management.base import BaseCommand, CommandError

from apps.audit.chain import verify_tenant
from apps.audit.checkpoints import orphaned_folders
from apps.tenants.models import Tenant


class Command(BaseCommand):
    help = "Verify the audit chains against their keys and signed checkpoints; name the first bad sequence."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Only this tenant (slug).")

    def handle(self, *args, tenant=None, **options):
        tenants = Tenant.objects.order_by("slug")
        if tenant:
            tenants = tenants.filter(slug=tenant)
            if not tenants.exists():
                raise CommandError(f"No tenant '{tenant}'.")
        broken = entries = 0
        started = time.perf_counter()
        for each in tenants:
            try:
                report = verify_tenant(each)
            except Exception as exc:  # one unreadable chain must not hide the others
                broken += 1
                self.stdout.write(f"{each.slug}: BROKEN, verification failed: {exc!r}")
                continue
            entries += report.records + report.reviews
            if report.intact:
                self.stdout.write(
                    f"{report.tenant_slug}: {report.records} records, {report.reviews} reviews, chain intact, "
                    f"{report.checkpoints} checkpoints agree"
                )
            else:
                broken += 1
                self.stdout.write(f"{report.tenant_slug}: BROKEN at {report.first_break}")
            for note in report.notes:
                self.stdout.write(f"{report.tenant_slug}: note: {note}")
        if not tenant:
            for folder in orphaned_folders():
                broken += 1
                self.stdout.write(
                    f"tenant id {folder}: BROKEN, the checkpoint sink holds signed checkpoints of a "
                    "tenant the database no longer has (deleted with its trail)"
                )
        seconds = time.perf_counter() - started
        self.stderr.write(
            f"{entries} entries verified in {seconds:.2f} s ({entries / seconds if seconds else 0:,.0f} per second)"
        )
        if broken:
            raise CommandError(f"{broken} tenant chain(s) broken.", returncode=1)
