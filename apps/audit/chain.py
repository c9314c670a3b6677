"""The per-tenant chain: what an entry's hash covers, and how a chain is verified.

A tenant's chain holds two kinds of entry, in one sequence: answer records and reviews. Each
entry's hash is HMAC-SHA256 (apps/audit/keys.py) over its canonical bytes, which include the
previous entry's hash; the key never lives in the database, so whoever can write to the database
but does not hold the key cannot produce a chain that verifies. What the keyed chain cannot see
alone — the newest entries cut off and the head rewound — is caught by the signed checkpoints the
platform writes outside the database (apps/audit/checkpoints.py)."""

from __future__ import annotations

import hashlib
import heapq
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import connection
from django.db.models import Q

from . import keys, merkle
from .models import AuditRecord, ChainHead, RetentionPurge, RetrievedChunk, Review

GENESIS = "0" * 64


def _bytes(body: dict) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8 (orjson: a walk of 100k records is
    dominated by this and by decoding the stored scores). orjson refuses integers beyond 64 bits;
    the standard library's encoder takes those, and the same content always takes the same path."""
    try:
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS, default=str)
    except TypeError:
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


CHUNK_FIELDS = (
    "rank",
    "chunk_id",
    "document_id",
    "version_id",
    "text_sha256",
    "served_sha256",
    "scores",
    "passed_recheck",
    "recheck_reason",
    "shown",
    "cited",
)


def chunk_values(chunk) -> list:
    """A retrieved chunk (model, dict or values row already in CHUNK_FIELDS order) as the list of
    its values, which is how the canonical form holds chunks."""
    if isinstance(chunk, list):
        return chunk
    get = chunk.get if isinstance(chunk, dict) else lambda name: getattr(chunk, name)
    return [get(name) for name in CHUNK_FIELDS]


def record_canonical(record: AuditRecord, chunks: list) -> bytes:
    """Everything a record says, in one canonical byte string (sorted keys, no whitespace)."""
    body = {
        name: getattr(record, name)
        for name in (
            "tenant_id",
            "sequence",
            "kind",
            "outcome",
            "user_id",
            "username",
            "api_key_id",
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
            "principals",
            "context",
            "embedding_model",
            "search_backend",
            "index_generation",
            "previous_hash",
            "key_id",
        )
    }
    body["entry"] = "record"
    body["created_at"] = record.created_at.isoformat()
    body["chunk_fields"] = CHUNK_FIELDS
    body["chunks"] = [chunk_values(c) for c in chunks]
    return _bytes(body)


def review_canonical(review: Review) -> bytes:
    body = {
        name: getattr(review, name)
        for name in (
            "tenant_id",
            "sequence",
            "record_id",
            "record_sequence",
            "record_hash",
            "status",
            "comment",
            "reviewer_id",
            "reviewer_name",
            "previous_hash",
            "key_id",
        )
    }
    body["entry"] = "review"
    body["created_at"] = review.created_at.isoformat()
    return _bytes(body)


def anchor_canonical(anchor: RetentionPurge) -> bytes:
    body = {
        name: getattr(anchor, name)
        for name in ("tenant_id", "retention_days", "records", "reviews", "through_sequence", "last_hash", "key_id")
    }
    body["entry"] = "retention-anchor"
    for name in ("created_at", "older_than", "newest_purged_at"):
        value = getattr(anchor, name)
        body[name] = value.isoformat() if value else None
    return _bytes(body)


def _same(actual: str, stored: str) -> bool:
    """Constant-time, and safe for whatever bytes a tampered column holds."""
    return hmac.compare_digest(actual.encode(), (stored or "").encode())


def keyed_hash(key_id: str, message: bytes) -> str | None:
    """The entry hash under key `key_id`, or None when the ring does not hold that key."""
    key = keys.get(key_id)
    return keys.mac(key, message) if key is not None else None


def _hashes(key_id: str, canonical: bytes) -> tuple[str | None, str]:
    """(the keyed chain hash, the public content digest: the entry's Merkle leaf) of one entry."""
    return keyed_hash(key_id, canonical), hashlib.sha256(canonical).hexdigest()


