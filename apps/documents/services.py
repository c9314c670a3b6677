"""The document lifecycle: collections, documents, versions, publish, roll back, archive, delete,
purge. Each write runs in one transaction and records its event in the document's history in that
same transaction. Permission checks happen above (API, admin); these enforce the lifecycle rules,
and one rule of who: legal hold and retention are set only by those retention_authority names,
whoever calls (the API, the admin site, a command, a task)."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from apps.access.grants import Grant, grants_clear, grants_list, grants_set
from apps.core.exceptions import ApplicationError, Conflict, PermissionDenied
from apps.tenants.actors import Actor
from apps.tenants.models import Membership, Scope, Tenant

from . import events
from .models import Collection, Document, DocumentEvent, DocumentState, DocumentVersion, IngestionStatus
from .uploads import inspect_upload

METADATA_FIELDS = (
    "title",
    "external_id",
    "author",
    "category",
    "tags",
    "effective_date",
    "source_url",
    "retention_until",
    "legal_hold",
)


def _event(document: Document, action: str, actor: Actor, *, version=None, reason: str = "", **details: Any) -> None:
    DocumentEvent.objects.create(
        document=document,
        version=version,
        action=action,
        actor=actor.user if actor.user is not None and actor.user.is_authenticated else None,
        api_key=actor.api_key,
        reason=reason,
        details=details,
    )


# --------------------------------------------------------------------------- legal hold and retention
RETENTION_FIELDS = frozenset({"retention_until", "legal_hold"})
WHO_SETS_RETENTION = "the owner or compliance role, or an API key with the 'documents:retention' scope"


def retention_authority(*, tenant: Tenant, actor: Actor) -> bool:
    """May `actor` set or lift legal holds and retention dates in `tenant`? The roles compliance owns
    (resolution.RETENTION_ROLES: owner, compliance) and API keys holding `documents:retention`
    themselves; a key acting for a member needs both (the member's role must be one of those).
    Nobody else: not a `manage` grant, not `documents:write`, not an admin, not a superuser
    without such a role, not a command or task acting as nobody."""
    from apps.tenants.resolution import role_may_use

    key = actor.api_key
    if key is not None:
        if key.tenant_id != tenant.pk or Scope.DOCUMENTS_RETENTION not in (key.scopes or []):
            return False
        if key.revoked_at is not None or key.is_expired:
            return False
        if actor.user is None or actor.user.pk == key.service_user_id:
            return True  # the key acting as itself
    user = actor.user
    if user is None or not user.is_authenticated:
        return False
    membership = Membership.objects.filter(tenant=tenant, user=user, is_active=True).first()
    return membership is not None and role_may_use(membership.role, Scope.DOCUMENTS_RETENTION)


def require_retention_authority(*, tenant: Tenant, actor: Actor) -> None:
    if not retention_authority(tenant=tenant, actor=actor):
        raise PermissionDenied(
            f"Legal hold and retention dates are set and lifted only by {WHO_SETS_RETENTION}; "
            "ask your compliance team.",
            code="retention_not_allowed",
            extra={"required_scope": Scope.DOCUMENTS_RETENTION},
        )


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _record_retention(document: Document, actor: Actor, before: dict[str, Any], reason: str = "") -> None:
    """One history event per change of hold or retention: who (the event's actor and key), the old
    and the new value."""
    if "legal_hold" in before and before["legal_hold"] != document.legal_hold:
        action = DocumentEvent.Action.LEGAL_HOLD_SET if document.legal_hold else DocumentEvent.Action.LEGAL_HOLD_LIFTED
        _event(
            document,
            action,
            actor,
            reason=reason,
            field="legal_hold",
            **{"from": before["legal_hold"], "to": document.legal_hold},
        )
    if "retention_until" in before and before["retention_until"] != document.retention_until:
        _event(
            document,
            DocumentEvent.Action.RETENTION_CHANGED,
            actor,
            reason=reason,
            field="retention_until",
            **{"from": _json(before["retention_until"]), "to": _json(document.retention_until)},
        )


def _refuse_under_hold(document: Document, what: str) -> None:
    if document.legal_hold:
        raise Conflict(
            f"This document is under legal hold: it cannot be {what}. Lift the hold first; only "
            f"{WHO_SETS_RETENTION} may.",
            code="legal_hold",
        )


# --------------------------------------------------------------------------- collections
@transaction.atomic
def collection_create(*, tenant: Tenant, name: str, description: str = "", **chunking: Any) -> Collection:
    """`chunking`: chunk_size, chunk_overlap, chunk_strategy (the model's defaults otherwise)."""
    name = name.strip()
    if not name:
        raise ApplicationError("A collection needs a name.", code="invalid_name")
    unknown = set(chunking) - {"chunk_size", "chunk_overlap", "chunk_strategy"}
    if unknown:
        raise ApplicationError(f"Unknown field(s): {', '.join(sorted(unknown))}.", code="invalid_field")
    if Collection.objects.filter(tenant=tenant, name=name).exists():
        raise Conflict(f"A collection named '{name}' already exists.", code="collection_exists")
    return Collection.objects.create(tenant=tenant, name=name, description=description, **chunking)


@transaction.atomic
def collection_update(*, collection: Collection, name: str | None = None, description: str | None = None) -> Collection:
    if name is not None:
        name = name.strip()
        if Collection.objects.filter(tenant=collection.tenant, name=name).exclude(pk=collection.pk).exists():
            raise Conflict(f"A collection named '{name}' already exists.", code="collection_exists")
        collection.name = name
    if description is not None:
        collection.description = description
    collection.save()
    return collection


@transaction.atomic
def collection_delete(*, collection: Collection) -> None:
    live = collection.documents.filter(tenant=collection.tenant, purged_at__isnull=True).count()
    if live:
        raise Conflict(
            f"Collection '{collection.name}' still holds {live} document(s); delete and purge them first.",
            code="collection_not_empty",
        )
    if collection.documents.filter(tenant=collection.tenant).exists():
        raise Conflict(
            f"Collection '{collection.name}' holds the tombstones of purged documents, kept so audit records "
            "still resolve; it cannot be deleted (rename it instead).",
            code="collection_holds_tombstones",
        )
    collection.delete()


# --------------------------------------------------------------------------- documents
@transaction.atomic
def document_create(
    *,
    tenant: Tenant,
    collection: Collection,
    actor: Actor,
    file: UploadedFile | None = None,
    change_note: str = "",
    publish_when_ready: bool = False,
    ingest: bool = True,
    **metadata: Any,
) -> Document:
    if collection.tenant_id != tenant.pk:
        raise ApplicationError("That collection belongs to another tenant.", code="invalid_collection")
    unknown = set(metadata) - set(METADATA_FIELDS)
    if unknown:
        raise ApplicationError(f"Unknown field(s): {', '.join(sorted(unknown))}.", code="invalid_field")
    # A new document starts without hold or retention; setting either is the compliance team's call.
    retention = {"legal_hold": False, "retention_until": None}
    if any(metadata.get(f, default) != default for f, default in retention.items()):
        require_retention_authority(tenant=tenant, actor=actor)
    document = Document.objects.create(
        tenant=tenant, collection=collection, created_by=actor.user if actor.user else None, **metadata
    )
    _event(document, DocumentEvent.Action.CREATED, actor, title=document.title)
    _record_retention(document, actor, retention)
    if file is not None:
        version_upload(
            document=document,
            file=file,
            change_note=change_note,
            actor=actor,
            publish_when_ready=publish_when_ready,
            ingest=ingest,
        )
    return document


def _locked(document: Document) -> Document:
    """The document row, locked for this transaction: every transition decides on fresh state and
    writes only its own fields, so concurrent changes never overwrite each other."""
    return Document.objects.for_tenant(document.tenant_id).select_for_update().get(pk=document.pk)


@transaction.atomic
def document_update(*, document: Document, actor: Actor, **changes: Any) -> Document:
    unknown = set(changes) - set(METADATA_FIELDS)
    if unknown:
        raise ApplicationError(f"Unknown field(s): {', '.join(sorted(unknown))}.", code="invalid_field")
    document = _locked(document)
    if document.purged_at is not None:
        raise Conflict("This document is purged; nothing about it can change.", code="already_purged")
    if document.state == DocumentState.DELETED and set(changes) - RETENTION_FIELDS:
        # A deleted document keeps only what decides its purge: retention and legal hold.
        raise Conflict(
            "This document is deleted; only retention_until and legal_hold can change.", code="document_deleted"
        )
    changed = {
        f: {"from": str(getattr(document, f)), "to": str(v)} for f, v in changes.items() if getattr(document, f) != v
    }
    retention_changed = RETENTION_FIELDS & changed.keys()
    if retention_changed:
        require_retention_authority(tenant=document.tenant, actor=actor)
    if changed:
        before = {f: getattr(document, f) for f in retention_changed}
        for field in changed:
            setattr(document, field, changes[field])
        document.save(update_fields=[*changed, "updated_at"])
        metadata = {f: change for f, change in changed.items() if f not in RETENTION_FIELDS}
        if metadata:
            _event(document, DocumentEvent.Action.METADATA_CHANGED, actor, changes=metadata)
        _record_retention(document, actor, before)
        events.announce(events.DocumentChanged(document.pk))
    return document


_UNSET: Any = object()


@transaction.atomic
def document_retention_set(
    *,
    document: Document,
    actor: Actor,
    legal_hold: bool = _UNSET,
    retention_until: date | None = _UNSET,
    reason: str = "",
) -> Document:
    """Set or lift the legal hold, set or clear the retention date: only by retention_authority, on
    any document of the tenant that is not purged (a deleted one included: a hold can still stop
    its purge). Each change is a history event with the old and the new value and `reason`."""
    require_retention_authority(tenant=document.tenant, actor=actor)
    document = _locked(document)
    if document.purged_at is not None:
        raise Conflict("This document is purged; nothing about it can change.", code="already_purged")
    changes = {f: v for f, v in (("legal_hold", legal_hold), ("retention_until", retention_until)) if v is not _UNSET}
    before = {f: getattr(document, f) for f, v in changes.items() if getattr(document, f) != v}
    if before:
        for field in before:
            setattr(document, field, changes[field])
        document.save(update_fields=[*before, "updated_at"])
        _record_retention(document, actor, before, reason)
    return document


def _refuse_if_deleted(document: Document) -> None:
    if document.state == DocumentState.DELETED:
        raise Conflict("This document is deleted.", code="document_deleted")


@transaction.atomic
def version_upload(
    *,
    document: Document,
    file: UploadedFile,
    actor: Actor,
    change_note: str = "",
    publish_when_ready: bool = False,
    ingest: bool = True,
) -> DocumentVersion:
    """A new immutable version. It is ingested after commit; the published version keeps serving
    until this one is published. Content identical to the latest version is refused (409)."""
    document = _locked(document)
    _refuse_if_deleted(document)
    info = inspect_upload(file)
    latest = document.versions.order_by("-number").first()
    if latest is not None and latest.sha256 == info.sha256:
        raise Conflict(
            f"This content is identical to version {latest.number}; nothing was uploaded.",
            code="duplicate_content",
            extra={"version": latest.number, "sha256": info.sha256},
        )
    number = (document.versions.aggregate(Max("number"))["number__max"] or 0) + 1
    version = DocumentVersion(
        document=document,
        number=number,
        original_filename=info.original_filename,
        media_type=info.media_type,
        size=info.size,
        sha256=info.sha256,
        change_note=change_note,
        publish_when_ready=publish_when_ready,
        created_by=actor.user if actor.user else None,
    )
    version.file.save(info.original_filename, file, save=False)
    stored_name = version.file.name
    assert stored_name is not None  # FieldFile.save names the field after what the storage stored
    try:
        with transaction.atomic():
            version.save()
    except IntegrityError as exc:
        version.file.storage.delete(stored_name)  # no row, no file
        raise Conflict(
            "Another version of this document was uploaded at the same moment; upload again.", code="concurrent_upload"
        ) from exc
    except Exception:
        version.file.storage.delete(stored_name)
        raise
    _event(document, DocumentEvent.Action.VERSION_UPLOADED, actor, version=version, number=number, sha256=info.sha256)
    if ingest:  # bulk imports ingest many versions together themselves
        events.announce(events.VersionUploaded(version.pk))
    return version


def _make_current(document: Document, version: DocumentVersion, actor: Actor, action: str, reason: str) -> Document:
    if version.document_id != document.pk:
        raise ApplicationError(
            f"Version {version.pk} belongs to another document; choose one of this document's versions.",
            code="version_of_another_document",
        )
    _refuse_if_deleted(document)
    if document.state == DocumentState.ARCHIVED:
        raise Conflict("This document is archived; unarchive it before publishing a version.", code="document_archived")
    if version.status != IngestionStatus.READY:
        raise Conflict(
            f"Version {version.number} is {version.status}; only a ready version can be published.",
            code="version_not_ready",
            extra={"status": version.status, "reason": version.status_reason},
        )
    previous = document.published_version
    document.published_version = version
    document.state = DocumentState.PUBLISHED
    document.save(update_fields=["published_version", "state", "updated_at"])
    _event(
        document,
        action,
        actor,
        version=version,
        reason=reason,
        number=version.number,
        previous=previous.number if previous else None,
    )
    events.announce(
        events.DocumentChanged(document.pk)
    )  # the new version's chunks become searchable, the old one's not
    return document


@transaction.atomic
def version_publish(*, version: DocumentVersion, actor: Actor, reason: str = "") -> Document:
    document = _locked(version.document)
    return _make_current(document, version, actor, DocumentEvent.Action.PUBLISHED, reason)


@transaction.atomic
def document_rollback(*, document: Document, version: DocumentVersion, actor: Actor, reason: str = "") -> Document:
    """Re-publish an earlier version of this same document."""
    document = _locked(document)
    if document.published_version_id == version.pk:
        raise Conflict(f"Version {version.number} is already the published one.", code="already_published")
    return _make_current(document, version, actor, DocumentEvent.Action.ROLLED_BACK, reason)


@transaction.atomic
def document_archive(*, document: Document, actor: Actor, reason: str = "") -> Document:
    document = _locked(document)
    _refuse_if_deleted(document)
    if document.state == DocumentState.ARCHIVED:
        raise Conflict("This document is already archived.", code="already_archived")
    document.state = DocumentState.ARCHIVED
    document.save(update_fields=["state", "updated_at"])
    _event(document, DocumentEvent.Action.ARCHIVED, actor, reason=reason)
    events.announce(events.DocumentChanged(document.pk))
    return document


@transaction.atomic
def document_unarchive(*, document: Document, actor: Actor, reason: str = "") -> Document:
    document = _locked(document)
    if document.state != DocumentState.ARCHIVED:
        raise Conflict(f"This document is {document.state}, not archived.", code="not_archived")
    document.state = DocumentState.PUBLISHED if document.published_version_id else DocumentState.DRAFT
    document.save(update_fields=["state", "updated_at"])
    _event(document, DocumentEvent.Action.UNARCHIVED, actor, reason=reason)
    events.announce(events.DocumentChanged(document.pk))
    return document


@transaction.atomic
def document_delete(*, document: Document, actor: Actor, reason: str = "") -> Document:
    """Soft delete: hidden everywhere, content kept until purged. Refused under legal hold (a
    retention date still to come does not stop it: the content is kept; it stops the purge)."""
    document = _locked(document)
    _refuse_if_deleted(document)
    _refuse_under_hold(document, "deleted")
    document.state = DocumentState.DELETED
    document.save(update_fields=["state", "updated_at"])
    _event(document, DocumentEvent.Action.DELETED, actor, reason=reason)
    events.announce(events.DocumentChanged(document.pk))
    return document


@transaction.atomic
def document_purge(*, document: Document, actor: Actor, reason: str = "", today: date | None = None) -> Document:
    """Remove the content of every version for good. Refused under legal hold or before the
    retention date. The rows stay as a tombstone (title, sha256, sizes, history), so audit records
    that cite a version still resolve to what it was."""
    document = _locked(document)
    if document.purged_at is not None:
        raise Conflict("This document is already purged.", code="already_purged")
    _refuse_under_hold(document, "purged")
    if document.state != DocumentState.DELETED:
        raise Conflict(
            "Delete the document before purging it (purge destroys the content for good).", code="not_deleted"
        )
    today = today or timezone.localdate()
    if document.retention_until is not None and today < document.retention_until:
        raise Conflict(
            f"This document must be retained until {document.retention_until}: purge it after that date, or ask "
            f"{WHO_SETS_RETENTION} to change the date.",
            code="retention_period",
            extra={"retention_until": str(document.retention_until)},
        )
    # The content goes everywhere it lives: files here (after commit), and whatever the layers above
    # derived from it (chunk texts and vectors, index entries), which forget it inside this
    # transaction. The versions stay as tombstones (sha256, sizes) and the history stays whole.
    events.announce(
        events.DocumentPurged(document.tenant_id, document.pk, tuple(document.versions.values_list("pk", flat=True)))
    )
    now = timezone.now()
    files = []
    for version in document.versions.all():
        if version.file.name:  # what bool(version.file) tests: a file is stored
            files.append((version.file.storage, version.file.name))
        version.file = ""
        version.purged_at = now
        version.save(update_fields=["file", "purged_at"])
    document.state = DocumentState.DELETED
    document.published_version = None
    document.purged_at = now
    document.save(update_fields=["state", "published_version", "purged_at", "updated_at"])
    _event(document, DocumentEvent.Action.PURGED, actor, reason=reason, versions=len(files))

    def remove_files() -> None:  # only once the purge is committed: a rollback loses nothing
        for storage, name in files:
            storage.delete(name)

    transaction.on_commit(remove_files)
    return document


@transaction.atomic
def grants_replace(*, obj: Collection | Document, grants: list[Grant], actor: Actor) -> list[Grant]:
    """Make `grants` the complete set on a collection or document. On a document this ends
    inheritance from its collection: from now on only the document's own grants count."""
    if not isinstance(obj, Collection | Document):  # grants_set would grant on any model
        raise TypeError(f"Grants are made on collections and documents, not on {type(obj).__name__}.")
    grants_set(obj, grants)
    if isinstance(obj, Document):
        Document.objects.for_tenant(obj.tenant_id).filter(pk=obj.pk).update(has_own_grants=True)
        obj.has_own_grants = True
        _event(obj, DocumentEvent.Action.GRANTS_CHANGED, actor, grants=[g.describe() for g in grants])
        events.announce(events.DocumentChanged(obj.pk))
    else:
        events.announce(events.CollectionGrantsChanged(obj.pk))
    return grants_list(obj)


@transaction.atomic
def document_grants_inherit(*, document: Document, actor: Actor) -> None:
    """Drop the document's own grants: it reads its collection's again."""
    grants_clear(document)
    Document.objects.for_tenant(document.tenant_id).filter(pk=document.pk).update(has_own_grants=False)
    document.has_own_grants = False
    _event(document, DocumentEvent.Action.GRANTS_CHANGED, actor, grants="inherited from collection")
    events.announce(events.DocumentChanged(document.pk))


@transaction.atomic
def version_requeue(*, version: DocumentVersion) -> bool:
    """Send a failed (or stuck) version back to ingestion. Ready versions and purged ones are left
    alone (False)."""
    if version.status == IngestionStatus.READY or version.purged_at is not None:
        return False
    version_set_status(version=version, status=IngestionStatus.PENDING, reason="queued again")
    events.announce(events.VersionRequeued(version.pk))
    return True


def versions_set_status(*, versions: list[DocumentVersion], status: str) -> None:
    """Ingestion's first (processing) and last (ready) step for a batch of versions, in one
    statement each, as version_set_status does for one (failures go there: they write an event)."""
    stamps: dict[str, str] = {
        IngestionStatus.PROCESSING: "processing_started_at",
        IngestionStatus.READY: "processing_finished_at",
    }
    stamp = stamps[status]
    now = timezone.now()
    # Across tenants: the rows it was handed (a worker's batch may hold several tenants' versions).
    DocumentVersion.objects.across_tenants().filter(pk__in=[v.pk for v in versions]).update(
        status=status, status_reason="", **{stamp: now}
    )
    for version in versions:
        version.status, version.status_reason = status, ""
        setattr(version, stamp, now)


@transaction.atomic
def version_set_status(*, version: DocumentVersion, status: str, reason: str = "") -> DocumentVersion:
    """Ingestion reports here: pending → processing → ready, or failed with a reason."""
    if status not in IngestionStatus.values:
        raise ApplicationError(f"Unknown status {status!r}.", code="invalid_status")
    version.status = status
    version.status_reason = reason
    now = timezone.now()
    fields = ["status", "status_reason"]
    if status == IngestionStatus.PROCESSING:
        version.processing_started_at = now
        fields.append("processing_started_at")
    if status in (IngestionStatus.READY, IngestionStatus.FAILED):
        version.processing_finished_at = now
        fields.append("processing_finished_at")
    version.save(update_fields=fields)
    if status == IngestionStatus.FAILED:
        _event(
            version.document, DocumentEvent.Action.INGESTION_FAILED, Actor(user=None), version=version, reason=reason
        )
    return version
