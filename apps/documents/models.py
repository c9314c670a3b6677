"""Collections, documents and their immutable versions, and each document's history."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from apps.access.levels import Level
from apps.tenants.models import ApiKey, Tenant
from apps.tenants.scoping import TenantOwned


class ChunkStrategy(models.TextChoices):
    TOKENS = "tokens", "Token windows"
    SEMANTIC = "semantic", "Semantic (split where sentence similarity drops)"


class Collection(TenantOwned):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="collections")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # How ingestion chunks this collection's documents (in the embedding model's tokens).
    chunk_size = models.PositiveSmallIntegerField(default=200, help_text="Tokens per chunk, at most 254.")
    chunk_overlap = models.PositiveSmallIntegerField(default=40, help_text="Tokens shared by neighbouring chunks.")
    chunk_strategy = models.CharField(max_length=16, choices=ChunkStrategy.choices, default=ChunkStrategy.TOKENS)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tenant", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="collection_name_unique_in_tenant")]
        permissions = [("manage_collection", "Can manage the collection and its documents' lifecycle")]

    def __str__(self) -> str:
        return self.name


class DocumentState(models.TextChoices):
    DRAFT = "draft", "Draft"  # no published version yet
    PUBLISHED = "published", "Published"
    ARCHIVED = "archived", "Archived"  # hidden from search, kept
    DELETED = "deleted", "Deleted"  # soft-deleted; purge removes the content


class Document(TenantOwned):
    # How access reads a document (apps/access/checks.py): it has its collection's grants until it
    # gets its own, and its state raises the level needed to see it at all (`view` shows published
    # documents only, and only their published version: api.py's version list).
    grants_inherited_from = "collection"
    level_to_see = {
        DocumentState.PUBLISHED: Level.VIEW,
        DocumentState.DRAFT: Level.CHANGE,
        DocumentState.ARCHIVED: Level.CHANGE,
        DocumentState.DELETED: Level.MANAGE,
    }

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="documents")
    collection = models.ForeignKey(Collection, on_delete=models.PROTECT, related_name="documents")
    title = models.CharField(max_length=500)
    # The tenant's own id for the document (a path, a record id): bulk imports resume by it.
    external_id = models.CharField(max_length=500, blank=True, db_index=True)
    author = models.CharField(max_length=200, blank=True)
    category = models.CharField(max_length=100, blank=True)
    tags = models.JSONField(default=list, blank=True)
    effective_date = models.DateField(null=True, blank=True)
    source_url = models.URLField(max_length=1000, blank=True)
    state = models.CharField(max_length=16, choices=DocumentState.choices, default=DocumentState.DRAFT)
    published_version = models.ForeignKey(
        "DocumentVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Access: a document reads its collection's grants unless it has grants of its own.
    has_own_grants = models.BooleanField(default=False)
    # Set and lifted only by the owner and compliance roles and keys with documents:retention
    # (services.retention_authority), each change a history event.
    retention_until = models.DateField(null=True, blank=True, help_text="Purge is refused before this date.")
    legal_hold = models.BooleanField(default=False, help_text="Delete and purge are refused while set.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["tenant", "-updated_at"]
        indexes = [models.Index(fields=["tenant", "state"]), models.Index(fields=["tenant", "collection"])]
        permissions = [("manage_document", "Can publish, roll back, archive, delete and purge the document")]

    def __str__(self) -> str:
        return self.title


class IngestionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


def version_upload_path(version: DocumentVersion, filename: str) -> str:
    # The stored name never uses the uploaded one (path tricks): tenant/document/version + sha.
    return f"documents/{version.document.tenant_id}/{version.document_id}/v{version.number}-{version.sha256[:16]}"


class DocumentVersion(TenantOwned):
    """One uploaded content of a document. Immutable once created: only its ingestion status moves
    (and purge empties the file, keeping the row as a tombstone for audit)."""

    MUTABLE_FIELDS = frozenset(
        {
            "status",
            "status_reason",
            "processing_started_at",
            "processing_finished_at",
            "progress_done",
            "progress_total",
        }
    )

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    file = models.FileField(upload_to=version_upload_path, max_length=500, blank=True)
    original_filename = models.CharField(max_length=255)
    media_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    change_note = models.TextField(blank=True)
    # Asked for at upload: publish this version as soon as ingestion has made it ready.
    publish_when_ready = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=16, choices=IngestionStatus.choices, default=IngestionStatus.PENDING)
    status_reason = models.TextField(blank=True)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    processing_finished_at = models.DateTimeField(null=True, blank=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["document", "-number"]
        constraints = [models.UniqueConstraint(fields=["document", "number"], name="version_number_unique_in_document")]

    def __str__(self) -> str:
        return f"{self.document} v{self.number}"

    def save(self, *args, update_fields=None, **kwargs):
        if self.pk is not None and not self._state.adding:
            allowed = self.MUTABLE_FIELDS | {"file", "purged_at"}
            if update_fields is None or not set(update_fields) <= allowed:
                raise ValueError(
                    "A document version is immutable; only its ingestion status may change "
                    f"(save with update_fields within {sorted(allowed)})."
                )
        super().save(*args, update_fields=update_fields, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Document versions are never deleted one by one; purge the document instead.")


class DocumentEvent(TenantOwned):
    """The document's history: every lifecycle transition, who made it, when and why."""

    class Action(models.TextChoices):
        CREATED = "created"
        VERSION_UPLOADED = "version_uploaded"
        METADATA_CHANGED = "metadata_changed"
        PUBLISHED = "published"
        ROLLED_BACK = "rolled_back"
        ARCHIVED = "archived"
        UNARCHIVED = "unarchived"
        DELETED = "deleted"
        PURGED = "purged"
        GRANTS_CHANGED = "grants_changed"
        INGESTION_FAILED = "ingestion_failed"
        LEGAL_HOLD_SET = "legal_hold_set"
        LEGAL_HOLD_LIFTED = "legal_hold_lifted"
        RETENTION_CHANGED = "retention_changed"

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="events")
    version = models.ForeignKey(DocumentVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=32, choices=Action.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["document", "-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.document}: {self.action}"


@receiver(pre_delete, sender=DocumentVersion)
def _refuse_deleting_held_versions(sender, instance: DocumentVersion, **kwargs) -> None:
    """A version's rows (and, by cascade, its chunks) hold the content a legal hold keeps: a row
    delete of a version of a held document is refused like the document's own."""
    from apps.core.exceptions import Conflict

    if Document.objects.across_tenants().filter(pk=instance.document_id, legal_hold=True).exists():  # its own
        raise Conflict(
            f"Version {instance.pk} belongs to document {instance.document_id}, under legal hold: it cannot be "
            "deleted. "
            "The compliance team (owner or compliance role, or an API key with documents:retention) must lift "
            "the hold first.",
            code="legal_hold",
        )


@receiver(pre_delete, sender=Document)
def _refuse_deleting_retained_rows(sender, instance: Document, **kwargs) -> None:
    """A row delete (a tenant deleted with its documents, a shell) would destroy content the
    lifecycle services refuse to purge: refused the same way, whoever asks."""
    from django.utils import timezone

    from apps.core.exceptions import Conflict

    if instance.legal_hold:
        raise Conflict(
            f"Document {instance.pk} is under legal hold: it cannot be deleted. The compliance team (owner or "
            "compliance role, or an API key with documents:retention) must lift the hold first.",
            code="legal_hold",
        )
    if (
        instance.purged_at is None
        and instance.retention_until is not None
        and timezone.localdate() < instance.retention_until
    ):
        raise Conflict(
            f"Document {instance.pk} must be retained until {instance.retention_until}: it cannot be deleted "
            "before then.",
            code="retention_period",
            extra={"retention_until": str(instance.retention_until)},
        )
