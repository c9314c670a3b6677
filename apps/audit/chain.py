"""The per-tenant hash chain: what a record's hash covers, and how a chain is verified."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from .models import AuditRecord, ChainHead, RetentionPurge

GENESIS = "0" * 64


def canonical(record: AuditRecord, chunks: list[dict]) -> bytes:
    """Everything a record says, in one canonical byte string (sorted keys, no whitespace)."""
    body = {
        "tenant": record.tenant_id,
        "sequence": record.sequence,
        "created_at": record.created_at.isoformat(),
        "kind": record.kind,
        "outcome": record.outcome,
        "user_id": record.user_id,
        "username": record.username,
        "api_key_id": record.api_key_id,
        "api_key_prefix": record.api_key_prefix,
        "acting_for_user": record.acting_for_user,
        "query": record.query,
        "filters": record.filters,
        "parameters": record.parameters,
        "answer": record.answer,
        "citations": record.citations,
        "generator": record.generator,
        "generator_model": record.generator_model,
        "timings": record.timings,
        "error": record.error,
        "previous_hash": record.previous_hash,
        "chunks": chunks,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def chunk_fields(chunk) -> dict:
    get = chunk.get if isinstance(chunk, dict) else lambda name: getattr(chunk, name)
    return {
        name: get(name)
        for name in ("rank", "chunk_id", "document_id", "version_id", "text_sha256", "scores",
                     "passed_recheck", "recheck_reason", "shown", "cited")
    }


def record_hash(record: AuditRecord, chunks: list[dict]) -> str:
    return hashlib.sha256(canonical(record, [chunk_fields(c) for c in chunks])).hexdigest()


@dataclass(frozen=True)
class Break:
    record_id: int | None
    sequence: int
    problem: str

    def __str__(self) -> str:
        where = f"record {self.record_id}" if self.record_id is not None else "a record"
        return f"{where} (sequence {self.sequence}): {self.problem}"


@dataclass(frozen=True)
class ChainReport:
    tenant_slug: str
    records: int
    first_break: Break | None

    @property
    def intact(self) -> bool:
        return self.first_break is None


def verify_tenant(tenant) -> ChainReport:
    """Walks the tenant's records in sequence; the first one whose content no longer matches its
    hash, whose link to its predecessor is broken, or whose predecessor is missing, is named."""
    anchor = RetentionPurge.objects.filter(tenant=tenant).order_by("-through_sequence").first()
    expected_previous = anchor.last_hash if anchor else GENESIS
    expected_sequence = (anchor.through_sequence if anchor else 0) + 1
    count = 0
    records = AuditRecord.objects.filter(tenant=tenant).order_by("sequence").prefetch_related("chunks")
    for record in records.iterator(chunk_size=500):
        count += 1
        if record.sequence != expected_sequence:
            return ChainReport(tenant.slug, count, Break(record.pk, expected_sequence,
                               f"missing: the chain jumps from {expected_sequence - 1} to {record.sequence} (a record was deleted)"))
        if record.previous_hash != expected_previous:
            return ChainReport(tenant.slug, count, Break(record.pk, record.sequence,
                               "its link to the previous record is broken (a record before it was altered or replaced)"))
        chunks = sorted(record.chunks.all(), key=lambda c: c.rank)
        if record_hash(record, chunks) != record.record_hash:
            return ChainReport(tenant.slug, count, Break(record.pk, record.sequence,
                               "its content no longer matches its hash (it was altered)"))
        expected_previous = record.record_hash
        expected_sequence += 1
    head = ChainHead.objects.filter(tenant=tenant).first()
    if head is not None and head.sequence >= expected_sequence:
        return ChainReport(tenant.slug, count, Break(None, expected_sequence,
                           f"missing: the chain ends at {expected_sequence - 1} but {head.sequence} records were written"))
    return ChainReport(tenant.slug, count, None)
