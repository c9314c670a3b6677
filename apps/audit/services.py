"""Writes to the audit trail: append a record (with its chunks) to the tenant's chain, add a
review, purge what retention allows. Nothing here ever changes an existing record."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.tenants.models import Tenant
from apps.tenants.resolution import TenantContext

from . import chain
from .models import AuditRecord, ChainHead, RetentionPurge, RetrievedChunk, Review, ReviewStatus


@dataclass(frozen=True)
class ChunkEntry:
    rank: int
    chunk_id: str
    document_id: int
    version_id: int
    text_sha256: str
    scores: dict
    passed_recheck: bool
    recheck_reason: str
    shown: bool
    cited: bool = False


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


def _who(context: TenantContext) -> dict:
    membership = context.membership
    return {
        "user_id": context.user.pk if membership is not None else None,
        "username": membership.username if membership is not None else "",
        "api_key_id": context.api_key.pk if context.api_key else None,
        "api_key_prefix": context.api_key.prefix if context.api_key else "",
        "acting_for_user": context.api_key is not None and membership is not None,
    }


@transaction.atomic
def record_append(*, context: TenantContext, entry: RecordEntry) -> AuditRecord:
    """Appends one record to the tenant's chain. The chain head is locked for the moment of the
    write, so two concurrent requests get consecutive sequences, never the same one."""
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
        generator=entry.generator,
        generator_model=entry.generator_model,
        timings=entry.timings,
        error=entry.error,
        previous_hash=head.last_hash or chain.GENESIS,
        **_who(context),
    )
    chunk_rows = [vars(c) for c in entry.chunks]
    record.record_hash = chain.record_hash(record, chunk_rows)
    record.save()
    RetrievedChunk.objects.bulk_create(RetrievedChunk(record=record, **row) for row in chunk_rows)
    head.sequence, head.last_hash = record.sequence, record.record_hash
    head.save(update_fields=["sequence", "last_hash"])
    return record


def review_add(*, record: AuditRecord, status: str, comment: str, reviewer_id: int | None, reviewer_name: str) -> Review:
    """A verdict on a record, in its own row: the record itself never changes."""
    if status not in ReviewStatus.values:
        raise ValueError(f"status must be one of {', '.join(ReviewStatus.values)}")
    review = Review(record=record, status=status, comment=comment, reviewer_id=reviewer_id, reviewer_name=reviewer_name)
    review.save()
    return review


def reviewer_of(context: TenantContext) -> dict:
    name = context.membership.username if context.membership else f"api-key:{context.api_key.prefix}"
    return {"reviewer_id": context.user.pk, "reviewer_name": name}


@dataclass(frozen=True)
class PurgeReport:
    tenant: str
    records: int
    through_sequence: int | None


def retention_purge(*, tenant: Tenant, now=None) -> PurgeReport:
    """Removes the tenant's records older than AUDIT_RETENTION_DAYS (never, when unset), oldest
    first and only as a prefix of the chain, and writes an anchor so the rest still verifies."""
    days = settings.AUDIT["RETENTION_DAYS"]
    if not days:
        return PurgeReport(tenant.slug, 0, None)
    cutoff = (now or timezone.now()) - timedelta(days=days)
    with transaction.atomic():
        ChainHead.objects.get_or_create(tenant=tenant)
        ChainHead.objects.select_for_update().get(tenant=tenant)
        expired = AuditRecord.objects.filter(tenant=tenant, created_at__lt=cutoff)
        # Only a prefix: a record younger than the cutoff stops the purge (clocks are not sequences).
        first_kept = AuditRecord.objects.filter(tenant=tenant, created_at__gte=cutoff).order_by("sequence").first()
        if first_kept is not None:
            expired = expired.filter(sequence__lt=first_kept.sequence)
        last = expired.order_by("-sequence").first()
        if last is None:
            return PurgeReport(tenant.slug, 0, None)
        ids = list(expired.values_list("pk", flat=True))
        if connection.vendor == "postgresql":
            # The append-only trigger lets this one transaction delete (migration 0002).
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL audit.retention_purge = 'on'")
        for model in (Review, RetrievedChunk):
            _purge(model, list(model.objects.filter(record_id__in=ids).values_list("pk", flat=True)))
        _purge(AuditRecord, ids)
        RetentionPurge(tenant=tenant, older_than=cutoff, records=len(ids), through_sequence=last.sequence,
                       last_hash=last.record_hash).save()
    return PurgeReport(tenant.slug, len(ids), last.sequence)


def retention_purge_all(*, now=None) -> list[PurgeReport]:
    """`retention_purge` for every tenant (the daily task and the command); [] when no retention
    is set."""
    if not settings.AUDIT["RETENTION_DAYS"]:
        return []
    return [retention_purge(tenant=tenant, now=now) for tenant in Tenant.objects.order_by("slug")]


def _purge(model, ids: list[int]) -> None:
    """The one deletion the audit app performs, below the append-only query set."""
    from django.db.models.sql.subqueries import DeleteQuery

    if ids:
        DeleteQuery(model).delete_batch(ids, connection.alias)
