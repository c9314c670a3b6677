"""Write a signed checkpoint of every tenant's audit chain head (or one tenant's) to the sink
outside the database (AUDIT_CHECKPOINT_STORAGE). Celery beat does the same every
AUDIT_CHECKPOINT_EVERY seconds.

    python manage.py audit_checkpoint [--tenant SLUG] [--force]

Exit status 1 when a chain does not verify since its last checkpoint (nothing is signed then)."""

from django.core.management.base import BaseCommand, CommandError

from apps.audit.checkpoints import CheckpointReport, checkpoint_write
from apps.tenants.models import Tenant


class Command(BaseCommand):
    help = "Sign each tenant's audit chain head into the checkpoint sink."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Only this tenant (slug).")
        parser.add_argument("--force", action="store_true", help="Write one even when the head has not moved.")

    def handle(self, *args, tenant=None, force=False, **options):
        tenants = Tenant.objects.order_by("slug")
        if tenant:
            tenants = tenants.filter(slug=tenant)
            if not tenants.exists():
                raise CommandError(f"No tenant '{tenant}'.")
        refused = 0
        for each in tenants:
            try:
                report = checkpoint_write(tenant=each, force=force)
            except Exception as exc:  # one unreadable chain must not stop the others
                report = CheckpointReport(each.slug, None, refused=f"failed: {exc!r}")
            if report.refused:
                refused += 1
                self.stdout.write(f"{report.tenant}: REFUSED, {report.refused}")
            elif report.sequence is None:
                self.stdout.write(f"{report.tenant}: unchanged since the last checkpoint")
            else:
                self.stdout.write(f"{report.tenant}: checkpoint at {report.sequence} -> {report.name}")
        if refused:
            raise CommandError(f"{refused} tenant chain(s) not signed: run audit_verify.", returncode=1)