def record_hashes(record: AuditRecord, chunks: list) -> tuple[str | None, str]:
    return _hashes(record.key_id, record_canonical(record, chunks))


def review_hashes(review: Review) -> tuple[str | None, str]:
    return _hashes(review.key_id, review_canonical(review))


def record_hash(record: AuditRecord, chunks: list) -> str | None:
    return record_hashes(record, chunks)[0]


def review_hash(review: Review) -> str | None:
    return review_hashes(review)[0]


def stored_digests(tenant, *, after: int, through: int) -> list[str]:
    """The content digests the database holds for entries after..through, in sequence order."""
    rows = [
        *AuditRecord.objects.filter(tenant=tenant, sequence__gt=after, sequence__lte=through).values_list(
            "sequence", "content_sha256"
        ),
        *Review.objects.filter(tenant=tenant, sequence__gt=after, sequence__lte=through).values_list(
            "sequence", "content_sha256"
        ),
    ]
    return [digest for _, digest in sorted(rows)]


def anchor_valid(anchor: RetentionPurge) -> bool:
    return keys.signature_valid(anchor.key_id, anchor_canonical(anchor), anchor.signature)


# --------------------------------------------------------------------------- verification
@dataclass(frozen=True)
class Break:
    record_id: int | None
    sequence: int
    problem: str
    entry: str = "record"  # or "review", "anchor", "checkpoint", "chain" (the head, the counts)

    def __str__(self) -> str:
        where = f"{self.entry} {self.record_id}" if self.record_id is not None else f"the {self.entry}"
        return f"{where} (sequence {self.sequence}): {self.problem}"


@dataclass(frozen=True)
class ChainReport:
    tenant_slug: str
    records: int
    first_break: Break | None
    reviews: int = 0
    checkpoints: int = 0  # signed checkpoints checked against the database
    notes: list[str] = field(default_factory=list)
    start: int = 0  # the chain starts after this sequence (the newest retention anchor's)
    walked: Walked | None = field(default=None, repr=False, compare=False)  # with keep_walk=True

    @property
    def intact(self) -> bool:
        return self.first_break is None


@dataclass(frozen=True)
class Walked:
    """A chain walked from a start point: where it ended, each entry's hash, or the first break."""

    records: int
    reviews: int
    last_sequence: int
    last_hash: str
    hashes: dict[int, str]
    digests: dict[int, str]  # sequence -> content digest (Merkle leaf), recomputed from the content
    first_break: Break | None
    times: dict[int, datetime] = field(default_factory=dict)  # sequence -> created_at, as verified
    kinds: dict[int, str] = field(default_factory=dict)  # sequence -> "record" | "review"


UNREADABLE = object()  # a stored value the canonical form cannot be rebuilt from


def _chunk_rows(record_ids: list[int]) -> dict[int, list[list]]:
    """The retrieved chunks of these records as value lists (CHUNK_FIELDS order), by rank. Plain
    SQL and orjson rather than model instances: this is most of a walk's work. On PostgreSQL each
    record's chunks come as one JSON array (json_agg), so the driver converts one value a record
    instead of twelve a chunk."""
    rows: dict[int, list[list]] = {pk: [] for pk in record_ids}
    quoted = [connection.ops.quote_name(name) for name in CHUNK_FIELDS]
    marks = ", ".join(["%s"] * len(record_ids))
    table = RetrievedChunk._meta.db_table
    scores, booleans = (
        CHUNK_FIELDS.index("scores"),
        [CHUNK_FIELDS.index(n) for n in ("passed_recheck", "shown", "cited")],
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"SELECT record_id, json_agg(json_build_array({', '.join(quoted)}) ORDER BY rank)::text "
                f"FROM {table} WHERE record_id IN ({marks}) GROUP BY record_id",
                record_ids,
            )
            for record_id, chunks in cursor.fetchall():
                try:
                    rows[record_id] = orjson.loads(chunks)
                except orjson.JSONDecodeError:  # e.g. a score of 1e400: valid JSON, never written by the platform
                    unreadable: list[Any] = [None] * len(CHUNK_FIELDS)
                    unreadable[scores] = UNREADABLE
                    rows[record_id] = [unreadable]
            return rows
        cursor.execute(
            f"SELECT record_id, {', '.join(quoted)} FROM {table} WHERE record_id IN ({marks}) ORDER BY record_id, rank",
            record_ids,
        )
        for record_id, *values in cursor.fetchall():
            try:
                values[scores] = orjson.loads(values[scores])
            except orjson.JSONDecodeError:
                values[scores] = UNREADABLE
            for position in booleans:  # SQLite hands booleans back as 0/1
                values[position] = bool(values[position])
            rows[record_id].append(values)
    return rows


