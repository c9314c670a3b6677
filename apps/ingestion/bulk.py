"""Bulk ingestion: many files into one collection, embedded in shared batches across documents.

The service behind `manage.py ingest_bulk`, the BEIR import of the evaluation app and the
ingestion benchmark. Resumable: each item is keyed by its external id (a file's path in its
folder, or a BEIR `_id`); an item whose newest version is ready with the same content is skipped,
an item left half-done by an interrupted run is ingested again, and an item whose content changed
gets a new version (published when ready if asked, while the previous one keeps serving until then).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from apps.core.exceptions import ApplicationError
from apps.documents import services as document_services
from apps.documents.models import Collection, Document, DocumentState, DocumentVersion, IngestionStatus
from apps.tenants.actors import Actor

from . import services as ingestion_services

SUFFIXES = {".pdf", ".docx", ".html", ".htm", ".md", ".markdown", ".txt"}


@dataclass(frozen=True)
class BulkItem:
    external_id: str
    title: str
    filename: str
    content: bytes


@dataclass
class BulkReport:
    documents: int = 0  # ingested and ready
    chunks: int = 0
    skipped: int = 0  # unchanged and ready since an earlier run
    failed: int = 0  # uploaded, but ingestion failed (the version says why)
    refused: int = 0  # the upload itself was refused (unsupported or empty file, ...)
    published: int = 0  # skipped, but a draft until now: published as asked
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        seconds = max(self.seconds, 1e-9)
        return (
            f"{self.documents} documents, {self.chunks} chunks in {self.seconds:.1f} s: "
            f"{self.documents / seconds:.1f} documents/s, {self.chunks / seconds:.1f} chunks/s "
            f"(skipped {self.skipped} unchanged"
            + (f", of which {self.published} published now" if self.published else "")
            + f", {self.failed} failed, {self.refused} refused)"
        )


class _Known(NamedTuple):  # what the collection holds for an external id: its newest version
    state: str
    version_id: int
    status: str
    sha256: str


def folder_items(folder: Path) -> Iterator[BulkItem]:
    """Every supported file under `folder`, keyed by its path relative to it."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES):
        yield BulkItem(
            str(path.relative_to(folder)), path.stem.replace("-", " ").replace("_", " "), path.name, path.read_bytes()
        )


def beir_items(corpus: Path) -> Iterator[BulkItem]:
    """The documents of a BEIR corpus.jsonl, as text files whose first line is the title."""
    with corpus.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ApplicationError(f"{corpus.name} line {number} is not JSON: {exc}", code="bad_corpus") from exc
            if not isinstance(row, dict) or "_id" not in row:
                raise ApplicationError(f'{corpus.name} line {number} has no "_id".', code="bad_corpus")
            title, text = (row.get("title") or "").strip(), (row.get("text") or "").strip()
            body = text if not title or text.startswith(title) else f"{title}\n\n{text}"
            yield BulkItem(str(row["_id"]), title or f"Document {row['_id']}", f"{row['_id']}.txt", body.encode())


def source_items(source: Path) -> Iterator[BulkItem]:
    if source.is_dir():
        return folder_items(source)
    if source.is_file() and source.suffix == ".jsonl":
        return beir_items(source)
    raise ApplicationError(f"{source} is neither a folder nor a .jsonl corpus.", code="bad_source")


@transaction.atomic
def upload(*, collection: Collection, item: BulkItem, publish: bool) -> int:
    """The version of `item` to ingest: a new document, the newest version of an existing one when
    an interrupted run left it half-done with this content, or else a new version. Ingestion is
    left to the caller's batch."""
    actor = Actor(user=None)
    document = Document.objects.filter(
        tenant=collection.tenant_id, collection=collection, external_id=item.external_id
    ).first()
    file = SimpleUploadedFile(item.filename, item.content)
    if document is None:
        document = document_services.document_create(
            tenant=collection.tenant,
            collection=collection,
            title=item.title[:500],
            external_id=item.external_id,
            actor=actor,
            file=file,
            publish_when_ready=publish,
            ingest=False,
            change_note="bulk import",
        )
        return document.versions.get().pk
    newest = document.versions.order_by("-number").first()
    if newest is not None and newest.status != IngestionStatus.READY and newest.sha256 == _digest(item):
        return newest.pk  # left half-done by an interrupted run: ingest it again
    return document_services.version_upload(
        document=document, file=file, actor=actor, publish_when_ready=publish, ingest=False
    ).pk


def ingest_items(
    *,
    collection: Collection,
    items: Iterable[BulkItem],
    publish: bool = False,
    batch: int = 128,
    limit: int | None = None,
    progress: bool = True,
) -> BulkReport:
    """Upload and ingest `items` into `collection`, `batch` documents per embedding call. A refused
    upload or a failed ingestion is counted and reported, and the rest go on."""
    newest = {
        external_id: _Known(state, version_id, status, sha256)
        for external_id, state, version_id, status, sha256 in Document.objects.filter(
            tenant=collection.tenant_id, collection=collection
        )
        .exclude(external_id="")
        .order_by("external_id", "versions__number")
        .values_list("external_id", "state", "versions__id", "versions__status", "versions__sha256")
    }  # ordered by version number, so each document keeps its newest version's
    report = BulkReport()
    started = time.perf_counter()
    pending: list[int] = []
    bar = tqdm(desc="ingesting", unit="doc", disable=not progress)

    def flush() -> None:
        for result in ingestion_services.ingest_versions(version_ids=pending):
            if result.status == IngestionStatus.READY:
                report.documents += 1
                report.chunks += result.chunks
            else:
                report.failed += 1
                _problem(report, bar, f"failed: version {result.version_id}: {result.reason}")
        bar.update(len(pending))
        pending.clear()

    # Log lines (one per ingested version) go through the bar, so they do not tear it apart.
    with bar, logging_redirect_tqdm() if progress else nullcontext():
        for number, item in enumerate(items):
            if limit is not None and number >= limit:
                break
            known = newest.get(item.external_id)
            if known is not None and known.status == IngestionStatus.READY and known.sha256 == _digest(item):
                report.skipped += 1
                if publish and known.state == DocumentState.DRAFT:  # ingested by an earlier run without --publish
                    document_services.version_publish(
                        version=DocumentVersion.objects.for_tenant(collection.tenant_id).get(pk=known.version_id),
                        actor=Actor(user=None),
                        reason="bulk import",
                    )
                    report.published += 1
                bar.update(1)
                continue
            try:
                pending.append(upload(collection=collection, item=item, publish=publish))
            except ApplicationError as exc:
                report.refused += 1
                _problem(report, bar, f"refused {item.external_id}: {exc.message}")
                bar.update(1)
            if len(pending) >= batch:
                flush()
        if pending:
            flush()
    report.seconds = time.perf_counter() - started
    return report


def _digest(item: BulkItem) -> str:
    return hashlib.sha256(item.content).hexdigest()  # as DocumentVersion.sha256 holds it


def _problem(report: BulkReport, bar: tqdm, message: str) -> None:
    report.problems.append(message)
    bar.write(message)
