"""Export a tenant's audit records as JSON lines or CSV, filtered like the API.

python manage.py audit_export --tenant acme [--output csv] [--from 2026-01-01] [--to ...]
    [--user NAME] [--document ID] [--document-version ID] [--file PATH]"""

import sys
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from apps.audit import selectors
from apps.tenants.models import Tenant


class Command(BaseCommand):
    help = "Export audit records (JSON lines or CSV)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--output", choices=["jsonl", "csv"], default="jsonl")
        parser.add_argument("--from", dest="date_from", type=date.fromisoformat)
        parser.add_argument("--to", dest="date_to", type=date.fromisoformat)
        parser.add_argument("--user")
        parser.add_argument("--document", type=int)
        parser.add_argument("--document-version", dest="document_version", type=int)
        parser.add_argument("--file", help="Write here instead of standard output.")

    def handle(self, *args, **options):
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant '{options['tenant']}'.")
        records = selectors.record_list(
            tenant=tenant,
            filters=selectors.RecordFilters(
                username=options["user"],
                date_from=options["date_from"],
                date_to=options["date_to"],
                document_id=options["document"],
                version_id=options["document_version"],
            ),
        )
        lines = selectors.export_csv(records) if options["output"] == "csv" else selectors.export_jsonl(records)
        out = open(options["file"], "w", encoding="utf-8", newline="") if options["file"] else sys.stdout  # noqa: SIM115 (closed in the finally below)
        try:
            for line in lines:
                out.write(line)
        finally:
            if options["file"]:
                out.close()
