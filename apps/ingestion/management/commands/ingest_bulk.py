"""Bulk ingest: a folder of files, or a BEIR-format corpus.jsonl, into a tenant's collection.

Resumable: each item is keyed by its external id (the file's path in the folder, or the BEIR
`_id`); items already ingested are skipped, items left half-done are ingested again. Chunks are
embedded in shared batches across documents. Prints documents/s and chunks/s at the end.

    manage.py ingest_bulk --tenant acme --collection Handbook path/to/folder
    manage.py ingest_bulk --tenant acme --collection Cranfield ../shared/datasets/cranfield/corpus.jsonl --publish
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from tqdm import tqdm

from apps.core.exceptions import ApplicationError
from apps.documents import services as document_services
from apps.documents.models import Collection, Document, IngestionStatus
from apps.ingestion import services as ingestion_services
from apps.tenants.actors import Actor
from apps.tenants.models import Tenant

SUFFIXES = {".pdf", ".docx", ".html", ".htm", ".md", ".markdown", ".txt"}


def folder_items(folder: Path) -> Iterator[tuple[str, str, str, bytes]]:
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES):
        relative = str(path.relative_to(folder))
        yield relative, path.stem.replace("-", " ").replace("_", " "), path.name, path.read_bytes()


def beir_items(corpus: Path) -> Iterator[tuple[str, str, str, bytes]]:
    with corpus.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CommandError(f"{corpus.name} line {number} is not JSON: {exc}") from exc
            title, text = (row.get("title") or "").strip(), (row.get("text") or "").strip()
            body = text if not title or text.startswith(title) else f"{title}\n\n{text}"
            yield str(row["_id"]), title or f"Document {row['_id']}", f"{row['_id']}.txt", body.encode()


class Command(BaseCommand):
    help = "Ingest a folder of files or a BEIR corpus.jsonl into a tenant's collection (resumable)."

    def add_arguments(self, parser):
        parser.add_argument("source", help="A folder, or a BEIR corpus.jsonl file")
        parser.add_argument("--tenant", required=True, help="Tenant slug")
        parser.add_argument("--collection", required=True, help="Collection name (created if missing)")
        parser.add_argument("--publish", action="store_true", help="Publish each document once it is ready")
        parser.add_argument("--batch", type=int, default=128, help="Documents per embedding batch")
        parser.add_argument("--limit", type=int, default=None, help="Stop after this many items")

    def handle(self, *args, source, tenant, collection, publish, batch, limit, **options):
        tenant_obj = Tenant.objects.filter(slug=tenant).first()
        if tenant_obj is None:
            raise CommandError(f"No tenant '{tenant}'.")
        source_path = Path(source)
        if source_path.is_dir():
            items = folder_items(source_path)
        elif source_path.is_file() and source_path.suffix == ".jsonl":
            items = beir_items(source_path)
        else:
            raise CommandError(f"{source} is neither a folder nor a .jsonl corpus.")
        target = Collection.objects.filter(tenant=tenant_obj, name=collection).first() or document_services.collection_create(
            tenant=tenant_obj, name=collection
        )
        done = {
            ext: status
            for ext, status in Document.objects.filter(collection=target).exclude(external_id="").values_list(
                "external_id", "versions__status"
            )
        }
        started = time.perf_counter()
        counts = {"documents": 0, "chunks": 0, "skipped": 0, "failed": 0, "refused": 0}
        pending: list[int] = []
        bar = tqdm(desc="ingesting", unit="doc")

        def flush():
            for report in ingestion_services.ingest_versions(version_ids=pending):
                if report.status == IngestionStatus.READY:
                    counts["documents"] += 1
                    counts["chunks"] += report.chunks
                else:
                    counts["failed"] += 1
                    bar.write(f"failed: version {report.version_id}: {report.reason}")
            bar.update(len(pending))
            pending.clear()

        for number, (external_id, title, filename, content) in enumerate(items):
            if limit is not None and number >= limit:
                break
            if done.get(external_id) == IngestionStatus.READY:
                counts["skipped"] += 1
                bar.update(1)
                continue
            try:
                pending.append(self._upload(target, external_id, title, filename, content, publish))
            except ApplicationError as exc:
                counts["refused"] += 1
                bar.write(f"refused {external_id}: {exc.message}")
                bar.update(1)
            if len(pending) >= batch:
                flush()
        if pending:
            flush()
        bar.close()
        seconds = time.perf_counter() - started
        self.stdout.write(
            f"{counts['documents']} documents, {counts['chunks']} chunks in {seconds:.1f} s: "
            f"{counts['documents'] / seconds:.1f} documents/s, {counts['chunks'] / seconds:.1f} chunks/s "
            f"(skipped {counts['skipped']} already ingested, {counts['failed']} failed, {counts['refused']} refused)"
        )

    @staticmethod
    @transaction.atomic
    def _upload(collection: Collection, external_id: str, title: str, filename: str, content: bytes, publish: bool) -> int:
        actor = Actor(user=None)
        document = Document.objects.filter(collection=collection, external_id=external_id).first()
        upload = SimpleUploadedFile(filename, content)
        if document is None:
            document = document_services.document_create(
                tenant=collection.tenant, collection=collection, title=title[:500], external_id=external_id, actor=actor,
                file=upload, publish_when_ready=publish, ingest=False, change_note="bulk import",
            )
            return document.versions.get().pk
        latest = document.versions.order_by("-number").first()
        if latest is not None and latest.status != IngestionStatus.READY:
            return latest.pk  # left half-done by an interrupted run: ingest it again
        return document_services.version_upload(document=document, file=upload, actor=actor, publish_when_ready=publish, ingest=False).pk
