"""The answer audit trail: one append-only record per search or ask, with every retrieved chunk.

Records never change. The application refuses updates and deletes (`AppendOnly`), and on
PostgreSQL a trigger refuses them too (migration 0002), except the retention purge, which
announces itself to the trigger inside its own transaction. Each record carries the hash of its
predecessor in the tenant's chain, so any edit made behind the application's back is found by
`manage.py audit_verify`.

Who asked is kept as plain ids and names, not foreign keys: a record outlives the user, the key
and the document version it mentions."""

from __future__ import annotations

from django.db import models

from apps.tenants.models import Tenant


class AppendOnly(Exception):
    """Raised on any attempt to change or delete an audit row through the ORM."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnly(f"{self.model._meta.verbose_name_plural} are append-only: they cannot be updated.")

    def delete(self):
        raise AppendOnly(f"{self.model._meta.verbose_name_plural} are append-only: they cannot be deleted.")

    def _raw_delete(self, using):  # Django's fast-delete path for cascades
        raise AppendOnly(f"{self.model._meta.verbose_name_plural} are append-only: they cannot be deleted.")


class AppendOnlyModel(models.Model):
    objects = AppendOnlyQuerySet.as_manager()

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

    previous_hash = models.CharField(max_length=64)
    record_hash = models.CharField(max_length=64, unique=True)

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
    text_sha256 = models.CharField(max_length=64)
    scores = models.JSONField(default=dict, help_text="fused, bm25, bm25_rank, dense, dense_rank, rerank")
    # The permission re-check against the database, after the engine's own filter.
    passed_recheck = models.BooleanField()
    recheck_reason = models.CharField(max_length=200, blank=True)
    shown = models.BooleanField(help_text="Returned to the caller (search) or given to the generator (ask).")
    cited = models.BooleanField(default=False)

    class Meta:
        ordering = ["record", "rank"]
        constraints = [models.UniqueConstraint(fields=["record", "rank"], name="retrieved_rank_unique_in_record")]


class ChainHead(models.Model):
    """The tip of a tenant's chain: locked while a record is appended, so sequences never fork.
    Not itself audit data (it can always be recomputed from the records)."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, primary_key=True, related_name="+")
    sequence = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, blank=True)


class RetentionPurge(AppendOnlyModel):
    """A retention purge removed a tenant's records up to `through_sequence`; `last_hash` anchors
    the chain of what remains."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    older_than = models.DateTimeField()
    records = models.PositiveIntegerField()
    through_sequence = models.PositiveBigIntegerField()
    last_hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["tenant", "through_sequence"]


class ReviewStatus(models.TextChoices):
    REVIEWED = "reviewed", "Reviewed"
    FLAGGED = "flagged", "Flagged"


class Review(AppendOnlyModel):
    """A compliance reviewer's verdict on a record. Reviews are kept apart from the record (which
    never changes) and are themselves append-only: the latest one is the record's status."""

    record = models.ForeignKey(AuditRecord, on_delete=models.PROTECT, related_name="reviews")
    status = models.CharField(max_length=10, choices=ReviewStatus.choices)
    comment = models.TextField(blank=True, max_length=5000)
    reviewer_id = models.BigIntegerField(null=True, blank=True)  # not a key: reviews outlive accounts
    reviewer_name = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
