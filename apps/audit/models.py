"""The answer audit trail: one append-only record per search or ask, with every retrieved chunk.

Records never change. The application refuses updates and deletes (`AppendOnly`), and on
PostgreSQL the application's role holds only SELECT and INSERT on these tables and a trigger
refuses changes whoever asks, except deletions by the retention purge's SECURITY DEFINER
function (migration 0004). Each entry (record or review) carries the keyed hash of its
predecessor in the tenant's chain, so any edit made behind the application's back is found by
`manage.py audit_verify` (apps/audit/chain.py).

Who asked is kept as plain ids and names, not foreign keys: a record outlives the user, the key
and the document version it mentions."""

from __future__ import annotations

from django.db import models

from apps.tenants.models import Tenant
from apps.tenants.scoping import TenantOwned, TenantScopedQuerySet


class AppendOnly(Exception):
    """Raised on any attempt to change or delete an audit row through the ORM."""


class AppendOnlyQuerySet(TenantScopedQuerySet):
    def update(self, **kwargs):
        raise AppendOnly(f"{self.model._meta.verbose_name_plural} are append-only: they cannot be updated.")

    def delete(self):
        raise AppendOnly(f"{self.model._meta.verbose_name_plural} are append-only: they cannot be deleted.")

    def _raw_delete(self, using):  # Django's fast-delete path for cascades
        raise AppendOnly(f"{self.model._meta.verbose_name_plural} are append-only: they cannot be deleted.")


