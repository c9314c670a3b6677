"""Reads of the audit trail, always within one tenant: lists with filters, one record with the exact
text of its chunks, reverse look-up by document or version, and export rows."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, TypedDict

from django.db.models import OuterRef, QuerySet, Subquery

from apps.core.exceptions import NotFound
from apps.corpus.models import Chunk

from .models import AuditRecord, RetrievedChunk, Review

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


@dataclass(frozen=True)
class RecordFilters:
    username: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    document_id: int | None = None
    version_id: int | None = None
    kind: str | None = None
    outcome: str | None = None
    review_status: str | None = None  # reviewed, flagged, or "unreviewed"


class ReviewStatusAnnotation(TypedDict):
    review_status: str | None  # the latest review's status; None: not reviewed


def _with_review_status(
    records: QuerySet[AuditRecord],
) -> QuerySet[WithAnnotations[AuditRecord, ReviewStatusAnnotation]]:
    # Only reviews that are entries of the record's own chain count (audit_verify checks them).
    latest = Review.objects.filter(record=OuterRef("pk"), tenant=OuterRef("tenant")).order_by("-sequence")
    return records.annotate(review_status=Subquery(latest.values("status")[:1]))


def record_list(
    *, tenant, filters: RecordFilters = RecordFilters()
) -> QuerySet[WithAnnotations[AuditRecord, ReviewStatusAnnotation]]:
    records = _with_review_status(AuditRecord.objects.filter(tenant=tenant))
    if filters.username:
        records = records.filter(username=filters.username)
    if filters.date_from:
        records = records.filter(created_at__date__gte=filters.date_from)
    if filters.date_to:
        records = records.filter(created_at__date__lte=filters.date_to)
    if filters.document_id is not None:
        touched = RetrievedChunk.objects.filter(record__tenant=tenant, document_id=filters.document_id)
        records = records.filter(pk__in=touched.values("record_id"))
    if filters.version_id is not None:
        touched = RetrievedChunk.objects.filter(record__tenant=tenant, version_id=filters.version_id)
        records = records.filter(pk__in=touched.values("record_id"))
    if filters.kind:
        records = records.filter(kind=filters.kind)
    if filters.outcome:
        records = records.filter(outcome=filters.outcome)
    if filters.review_status == "unreviewed":
        records = records.filter(review_status__isnull=True)
    elif filters.review_status:
        records = records.filter(review_status=filters.review_status)
    return records.order_by("-created_at", "-pk")


def record_get(*, tenant, record_id: int) -> AuditRecord:
    record = _with_review_status(AuditRecord.objects.filter(tenant=tenant, pk=record_id)).first()
    if record is None:
        raise NotFound(f"No audit record {record_id}.", code="audit_record_not_found")
    return record


@dataclass(frozen=True)
class ChunkEvidence:
    """A retrieved chunk as the reviewer sees it: what the record says, and the exact text from the
    immutable version, checked against the hash the record kept."""

    entry: RetrievedChunk
    text: str | None  # None once the version was purged
    text_matches: bool | None  # the record's database hash is this text's
    start_offset: int | None
    end_offset: int | None
    served_matches: bool | None = None  # what the engine served was this text (not another copy)


def record_evidence(*, record: AuditRecord) -> list[ChunkEvidence]:
    entries = list(record.chunks.order_by("rank"))
    # The record's own tenant only: a chunk id the engine returned from elsewhere shows no text.
    rows = {
        c.id: c
        for c in Chunk.objects.filter(
            id__in=[e.chunk_id for e in entries],
            version_id__in=[e.version_id for e in entries],
            version__document__tenant_id=record.tenant_id,
        )
    }
    evidence = []
    for entry in entries:
        row = rows.get(entry.chunk_id)
        if row is None or row.version_id != entry.version_id:
            evidence.append(ChunkEvidence(entry, None, None, None, None))
        else:
            actual = hashlib.sha256(row.text.encode()).hexdigest()
            evidence.append(
                ChunkEvidence(
                    entry,
                    row.text,
                    actual == entry.text_sha256,
                    row.start_offset,
                    row.end_offset,
                    actual == entry.served_sha256 if entry.served_sha256 else None,
                )
            )
    return evidence


# --------------------------------------------------------------------------- export
EXPORT_COLUMNS = [
    "id",
    "sequence",
    "created_at",
    "kind",
    "outcome",
    "username",
    "api_key_prefix",
    "acting_for_user",
    "query",
    "filters",
    "parameters",
    "answer",
    "citations",
    "generator",
    "generator_model",
    "timings",
    "error",
    "review_status",
    "chunks",
    "principals",
    "context",
    "embedding_model",
    "search_backend",
    "index_generation",
    "previous_hash",
    "key_id",
    "record_hash",
]


def _export_row(record: AuditRecord) -> dict:
    row = {name: getattr(record, name, None) for name in EXPORT_COLUMNS if name != "chunks"}
    row["created_at"] = record.created_at.isoformat()
    row["chunks"] = [
        {
            "rank": c.rank,
            "chunk_id": c.chunk_id,
            "document_id": c.document_id,
            "version_id": c.version_id,
            "text_sha256": c.text_sha256,
            "served_sha256": c.served_sha256,
            "scores": c.scores,
            "passed_recheck": c.passed_recheck,
            "shown": c.shown,
            "cited": c.cited,
        }
        for c in record.chunks.all()
    ]
    return row


def export_jsonl(records: QuerySet[AuditRecord]) -> Iterator[str]:
    for record in records.prefetch_related("chunks").iterator(chunk_size=200):
        yield json.dumps(_export_row(record), ensure_ascii=False, default=str) + "\n"


# A cell starting with one of these is a formula to a spreadsheet (=HYPERLINK(...) leaking other
# cells, =cmd|...): OWASP's CSV injection advice is to prefix it with a single quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value):
    """`value`, with a leading quote if it is a string a spreadsheet would run as a formula."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def export_csv(records: QuerySet[AuditRecord]) -> Iterator[str]:
    """One row per record; structured fields (filters, chunks, …) as JSON in their cell. Every
    string cell is neutralised (csv_safe) for spreadsheets; the JSON lines export stays exact."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS)
    writer.writeheader()
    for record in records.prefetch_related("chunks").iterator(chunk_size=200):
        row = _export_row(record)
        writer.writerow(
            {k: csv_safe(json.dumps(v, default=str) if isinstance(v, (dict, list)) else v) for k, v in row.items()}
        )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()
