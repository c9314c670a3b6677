"""Plain values the corpus hands to the layers above."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChunkRef:
    """A chunk by id, with the tenant it belongs to (each tenant has its own index)."""

    chunk_id: str
    tenant_id: int
