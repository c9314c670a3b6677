"""What happens to the corpus, announced for the layers that keep a copy of it (search's index).
Ingestion writes the corpus and announces here; search subscribes in SearchConfig.ready(), so
neither imports the other (docs/architecture.md, "Layers")."""

from __future__ import annotations

from dataclasses import dataclass

from apps.core.events import Registry

from .types import ChunkRef

registry = Registry("corpus")
announce = registry.announce
subscribe = registry.subscribe


@dataclass(frozen=True)
class ChunksStored:
    """The chunks of these versions were (re)written. Ingestion announces it after its transaction
    and waits: a subscriber that copies them (the index) runs immediately, and its failure fails
    the ingestion task, which retries, so a version is ready only once it is searchable."""

    version_ids: tuple[int, ...]


@dataclass(frozen=True)
class ChunksRemoved:
    """These chunks are gone from the corpus (a re-ingest made fewer, or a purge forgot them)."""

    refs: tuple[ChunkRef, ...]
