"""Writes to the audit trail: append a record (with its chunks) to the tenant's chain, add a
review (an entry of the same chain), purge what retention allows behind a signed anchor. Nothing
here ever changes an existing entry."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import timedelta

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.tenants.models import Tenant
from apps.tenants.resolution import TenantContext

from . import chain, keys, purge
from .models import AuditRecord, ChainHead, RetentionPurge, RetrievedChunk, Review, ReviewStatus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChunkEntry:
    rank: int
    chunk_id: str
    document_id: int
    version_id: int
    text_sha256: str  # of the database chunk's text
    scores: dict
    passed_recheck: bool
    recheck_reason: str
    shown: bool
    cited: bool = False
    served_sha256: str = ""  # of the text the search engine served (its own copy)


@dataclass(frozen=True)
class RecordEntry:
    """What the answer pipeline hands over: everything one search or ask did."""

    kind: str
    outcome: str
    query: str
    filters: dict
    parameters: dict
    chunks: list[ChunkEntry] = field(default_factory=list)
    answer: str = ""
    citations: list[dict] = field(default_factory=list)
    generator: str = ""
    generator_model: str = ""
    timings: dict = field(default_factory=dict)
    error: str = ""
    # for a replay: the caller's principals, the passages given to the generator, the engine
    principals: list[str] = field(default_factory=list)
    context: list[dict] = field(default_factory=list)
    embedding_model: str = ""
    search_backend: str = ""
    index_generation: str = ""


def _stored(value):
    """`value` as the database will hand it back, so the hash made now is the hash verify makes
    later. PostgreSQL's jsonb keeps numbers as decimals: -0.0 comes back 0.0, an integral float in
    exponent form (1e+20) comes back an integer, NaN and infinities are refused. Numbers that JSON
    cannot carry exactly are kept as their repr (a string) rather than lost."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value) or (value.is_integer() and abs(value) >= 1e16):
            return repr(value)
        return 0.0 if value == 0.0 else value
    if isinstance(value, int) and abs(value) >= 2**63:
        return str(value)
    if isinstance(value, dict):
        return {str(k): _stored(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_stored(v) for v in value]
    return value


def _who(context: TenantContext) -> dict:
    membership = context.membership
    return {
        "user_id": context.user.pk if membership is not None else None,
        "username": membership.username if membership is not None else "",
        "api_key_id": context.api_key.pk if context.api_key else None,
        "api_key_prefix": context.api_key.prefix if context.api_key else "",
        "acting_for_user": context.api_key is not None and membership is not None,
    }


def _locked_head(tenant: Tenant) -> ChainHead:
    """The tenant's chain head, row-locked until the transaction ends: two concurrent writers get
    consecutive sequences, never the same one."""
    head = ChainHead.objects.select_for_update().filter(tenant=tenant).first()
    if head is None:  # the tenant's first entry: create the head, then lock it like any other
        ChainHead.objects.get_or_create(tenant=tenant)
        head = ChainHead.objects.select_for_update().get(tenant=tenant)
    return head


def _appended(hashes: tuple[str | None, str]) -> tuple[str, str]:
    """(entry hash, content digest) of an entry being appended. It is keyed with keys.current(), and
    the keyed hash is None only for a key the ring does not hold."""
    entry_hash, digest = hashes
    assert entry_hash is not None
    return entry_hash, digest


def _advance(head: ChainHead, sequence: int, entry_hash: str) -> None:
    head.sequence, head.last_hash = sequence, entry_hash
    head.save(update_fields=["sequence", "last_hash"])


@transaction.atomic
def record_append(*, context: TenantContext, entry: RecordEntry) -> AuditRecord:
    """Appends one record (with its chunks) to the tenant's chain, its hash keyed with the current
    audit key."""
    head = _locked_head(context.tenant)
    record = AuditRecord(
        tenant=context.tenant,
        sequence=head.sequence + 1,
        created_at=timezone.now(),
        kind=entry.kind,
        outcome=entry.outcome,
        query=entry.query,
        filters=_stored(entry.filters),
        parameters=_stored(entry.parameters),
        answer=entry.answer,
        citations=_stored(entry.citations),
        generator=entry.generator,
        generator_model=entry.generator_model,
        timings=_stored(entry.timings),
        error=entry.error,
        principals=list(entry.principals),
        context=_stored(entry.context),
        embedding_model=entry.embedding_model,
        search_backend=entry.search_backend,
        index_generation=entry.index_generation,
        previous_hash=head.last_hash or chain.GENESIS,
        key_id=keys.current().key_id,
        **_who(context),
    )
    chunk_rows = [{**vars(c), "scores": _stored(c.scores)} for c in entry.chunks]
    record.record_hash, record.content_sha256 = _appended(chain.record_hashes(record, chunk_rows))
    record.save()
    _insert_chunks(record.pk, chunk_rows)
    _advance(head, record.sequence, record.record_hash)
    return record


def _insert_chunks(record_id: int, rows: list[dict]) -> None:
    """A record's retrieved chunks, written without model instances: bulk_create's 20 instances and
    their adaptation cost 4.7 ms of an append, COPY 1.3 ms (PostgreSQL, audit_benchmark's machine);
    PostgreSQL itself takes 0.4 ms for the rows. COPY needs only the INSERT privilege."""
    columns = ("record_id", *chain.CHUNK_FIELDS)
    values = [
        [
            record_id,
            *(orjson.dumps(row[name]).decode() if name == "scores" else row[name] for name in chain.CHUNK_FIELDS),
        ]
        for row in rows
    ]
    quoted = ", ".join(connection.ops.quote_name(name) for name in columns)
    table = RetrievedChunk._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
                for row in values:
                    copy.write_row(row)
        elif values:
            cursor.executemany(f"INSERT INTO {table} ({quoted}) VALUES ({', '.join(['%s'] * len(columns))})", values)


@transaction.atomic
def review_add(
    *, record: AuditRecord, status: str, comment: str, reviewer_id: int | None, reviewer_name: str
) -> Review:
    """A verdict on a record, as the next entry of the tenant's chain: the record never changes,
    and a review cannot be removed, replaced or slipped in without breaking the chain."""
    if status not in ReviewStatus.values:
        raise ValueError(f"status must be one of {', '.join(ReviewStatus.values)}")
    head = _locked_head(record.tenant)
    review = Review(
        tenant_id=record.tenant_id,
        sequence=head.sequence + 1,
        record=record,
        record_sequence=record.sequence,
        record_hash=record.record_hash,
        status=status,
        comment=comment,
        reviewer_id=reviewer_id,
        reviewer_name=reviewer_name,
        created_at=timezone.now(),
        previous_hash=head.last_hash or chain.GENESIS,
        key_id=keys.current().key_id,
    )
    review.entry_hash, review.content_sha256 = _appended(chain.review_hashes(review))
    review.save()
    _advance(head, review.sequence, review.entry_hash)
    return review


def reviewer_of(context: TenantContext) -> dict:
    if context.membership is not None:
        name = context.membership.username
    else:
        assert context.api_key is not None  # a caller is a member or an API key
        name = f"api-key:{context.api_key.prefix}"
    return {"reviewer_id": context.user.pk, "reviewer_name": name}


@dataclass(frozen=True)
class PurgeReport:
    tenant: str
    records: int
    through_sequence: int | None
    refused: str = ""  # why nothing was purged although entries had expired


class PurgeRefused(Exception):
    """The purge found the chain or the database not as the chain says: nothing is deleted."""


def retention_purge(*, tenant: Tenant, now=None) -> PurgeReport:
    """Removes the tenant's chain entries (records and reviews) older than AUDIT_RETENTION_DAYS
    (never, when unset), oldest first and only as a prefix of the chain, and writes a signed anchor
    so the rest still verifies. On PostgreSQL the rows go through the one SECURITY DEFINER function
    that may delete them (apps/audit/purge.py).

    Nothing is deleted on the word of raw rows: the whole chain is verified first (keys, links,
    head, checkpoints), and the prefix, its last hash and its ages come from the verified entries.
    A chain that does not verify is not purged (the refusal is logged): a purge must never sign
    over an erasure or an edit."""
    days = settings.AUDIT["RETENTION_DAYS"]
    if not days:
        return PurgeReport(tenant.slug, 0, None)
    now = now or timezone.now()
    cutoff = now - timedelta(days=days)
    try:
        # Verified before the head is locked, so a long walk does not hold up the tenant's requests;
        # what is purged is an old prefix, which appends after the walk do not touch.
        verified = chain.verify_tenant(tenant, keep_walk=True)
        if not verified.intact:
            raise PurgeRefused(f"the chain does not verify: {verified.first_break}")
        with transaction.atomic():
            _locked_head(tenant)
            newest = (
                RetentionPurge.objects.filter(tenant=tenant)
                .order_by("-through_sequence")
                .values_list("through_sequence", flat=True)
                .first()
            )
            if (newest or 0) != verified.start:  # another purge ran since the walk
                return PurgeReport(tenant.slug, 0, None)
            walked = verified.walked
            assert walked is not None  # verify_tenant keeps the walk of an intact chain when asked to
            expired = []
            for sequence in sorted(walked.times):  # the longest prefix written before the cutoff
                if walked.times[sequence] >= cutoff:
                    break
                expired.append(sequence)
            if not expired:
                return PurgeReport(tenant.slug, 0, None)
            through = expired[-1]
            records = sum(1 for s in expired if walked.kinds[s] == "record")
            deleted = purge.delete_prefix(tenant_id=tenant.pk, through_sequence=through)
            if deleted != records:
                raise PurgeRefused(f"the database held {deleted} records through {through}, the chain {records}")
            key = keys.current()
            anchor = RetentionPurge(
                tenant=tenant,
                created_at=now,
                older_than=cutoff,
                retention_days=days,
                records=records,
                reviews=len(expired) - records,
                through_sequence=through,
                last_hash=walked.hashes[through],
                newest_purged_at=max(walked.times[s] for s in expired),
                key_id=key.key_id,
            )
            anchor.signature = keys.sign(key, chain.anchor_canonical(anchor))
            anchor.save()
    except PurgeRefused as exc:
        logger.error("audit retention purge of %s refused: %s", tenant.slug, exc)
        return PurgeReport(tenant.slug, 0, None, refused=str(exc))
    return PurgeReport(tenant.slug, records, through)


def retention_purge_all(*, now=None) -> list[PurgeReport]:
    """`retention_purge` for every tenant (the daily task and the command); [] when no retention
    is set."""
    if not settings.AUDIT["RETENTION_DAYS"]:
        return []
    reports = []
    for tenant in Tenant.objects.order_by("slug"):
        try:
            reports.append(retention_purge(tenant=tenant, now=now))
        except Exception as exc:  # one unreadable chain must not stop the others' purge
            logger.exception("audit retention purge of %s failed", tenant.slug)
            reports.append(PurgeReport(tenant.slug, 0, None, refused=f"failed: {exc!r}"))
    return reports