class AppendOnlyModel(TenantOwned):
    objects = AppendOnlyQuerySet.as_manager()  # type: ignore[misc]  # narrows TenantOwned's manager

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnly(f"This {self._meta.verbose_name} is append-only: it cannot be changed.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnly(f"This {self._meta.verbose_name} is append-only: it cannot be deleted.")


class Kind(models.TextChoices):
    SEARCH = "search", "Search"
    ASK = "ask", "Ask"


class Outcome(models.TextChoices):
    ANSWERED = "answered", "Answered"  # a search with results, or a grounded answer
    NO_RESULTS = "no_results", "No results"
    REFUSED = "refused", "No grounded answer"
    FAILED = "failed", "Failed"  # e.g. the search engine was down


class AuditRecord(AppendOnlyModel):
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="audit_records")
    sequence = models.PositiveBigIntegerField(help_text="Position in the tenant's hash chain, from 1.")
    created_at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    outcome = models.CharField(max_length=12, choices=Outcome.choices)

    # who: the person whose access applied, and the key that called (either may be empty)
    user_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    username = models.CharField(max_length=150, blank=True, db_index=True)
    api_key_id = models.BigIntegerField(null=True, blank=True)
    api_key_prefix = models.CharField(max_length=16, blank=True)
    acting_for_user = models.BooleanField(default=False, help_text="An API key acted for this user.")

    # what was asked
    query = models.TextField()
    filters = models.JSONField(default=dict)
    parameters = models.JSONField(default=dict, help_text="mode, k, fusion, weights, re-rank, …")

    # what came back
    answer = models.TextField(blank=True)
    citations = models.JSONField(default=list)
    generator = models.CharField(max_length=50, blank=True)
    generator_model = models.CharField(max_length=200, blank=True)
    timings = models.JSONField(default=dict, help_text="Milliseconds per pipeline step.")
    error = models.TextField(blank=True)

    # what a replay needs: whose access applied, and which engine, index and model answered
    principals = models.JSONField(default=list, help_text="The principals the caller held at that moment.")
    context = models.JSONField(
        default=list, help_text="The passages given to the generator: versions, offsets, text hashes."
    )
    embedding_model = models.CharField(max_length=200, blank=True)
    search_backend = models.CharField(max_length=50, blank=True)
    index_generation = models.CharField(max_length=200, blank=True, help_text="The concrete index (or file) searched.")

    previous_hash = models.CharField(max_length=64)
    key_id = models.CharField(
        max_length=32, blank=True, help_text="The chain key (AUDIT_KEYS) that keyed this record's hash."
    )
    record_hash = models.CharField(max_length=64, unique=True)
    content_sha256 = models.CharField(
        max_length=64, blank=True, help_text="Public SHA-256 of the canonical bytes: the record's Merkle leaf."
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [models.UniqueConstraint(fields=["tenant", "sequence"], name="audit_sequence_unique_in_tenant")]

    def __str__(self) -> str:
        return f"{self.tenant.slug}#{self.sequence} {self.kind}"


class RetrievedChunk(AppendOnlyModel):
    """One chunk the search returned for a record, whether or not it was finally shown."""

    record = models.ForeignKey(AuditRecord, on_delete=models.PROTECT, related_name="chunks")
    rank = models.PositiveIntegerField()
    chunk_id = models.CharField(max_length=64)
    document_id = models.BigIntegerField(db_index=True)
    version_id = models.BigIntegerField(db_index=True)
    text_sha256 = models.CharField(max_length=64, help_text="SHA-256 of the database chunk's text.")
    served_sha256 = models.CharField(
        max_length=64, blank=True, help_text="SHA-256 of the text the search engine served (its own copy)."
    )
    scores = models.JSONField(default=dict, help_text="fused, bm25, bm25_rank, dense, dense_rank, rerank")
    # The permission re-check against the database, after the engine's own filter.
    passed_recheck = models.BooleanField()
    recheck_reason = models.CharField(max_length=200, blank=True)
    shown = models.BooleanField(help_text="Returned to the caller (search) or given to the generator (ask).")
    cited = models.BooleanField(default=False)

    class Meta:
        ordering = ["record", "rank"]
        constraints = [models.UniqueConstraint(fields=["record", "rank"], name="retrieved_rank_unique_in_record")]

    def __str__(self) -> str:
        return f"record {self.record_id} rank {self.rank}: {self.chunk_id}"


class ChainHead(TenantOwned):
    """The tip of a tenant's chain (records and reviews share it): locked while an entry is
    appended, so sequences never fork. Signed checkpoints of it leave the database
    (apps/audit/checkpoints.py); on PostgreSQL a trigger refuses to move it backwards."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, primary_key=True, related_name="+")
    sequence = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return f"tenant {self.tenant_id} at {self.sequence}"


class RetentionPurge(AppendOnlyModel):
    """A retention purge removed a tenant's chain entries up to `through_sequence`; `last_hash`
    anchors the chain of what remains. The anchor is signed (apps/audit/keys.py) over what it says,
    including the policy in force and the age of the newest entry it removed, so a forged or
    premature anchor is reported by `audit_verify`."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    older_than = models.DateTimeField()
    retention_days = models.PositiveIntegerField(default=0, help_text="AUDIT_RETENTION_DAYS when it ran.")
    records = models.PositiveIntegerField()
    reviews = models.PositiveIntegerField(default=0)
    through_sequence = models.PositiveBigIntegerField()
    last_hash = models.CharField(max_length=64)
    newest_purged_at = models.DateTimeField(null=True, help_text="When the youngest entry it removed was written.")
    key_id = models.CharField(max_length=32, blank=True)
    signature = models.CharField(max_length=128, blank=True, help_text="Ed25519, base64, over the anchor's fields.")

    class Meta:
        ordering = ["tenant", "through_sequence"]

    def __str__(self) -> str:
        return f"tenant {self.tenant_id} purged through {self.through_sequence}"


class ReviewStatus(models.TextChoices):
    REVIEWED = "reviewed", "Reviewed"
    FLAGGED = "flagged", "Flagged"


class Review(AppendOnlyModel):
    """A compliance reviewer's verdict on a record. Reviews are kept apart from the record (which
    never changes) and are themselves append-only: the latest one is the record's status.

    A review is an entry of the tenant's chain, like a record: it takes the next sequence, links
    to the previous entry and names the reviewed record's hash, so removing, replacing or adding a
    review behind the application's back breaks the chain. Retention purges a review with the
    chain prefix it sits in; a review younger than its record may outlive it, so the link to the
    record has no database constraint (the record's id, sequence and hash stay in the review)."""

    # Null only on reviews written before reviews were chained (migration 0003): verify reports them.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, null=True, related_name="+")
    sequence = models.PositiveBigIntegerField(
        default=0, help_text="Position in the tenant's chain (shared with records)."
    )
    record = models.ForeignKey(AuditRecord, on_delete=models.DO_NOTHING, db_constraint=False, related_name="reviews")
    record_sequence = models.PositiveBigIntegerField(default=0)
    record_hash = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=10, choices=ReviewStatus.choices)
    comment = models.TextField(blank=True, max_length=5000)
    reviewer_id = models.BigIntegerField(null=True, blank=True)  # not a key: reviews outlive accounts
    reviewer_name = models.CharField(max_length=150)
    created_at = models.DateTimeField()
    previous_hash = models.CharField(max_length=64, blank=True)
    key_id = models.CharField(max_length=32, blank=True)
    entry_hash = models.CharField(max_length=64, blank=True)
    content_sha256 = models.CharField(max_length=64, blank=True, help_text="Public SHA-256 of the canonical bytes.")

    class Meta:
        ordering = ["-created_at", "-pk"]
        # Not unique: the chain head's lock keeps sequences apart, and verify names a duplicate.
        indexes = [models.Index(fields=["tenant", "sequence"], name="review_chain_position")]

    def __str__(self) -> str:
        return f"review of record {self.record_id}: {self.status}"