def _records_with_chunks(tenant, after: int, batch: int = 2000) -> Iterator[tuple[AuditRecord, list[list[Any]]]]:
    """The tenant's records after `after`, in sequence, each with its chunks' rows (`_chunk_rows`)."""
    records = AuditRecord.objects.filter(tenant=tenant, sequence__gt=after).order_by("sequence", "pk")
    position = Q()
    while True:
        # Keyset pages on (sequence, pk): two rows at one sequence never fall between two pages.
        page = list(records.filter(position)[:batch])
        if not page:
            return
        rows = _chunk_rows([record.pk for record in page])
        for record in page:
            yield record, rows[record.pk]
        last = page[-1]
        position = Q(sequence__gt=last.sequence) | Q(sequence=last.sequence, pk__gt=last.pk)


_Entry = tuple[int, str, AuditRecord | Review, list[list[Any]]]  # sequence, kind, the entry, a record's chunk rows


def _entries(tenant, after: int) -> Iterator[_Entry]:
    records = _records_with_chunks(tenant, after)
    reviews = _reviews_of(tenant).filter(sequence__gt=after).order_by("sequence", "pk").iterator(chunk_size=500)
    records_in_sequence: Iterator[_Entry] = ((r.sequence, "record", r, rows) for r, rows in records)
    reviews_in_sequence: Iterator[_Entry] = ((r.sequence, "review", r, []) for r in reviews)
    return heapq.merge(records_in_sequence, reviews_in_sequence, key=lambda item: (item[0], item[1]))


def _reviews_of(tenant):
    """The tenant's reviews, and any review of one of its records that claims another tenant (or
    none): a review slipped in outside the chain must still be seen."""
    # A subquery, not a join: a review whose record was purged (or never existed) must still be seen.
    # Across tenants by design: it looks for rows that claim the wrong tenant.
    return Review.objects.across_tenants().filter(
        Q(tenant=tenant) | Q(record_id__in=AuditRecord.objects.filter(tenant=tenant).values("pk"))
    )


def stray_entry(tenant, start: int) -> Break | None:
    """An entry at or below the chain's start (which a retention purge removed), or a review
    outside the tenant's chain, was written behind the application's back."""
    record = AuditRecord.objects.filter(tenant=tenant, sequence__lte=start).order_by("sequence").first()
    if record is not None:
        return Break(record.pk, record.sequence, f"a record below the chain's start ({start}, after retention)")
    review = _reviews_of(tenant).filter(Q(sequence__lte=start) | ~Q(tenant=tenant) | Q(tenant__isnull=True)).first()
    if review is not None:
        return Break(
            review.pk,
            review.sequence,
            "a review outside the tenant's chain (slipped in, or written before reviews were chained)",
            "review",
        )
    return None


def walk(tenant, *, after: int = 0, previous: str = GENESIS) -> Walked:
    """Checks every entry after sequence `after` (whose hash is `previous`): consecutive sequences,
    each linking to the one before, each hash the keyed hash of its content, each review naming a
    record of the chain by its hash. A stored value that cannot even be read back (JSON nested
    thousands deep, a number out of range: nothing the platform writes) is a break, not a crash."""
    try:
        return _walk(tenant, after=after, previous=previous)
    except (RecursionError, ValueError, TypeError, OverflowError) as exc:
        return Walked(
            0,
            0,
            after,
            previous,
            {},
            {},
            Break(
                None,
                after + 1,
                "a stored value after this point cannot "
                f"be read back ({exc.__class__.__name__}): written behind the application's back",
                "chain",
            ),
        )


