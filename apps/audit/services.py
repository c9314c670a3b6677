"""Writes to the audit trail: append a record (with its chunks) to the tenant's chain, add a
review (an entry of the same chain), purge what retention allows behind a signed anchor. Nothing
here ever changes an existing entry."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.tenants.models import Tenant
from apps.tenants.resolution import TenantContext

from . import chain, keys, purge
from .models import AuditRecord, ChainHead, RetentionPurge, RetrievedChunk, Review, ReviewStatus


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
    record.record_hash, record.content_sha256 = chain.record_hashes(record, chunk_rows)
    record.save()
    RetrievedChunk.objects.bulk_create(RetrievedChunk(record=record, **row) for row in chunk_rows)
    _advance(head, record.sequence, record.record_hash)
    return record


@transaction.atomic
def review_add(*, record: AuditRecord, status: str, comment: str, reviewer_id: int | None, reviewer_name: str) -> Review:
    """A verdict on a record, as the next entry of the tenant's chain: the record never changes,
    and a review cannot be removed, replaced or slipped in without breaking the chain."""
    if status not in ReviewStatus.values:
        raise ValueError(f"status must be one of {', '.join(ReviewStatus.values)}")
    head = _locked_head(record.tenant)
    review = Review(
        tenant_id=record.tenant_id, sequence=head.sequence + 1, record=record, record_sequence=record.sequence,
        record_hash=record.record_hash, status=status, comment=comment, reviewer_id=reviewer_id,
        reviewer_name=reviewer_name, created_at=timezone.now(), previous_hash=head.last_hash or chain.GENESIS,
        key_id=keys.current().key_id,
    )
    review.entry_hash, review.content_sha256 = chain.review_hashes(review)
    review.save()
    _advance(head, review.sequence, review.entry_hash)
    return review


def reviewer_of(context: TenantContext) -> dict:
    name = context.membership.username if context.membership else f"api-key:{context.api_key.prefix}"
    return {"reviewer_id": context.user.pk, "reviewer_name": name}


@dataclass(frozen=True)
class PurgeReport:
    tenant: str
    records: int
    through_sequence: int | None


CHAIN_ENTRIES = ((AuditRecord, "record_hash"), (Review, "entry_hash"))


def _prefix_end(tenant: Tenant, cutoff) -> tuple[int, str] | None:
    """(sequence, hash) of the last entry of the longest chain prefix written before `cutoff`: an
    entry younger than the cutoff stops the purge (clocks are not sequences)."""
    kept = [model.objects.filter(tenant=tenant, created_at__gte=cutoff).order_by("sequence")
            .values_list("sequence", flat=True).first() for model, _ in CHAIN_ENTRIES]
    first_kept = min((s for s in kept if s is not None), default=None)
    ends = []
    for model, hash_field in CHAIN_ENTRIES:
        expired = model.objects.filter(tenant=tenant, created_at__lt=cutoff)
        if first_kept is not None:
            expired = expired.filter(sequence__lt=first_kept)
        ends.append(expired.order_by("-sequence").values_list("sequence", hash_field).first())
    return max((end for end in ends if end is not None), default=None)


def _newest_at(tenant: Tenant, through: int):
    times = [model.objects.filter(tenant=tenant, sequence__lte=through).order_by("-created_at")
             .values_list("created_at", flat=True).first() for model, _ in CHAIN_ENTRIES]
    return max(t for t in times if t is not None)


def retention_purge(*, tenant: Tenant, now=None) -> PurgeReport:
    """Removes the tenant's chain entries (records and reviews) older than AUDIT_RETENTION_DAYS
    (never, when unset), oldest first and only as a prefix of the chain, and writes a signed anchor
    so the rest still verifies. On PostgreSQL the rows go through the one SECURITY DEFINER function
    that may delete them (apps/audit/purge.py)."""
    days = settings.AUDIT["RETENTION_DAYS"]
    if not days:
        return PurgeReport(tenant.slug, 0, None)
    now = now or timezone.now()
    cutoff = now - timedelta(days=days)
    with transaction.atomic():
        _locked_head(tenant)
        end = _prefix_end(tenant, cutoff)
        if end is None:
            return PurgeReport(tenant.slug, 0, None)
        through, last_hash = end
        reviews = Review.objects.filter(tenant=tenant, sequence__lte=through).count()
        newest_purged_at = _newest_at(tenant, through)
        records = purge.delete_prefix(tenant_id=tenant.pk, through_sequence=through)
        key = keys.current()
        anchor = RetentionPurge(tenant=tenant, created_at=now, older_than=cutoff, retention_days=days, records=records,
                                reviews=reviews, through_sequence=through, last_hash=last_hash,
                                newest_purged_at=newest_purged_at, key_id=key.key_id)
        anchor.signature = keys.sign(key, chain.anchor_canonical(anchor))
        anchor.save()
    return PurgeReport(tenant.slug, records, through)


def retention_purge_all(*, now=None) -> list[PurgeReport]:
    """`retention_purge` for every tenant (the daily task and the command); [] when no retention
    is set."""
    if not settings.AUDIT["RETENTION_DAYS"]:
        return []
    return [retention_purge(tenant=tenant, now=now) for tenant in Tenant.objects.order_by("slug")]

