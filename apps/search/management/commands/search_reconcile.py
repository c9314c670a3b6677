"""Compare the database's chunks with the search index and repair the drift: missing chunks are
indexed, stale ones re-indexed, orphaned ones deleted. Prints the counts."""

from django.core.management.base import BaseCommand, CommandError

from apps.search import services
from apps.search.backends.base import SearchBackendError


class Command(BaseCommand):
    help = "Find and repair drift between the database's chunks and the search index."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count only; change nothing.")

    def handle(self, *args, dry_run, **options):
        try:
            report = services.reconcile(repair=not dry_run)
        except SearchBackendError as exc:
            raise CommandError(str(exc)) from exc
        verb = "would repair" if dry_run else "repaired"
        self.stdout.write(
            f"database {report.in_database} chunks, index {report.in_index}: "
            f"missing {report.missing}, stale {report.stale}, orphaned {report.orphaned} ({verb})"
        )