def _walk(tenant, *, after: int, previous: str) -> Walked:
    expected_sequence, expected_previous = after + 1, previous
    counts = {"record": 0, "review": 0}
    hashes: dict[int, str] = {}
    digests: dict[int, str] = {}
    seen_records: dict[int, tuple[int, str]] = {}  # sequence -> (record id, hash), for reviews

    times: dict[int, datetime] = {}
    kinds: dict[int, str] = {}

    def broken(entry_id, sequence, problem, kind) -> Walked:
        return Walked(
            counts["record"],
            counts["review"],
            expected_sequence - 1,
            expected_previous,
            hashes,
            digests,
            Break(entry_id, sequence, problem, kind),
            times,
            kinds,
        )

    for sequence, kind, entry, chunk_rows in _entries(tenant, after):
        counts[kind] += 1
        if sequence != expected_sequence:
            what = "the same sequence twice" if sequence < expected_sequence else "an entry was deleted"
            return broken(
                entry.pk,
                expected_sequence,
                f"missing: the chain jumps from {expected_sequence - 1} to {sequence} ({what})",
                kind,
            )
        if entry.previous_hash != expected_previous:
            return broken(
                entry.pk,
                sequence,
                "its link to the previous entry is broken (an entry before it was altered, removed or replaced)",
                kind,
            )
        if keys.get(entry.key_id) is None:
            return broken(
                entry.pk,
                sequence,
                f"keyed with {entry.key_id or 'no key'!r}, which is not in AUDIT_KEYS "
                "(forged, or a retired key was dropped from the ring)",
                kind,
            )
        if isinstance(entry, AuditRecord):  # kind "record"
            if any(row[CHUNK_FIELDS.index("scores")] is UNREADABLE for row in chunk_rows):
                return broken(
                    entry.pk, sequence, "a retrieved chunk's stored scores cannot be read back (altered)", kind
                )
            (actual, digest), stored = record_hashes(entry, chunk_rows), entry.record_hash
        else:
            (actual, digest), stored = review_hashes(entry), entry.entry_hash
            if entry.record_sequence > after and seen_records.get(entry.record_sequence) != (
                entry.record_id,
                entry.record_hash,
            ):
                return broken(entry.pk, sequence, "it reviews a record that is not in the chain with that hash", kind)
        assert actual is not None  # keyed_hash finds the key the check above found in the ring
        if not _same(actual, stored):
            return broken(entry.pk, sequence, "its content no longer matches its hash (it was altered)", kind)
        if not _same(digest, entry.content_sha256):
            return broken(entry.pk, sequence, "its stored content digest (its Merkle leaf) was altered", kind)
        if kind == "record":
            seen_records[sequence] = (entry.pk, stored)
        hashes[sequence], digests[sequence], times[sequence], kinds[sequence] = stored, digest, entry.created_at, kind
        expected_previous, expected_sequence = stored, sequence + 1
    return Walked(
        counts["record"],
        counts["review"],
        expected_sequence - 1,
        expected_previous,
        hashes,
        digests,
        None,
        times,
        kinds,
    )


def hash_at(tenant, sequence: int) -> str | None:
    """The stored hash of the tenant's entry at `sequence`, whichever kind it is."""
    record = AuditRecord.objects.filter(tenant=tenant, sequence=sequence).values_list("record_hash", flat=True).first()
    return (
        record or Review.objects.filter(tenant=tenant, sequence=sequence).values_list("entry_hash", flat=True).first()
    )


