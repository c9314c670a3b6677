"""Verify every tenant's audit hash chain (or one tenant's); name the first broken record.

    python manage.py audit_verify [--tenant SLUG]

Exit status 1 when a chain is broken."""

from django.core.management.base import BaseCommand, CommandError

from apps.audit.chain import verify_tenant
from apps.tenants.models import Tenant


class Command(BaseCommand):
    help = "Verify the audit hash chains; name the first broken record of each tenant."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Only this tenant (slug).")

    def handle(self, *args, tenant=None, **options):
        tenants = Tenant.objects.all()
        if tenant:
            tenants = tenants.filter(slug=tenant)
            if not tenants.exists():
                raise CommandError(f"No tenant '{tenant}'.")
        broken = 0
        for each in tenants:
            report = verify_tenant(each)
            if report.intact:
                self.stdout.write(f"{report.tenant_slug}: {report.records} records, chain intact")
            else:
                broken += 1
                self.stdout.write(f"{report.tenant_slug}: BROKEN at {report.first_break}")
        if broken:
            raise CommandError(f"{broken} tenant chain(s) broken.", returncode=1)
