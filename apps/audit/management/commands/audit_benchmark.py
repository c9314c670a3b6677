"""The audit trail's cost, in one run: `record_append` (keyed chain, replay fields) against the
append it replaced (plain SHA-256, no replay fields), both with 20 retrieved chunks a record,
then the rate of `audit_verify` over what was written. A benchmark command, not a test.

    python manage.py audit_benchmark [--records 1000] [--output docs/benchmarks/audit.md]

Everything runs inside one transaction that is rolled back at the end (audit rows cannot be
deleted otherwise, by design), so the commit (PostgreSQL's WAL flush, the disk's figure, not the
platform's) is left out of both figures alike.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.test.utils import override_settings
from django.utils import timezone
from tqdm import tqdm

from apps.audit import chain
from apps.audit.checkpoints import checkpoint_write
from apps.audit.models import AuditRecord, ChainHead, RetrievedChunk
from apps.audit.proofs import proof_build
from apps.audit.services import ChunkEntry, RecordEntry, _who, record_append
from apps.tenants import services as tenants
from apps.tenants.models import Role
from apps.tenants.resolution import resolve_tenant_context

CHUNKS = 20


class _Rollback(Exception):
    pass


def _entry(i: int) -> RecordEntry:
    digest = hashlib.sha256(str(i).encode()).hexdigest()
    chunks = [
        ChunkEntry(
            rank=r,
            chunk_id=f"{digest[:16]}-{r}",
            document_id=r,
            version_id=r,
            text_sha256=digest,
            served_sha256=digest,
            scores={"fused": 0.5, "fused_rank": r, "bm25": 3.2, "dense": 0.61},
            passed_recheck=True,
            recheck_reason="",
            shown=r <= 10,
        )
        for r in range(1, CHUNKS + 1)
    ]
    context = [
        {
            "number": n,
            "document_id": n,
            "version_id": n,
            "section_id": n,
            "start_offset": 0,
            "end_offset": 900,
            "text_sha256": digest,
            "chunk_ids": [f"{digest[:16]}-{n}"],
        }
        for n in range(1, 6)
    ]
    return RecordEntry(
        kind="ask",
        outcome="answered",
        query=f"benchmark question {i}",
        filters={},
        parameters={"k": 20},
        chunks=chunks,
        answer="An answer of a few sentences. [1]",
        citations=[{"marker": 1}],
        timings={"embed": 4.1, "search": 12.0},
        principals=["tenant-wide", "user:1", "group:2"],
        context=context,
        embedding_model="all-MiniLM-L6-v2@sha256:…",
        search_backend="elasticsearch",
        index_generation="kp-chunks-20261201",
    )


@transaction.atomic
def _baseline_append(*, context, entry: RecordEntry) -> None:
    """The append as it was before the chain was keyed (commit 32f5c72): the same rows, the head
    locked in two statements, plain SHA-256 over the old fields."""
    ChainHead.objects.get_or_create(tenant=context.tenant)
    head = ChainHead.objects.select_for_update().get(tenant=context.tenant)
    record = AuditRecord(
        tenant=context.tenant,
        sequence=head.sequence + 1,
        created_at=timezone.now(),
        kind=entry.kind,
        outcome=entry.outcome,
        query=entry.query,
        filters=entry.filters,
        parameters=entry.parameters,
        answer=entry.answer,
        citations=entry.citations,
        timings=entry.timings,
        previous_hash=head.last_hash or chain.GENESIS,
        **_who(context),
    )
    rows = [{k: v for k, v in vars(c).items() if k != "served_sha256"} for c in entry.chunks]
    body = {
        name: getattr(record, name)
        for name in (
            "tenant_id",
            "sequence",
            "kind",
            "outcome",
            "query",
            "filters",
            "parameters",
            "answer",
            "citations",
            "timings",
            "previous_hash",
        )
    }
    body |= {"created_at": record.created_at.isoformat(), "chunks": rows}
    record.record_hash = hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()
    record.save()
    RetrievedChunk.objects.bulk_create(RetrievedChunk(record=record, **row) for row in rows)
    head.sequence, head.last_hash = record.sequence, record.record_hash
    head.save(update_fields=["sequence", "last_hash"])


def _time(label: str, count: int, call) -> list[float]:
    times = []
    for i in tqdm(range(count), desc=label, unit="record"):
        started = time.perf_counter()
        call(i)
        times.append((time.perf_counter() - started) * 1000)
    return times


def _quantiles(times: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(times, n=20)
    return statistics.median(times), cuts[18]


class Command(BaseCommand):
    help = "Benchmark record_append (keyed) against the plain append it replaced, and audit_verify's rate."

    def add_arguments(self, parser):
        parser.add_argument("--records", type=int, default=1000, help="Records appended by each variant.")
        parser.add_argument("--output", help="Write the table (Markdown) to this file too.")

    def _context(self, slug: str):
        tenant = tenants.tenant_create(slug=slug, name="audit benchmark")
        member = tenants.member_create(tenant=tenant, username="bench", role=Role.OWNER)
        return resolve_tenant_context(user=member.user, api_key=None, tenant_slug=slug)

    def handle(self, *args, records: int, output: str | None = None, **options):
        lines = []
        # The benchmark's checkpoint goes to a throw-away sink: its tenant is rolled back with
        # everything else, and a checkpoint left in the real sink would name a tenant id in vain.
        sink = {
            **settings.STORAGES,
            "audit_checkpoints": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": tempfile.mkdtemp(prefix="kp-bench-")},
            },
        }
        try:
            with override_settings(STORAGES=sink), transaction.atomic():
                # A tenant per variant: the plain records would break the keyed chain's verification.
                plain_context, keyed_context = (
                    self._context(f"bench-{variant}-{uuid.uuid4().hex[:8]}") for variant in ("plain", "keyed")
                )
                entries = [_entry(i) for i in range(records)]
                # Without their own savepoints (the undecorated functions): thousands of subtransactions
                # in the one rolled-back transaction would slow PostgreSQL down for both variants.
                plain, keyed_append = inspect.unwrap(_baseline_append), inspect.unwrap(record_append)
                # Interleaved in blocks, so drift (cache, autovacuum) hits both variants alike.
                baseline, keyed = [], []
                block = max(1, records // 10)
                for start in range(0, records, block):
                    span = range(start, min(records, start + block))
                    baseline += _time(
                        "plain", len(span), lambda i, s=start: plain(context=plain_context, entry=entries[s + i])
                    )
                    keyed += _time(
                        "keyed", len(span), lambda i, s=start: keyed_append(context=keyed_context, entry=entries[s + i])
                    )
                (b50, b95), (k50, k95) = _quantiles(baseline), _quantiles(keyed)
                started = time.perf_counter()
                walked = chain.walk(keyed_context.tenant)
                seconds = time.perf_counter() - started
                entries_walked = walked.records + walked.reviews
                rate = entries_walked / seconds
                # The first checkpoint walks the whole chain and builds the Merkle tree; a proof
                # reads the digests column and the path.
                started = time.perf_counter()
                checkpoint = checkpoint_write(tenant=keyed_context.tenant)
                checkpoint_seconds = time.perf_counter() - started
                record = AuditRecord.objects.filter(tenant=keyed_context.tenant).order_by("sequence")[records // 2]
                started = time.perf_counter()
                proof = proof_build(record=record)
                proof_ms = (time.perf_counter() - started) * 1000
                assert checkpoint.sequence == records and proof["tree_size"] == records
                lines = [
                    f"audit benchmark on {connection.vendor}, {records} records per variant, {CHUNKS} chunks a record",
                    "",
                    "| append | p50 ms | p95 ms |",
                    "| --- | --- | --- |",
                    f"| plain SHA-256 (before) | {b50:.2f} | {b95:.2f} |",
                    f"| keyed chain + replay fields (now) | {k50:.2f} | {k95:.2f} |",
                    f"| ratio | {k50 / b50:.2f}x | {k95 / b95:.2f}x |",
                    "",
                    f"verify walk: {entries_walked} entries in {seconds:.2f} s = {rate:,.0f} entries/s "
                    f"(100k records: about {100_000 / rate:.0f} s)",
                    f"first checkpoint (walk + Merkle root of {records}): {checkpoint_seconds:.2f} s; "
                    f"inclusion proof of one record: {proof_ms:.1f} ms",
                ]
                raise _Rollback
        except _Rollback:
            pass
        text = "\n".join(lines) + "\n"
        self.stdout.write(text)
        if output:
            Path(output).write_text(text)
