"""Manage the search index: create it, rebuild it from the database (no re-embedding; the new
index is swapped in at once), or show its state."""

from django.core.management.base import BaseCommand, CommandError

from apps.search import projection, services
from apps.search.backends import get_search_backend
from apps.search.backends.base import SearchBackendError


class Command(BaseCommand):
    help = "Search index: create | rebuild | status"

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["create", "rebuild", "status"])

    def handle(self, *args, action, **options):
        backend = get_search_backend()
        try:
            if action == "create":
                backend.ensure_index()
                self.stdout.write(f"{backend.name}: index ready")
            elif action == "rebuild":
                report = services.rebuild()
                self.stdout.write(
                    f"{backend.name}: rebuilt {report.index} with {report.chunks} chunks in {report.seconds} s"
                )
            else:
                backend.ensure_index()
                indexed = backend.fingerprints()
                self.stdout.write(f"{backend.name}: {backend.health()}")
                searchable = projection.searchable_chunks_of().count()
                self.stdout.write(f"searchable chunks in the database: {searchable}, in the index: {len(indexed)}")
                if hasattr(backend, "analysis"):
                    self.stdout.write(f"English analysis: {backend.analysis()}")
        except SearchBackendError as exc:
            raise CommandError(str(exc)) from exc