def anchors_check(tenant) -> tuple[RetentionPurge | None, Break | None]:
    """Every retention anchor must be signed by a key of the ring, must have removed only entries
    older than the policy it states, and each must reach further than the one before. Returns the
    newest anchor (where the chain now starts) or the first bad one."""
    newest = None
    for anchor in RetentionPurge.objects.filter(tenant=tenant).order_by("created_at", "pk"):
        where = anchor.through_sequence
        if not anchor_valid(anchor):
            return None, Break(
                anchor.pk,
                where,
                "a retention anchor not signed by any key of AUDIT_KEYS "
                "(forged: the entries it claims to have purged were deleted)",
                "anchor",
            )
        policy = timedelta(days=anchor.retention_days)
        if (
            anchor.retention_days < 1
            or anchor.newest_purged_at is None
            or anchor.newest_purged_at >= anchor.older_than
            or anchor.created_at - anchor.older_than < policy - timedelta(seconds=1)
        ):
            return None, Break(
                anchor.pk,
                where,
                "a premature retention anchor: it removed entries younger than its "
                f"retention policy ({anchor.retention_days} days) allows",
                "anchor",
            )
        if newest is not None and anchor.through_sequence <= newest.through_sequence:
            return None, Break(
                anchor.pk,
                where,
                f"a retention anchor that goes back to {where} after one through {newest.through_sequence}",
                "anchor",
            )
        newest = anchor
    return newest, None


def merkle_roots(digests: dict[int, str], *, at: set[int]) -> dict[int, str]:
    """The Merkle roots of the tree over `digests` (in sequence order) at the sequences `at`."""
    accumulator, roots = merkle.Accumulator(), {}
    for sequence, digest in sorted(digests.items()):
        accumulator.append(bytes.fromhex(digest))
        if sequence in at:
            roots[sequence] = accumulator.root()
    return roots


def verify_tenant(tenant, *, checkpoints: list | None = None, keep_walk: bool = False) -> ChainReport:
    """The whole check of one tenant: the retention anchors, every entry since the newest anchor,
    the chain head, and every signed checkpoint of the sink (or those given). With `keep_walk`,
    the report keeps the verified entries' hashes and times (the retention purge works from them)."""
    try:
        return _verify_tenant(tenant, checkpoints=checkpoints, keep_walk=keep_walk)
    except (RecursionError, ValueError, TypeError, OverflowError) as exc:  # a value nothing of ours wrote
        return ChainReport(
            tenant.slug,
            0,
            Break(
                None,
                0,
                f"a stored value cannot be read back ({exc.__class__.__name__}): written behind the application's back",
                "chain",
            ),
        )


