"""What happens to collections, documents and versions, announced for the layers above that keep
derived state: ingestion (a version's chunks) and search (the index). The documents app never
imports them; they subscribe in their AppConfig.ready() (apps/core/events.py says how delivery
works). Every service in services.py that changes what those layers depend on announces here."""

from __future__ import annotations

from dataclasses import dataclass

from apps.core.events import Registry

registry = Registry("documents")
announce = registry.announce
subscribe = registry.subscribe


@dataclass(frozen=True)
class VersionUploaded:
    """A new version's file is stored: its content is to be ingested."""

    version_id: int


@dataclass(frozen=True)
class VersionRequeued:
    """A failed or stuck version was sent back to ingestion by an administrator."""

    version_id: int


@dataclass(frozen=True)
class DocumentChanged:
    """Anything the index shows of a document changed: its state, its published version, its
    metadata or its own grants. The index re-reads the document as the database has it."""

    document_id: int


@dataclass(frozen=True)
class CollectionGrantsChanged:
    """The grants of a collection changed: so did those of every document that inherits them."""

    collection_id: int


@dataclass(frozen=True)
class DocumentPurged:
    """The content of these versions is gone for good: whatever was derived from it must go too.
    Delivered inside the purge's transaction, so nothing derived outlives a committed purge."""

    tenant_id: int
    document_id: int
    version_ids: tuple[int, ...]
