"""Export the embedding model's transformer to ONNX for the query runtime (EMBEDDING_QUERY_RUNTIME
onnx), check its vectors against torch's, and keep it where the embedder looks. bin/venv and the
image run it at install time; a file already there with this install's fingerprint is kept (it
was checked before it was renamed into place), any other is made again.

    manage.py export_query_encoder [--force] [--json]

Exit status 1 when the export is refused (its vectors are not torch's); the message says why.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.corpus.embedding import get_embedder
from apps.corpus.query_encoder import ExportRefused, export


class Command(BaseCommand):
    help = "Export the query encoder to ONNX (same weights), checked against torch's vectors."
    requires_system_checks: list[str] = []  # the check it would run is the one this command satisfies

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="Export again even when a checked file exists.")
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the report as JSON.")

    def handle(self, *args: object, force: bool, as_json: bool, **options: object) -> None:
        try:
            report = export(get_embedder(), force=force)
        except ExportRefused as error:
            raise CommandError(str(error)) from error
        except OSError as error:  # a read-only or missing directory: say which setting moves it
            raise CommandError(
                f"Cannot write the exported query encoder: {error}. Set EMBEDDING_ONNX_DIR to a writable "
                "directory, or EMBEDDING_QUERY_RUNTIME=torch."
            ) from error
        if as_json:
            self.stdout.write(json.dumps({**report.__dict__, "path": str(report.path)}))
            return
        if not report.exported:
            self.stdout.write(f"already exported: {report.path} (--force exports it again)")
            return
        self.stdout.write(
            f"exported: {report.path} ({report.size_bytes / 2**20:.1f} MiB, {report.seconds:.1f} s); "
            f"lowest cosine to torch's vectors over {report.texts_checked} texts: {report.min_cosine:.7f}"
        )