def _verify_tenant(tenant, *, checkpoints: list | None, keep_walk: bool) -> ChainReport:
    from .checkpoints import checkpoints_read  # the sink reads the chain's results, not the reverse

    anchor, bad_anchor = anchors_check(tenant)
    if bad_anchor is not None:
        return ChainReport(tenant.slug, 0, bad_anchor)
    start = anchor.through_sequence if anchor else 0
    stray = stray_entry(tenant, start)
    if stray is not None:
        return ChainReport(tenant.slug, 0, stray)
    walked = walk(tenant, after=start, previous=anchor.last_hash if anchor else GENESIS)

    def report(first_break: Break | None, checked: int = 0, notes=()) -> ChainReport:
        return ChainReport(
            tenant.slug,
            walked.records,
            first_break,
            walked.reviews,
            checked,
            list(notes),
            start,
            walked if keep_walk else None,
        )

    if walked.first_break is not None:
        return report(walked.first_break)
    stored = (
        AuditRecord.objects.filter(tenant=tenant, sequence__gt=start).count()
        + _reviews_of(tenant).filter(sequence__gt=start).count()
    )
    if stored != walked.records + walked.reviews:
        return report(
            Break(
                None,
                walked.last_sequence,
                f"the database holds {stored} entries after {start}, the chain "
                f"walks {walked.records + walked.reviews} (an entry sits outside the chain)",
                "chain",
            )
        )
    head = ChainHead.objects.filter(tenant=tenant).first()
    if head is not None and head.sequence > walked.last_sequence:
        return report(
            Break(
                None,
                walked.last_sequence + 1,
                f"missing: the chain ends at {walked.last_sequence} but {head.sequence} entries were written",
                "chain",
            )
        )
    if head is None and walked.last_sequence > 0:
        return report(
            Break(None, walked.last_sequence, "the chain head is gone (deleted behind the application's back)", "chain")
        )
    if head is not None and walked.last_sequence > start and head.sequence < walked.last_sequence:
        return report(
            Break(
                None,
                head.sequence + 1,
                f"the chain head was moved back to {head.sequence}: the chain goes on to {walked.last_sequence}",
                "chain",
            )
        )
    if (
        head is not None
        and head.sequence == walked.last_sequence
        and walked.last_sequence > start
        and head.last_hash != walked.last_hash
    ):
        return report(Break(None, head.sequence, "the chain head names another hash than the last entry's", "chain"))

    signed = checkpoints if checkpoints is not None else checkpoints_read(tenant)
    for checkpoint in signed:
        if checkpoint.valid and checkpoint.document and checkpoint.document.get("tenant") != tenant.slug:
            return report(
                Break(
                    None,
                    checkpoint.sequence,
                    f"checkpoint {checkpoint.name} was signed for tenant "
                    f"{checkpoint.document.get('tenant')!r}, not {tenant.slug!r}",
                    "checkpoint",
                )
            )
        if not checkpoint.valid:
            return report(
                Break(
                    None,
                    checkpoint.sequence,
                    f"checkpoint {checkpoint.name} is not signed by any key "
                    "of AUDIT_KEYS (the sink was written by someone else)",
                    "checkpoint",
                )
            )
    roots = merkle_roots(walked.digests, at={c.sequence for c in signed if c.tree_start == start})
    notes = []
    for checkpoint in sorted(signed, key=lambda c: c.sequence):
        when = checkpoint.created_at.isoformat(timespec="seconds")
        if checkpoint.sequence > walked.last_sequence:
            return report(
                Break(
                    None,
                    walked.last_sequence + 1,
                    f"missing: the signed checkpoint of {when} saw the chain "
                    f"at {checkpoint.sequence}, the database's ends at {walked.last_sequence} "
                    "(the newest entries were cut off)",
                    "checkpoint",
                ),
                len(signed),
            )
        if checkpoint.sequence < start:
            continue  # purged since, under a valid anchor
        expected = (
            anchor.last_hash if checkpoint.sequence == start and anchor else walked.hashes.get(checkpoint.sequence)
        )
        if checkpoint.sequence == 0:
            expected = GENESIS
        if expected != checkpoint.hash:
            return report(
                Break(
                    None,
                    checkpoint.sequence,
                    f"differs from the signed checkpoint of {when}: the chain "
                    f"was rewritten at or before {checkpoint.sequence}",
                    "checkpoint",
                ),
                len(signed),
            )
        root = merkle.EMPTY_ROOT if checkpoint.sequence == start else roots.get(checkpoint.sequence)
        if checkpoint.tree_start == start and root != checkpoint.root:
            return report(
                Break(
                    None,
                    checkpoint.sequence,
                    f"the Merkle root differs from the signed checkpoint of {when}",
                    "checkpoint",
                ),
                len(signed),
            )
    in_force = settings.AUDIT.get("RETENTION_DAYS")
    for shorter in RetentionPurge.objects.filter(tenant=tenant, retention_days__lt=in_force or 0).order_by(
        "through_sequence"
    ):
        notes.append(
            f"the retention purge through {shorter.through_sequence} ran under {shorter.retention_days} days, "
            f"shorter than the {in_force} days in force now"
        )
    if not signed:
        notes.append(
            "no signed checkpoint yet: a cut-off of the newest entries would not show (manage.py audit_checkpoint)"
        )
    else:
        newest = max(signed, key=lambda c: c.sequence)
        if walked.last_sequence > newest.sequence:
            notes.append(
                f"{walked.last_sequence - newest.sequence} entries since the newest checkpoint "
                f"({newest.created_at.isoformat(timespec='seconds')})"
            )
    return report(None, len(signed), notes)
