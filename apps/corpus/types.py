"""Plain values the corpus hands to the layers above."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ChunkRef:
    """A chunk by id, with the tenant it belongs to (each tenant has its own index)."""

    chunk_id: str
    tenant_id: int


@dataclass(frozen=True, eq=False)  # eq=False: a NumPy array has no single truth value to compare by
class SectionSentences:
    """A section's sentences as ingestion embedded them: each one's offsets into the version's
    extracted text, and its vector (one row of `vectors` per span)."""

    spans: tuple[tuple[int, int], ...]
    vectors: np.ndarray
