"""The values that cross the search backend interface. Plain, typed, backend-agnostic."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from enum import Enum

import numpy as np

from apps.corpus.types import ChunkRef as ChunkRef  # re-exported: the backends take and return refs


class Mode(str, Enum):
    BM25 = "bm25"
    DENSE = "dense"
    HYBRID = "hybrid"


class Fusion(str, Enum):
    RRF = "rrf"  # reciprocal rank fusion
    WEIGHTED = "weighted"  # min-max normalised scores, weighted sum


@dataclass(frozen=True)
class IndexedChunk:
    """One chunk as the index stores it: text, vector, and everything a query filters on."""

    chunk_id: str
    tenant_id: int
    collection_id: int
    document_id: int
    version_id: int
    published: bool
    principals: tuple[str, ...]
    title: str
    text: str
    vector: np.ndarray  # float32, L2-normalised
    category: str = ""
    tags: tuple[str, ...] = ()
    effective_date: date | None = None

    def access_fingerprint(self) -> str:
        """Changes whenever anything but the text and vector changes (access, visibility, metadata)."""
        return _digest(
            self.published,
            sorted(self.principals),
            self.title,
            self.category,
            sorted(self.tags),
            self.effective_date.isoformat() if self.effective_date else None,
            self.collection_id,
        )

    def fingerprint(self) -> str:
        """What reconcile compares between the database and the index."""
        return _digest(self.access_fingerprint(), hashlib.sha256(self.text.encode()).hexdigest(), self.version_id)


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class SearchFilters:
    collection_ids: tuple[int, ...] = ()
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()  # a chunk matches if it has any of them
    document_ids: tuple[int, ...] = ()
    date_from: date | None = None
    date_to: date | None = None


# Bounds a caller may choose within; the defaults were tuned on the shared Cranfield set
# (docs/search.md).
MAX_K = 100
DEFAULT_RRF_K = 60
DEFAULT_DENSE_WEIGHT = 0.65


@dataclass(frozen=True)
class SearchQuery:
    """A search as the backend runs it. `tenant_id` and `principals` are mandatory: the backend
    puts them, with `published`, in the filter of every query it sends."""

    tenant_id: int
    principals: tuple[str, ...]
    text: str
    vector: np.ndarray | None = None
    mode: Mode = Mode.HYBRID
    k: int = 10
    filters: SearchFilters = field(default_factory=SearchFilters)
    fusion: Fusion = Fusion.RRF
    dense_weight: float = DEFAULT_DENSE_WEIGHT  # weighted fusion: dense share, BM25 gets the rest
    rrf_k: int = DEFAULT_RRF_K
    max_per_document: int | None = None
    min_similarity: float | None = None  # cosine floor for dense evidence
    min_bm25: float | None = None  # BM25 floor for keyword evidence
    candidates: int | None = None  # per retriever; default max(4k, 50)


@dataclass(frozen=True)
class Candidate:
    """One retriever's hit, before fusion."""

    chunk_id: str
    document_id: int
    version_id: int
    collection_id: int
    score: float  # BM25 score, or cosine similarity for dense
    title: str
    text: str
    index: str = ""  # the concrete index (or file generation) that served it, for the audit record


@dataclass(frozen=True)
class SearchHit:
    chunk_id: str
    document_id: int
    version_id: int
    collection_id: int
    rank: int
    score: float  # the fused score that ordered the results
    components: dict  # bm25 / bm25_rank / dense / dense_rank, None where a retriever did not find it
    title: str
    text: str
    highlights: list[str]


@dataclass(frozen=True)
class SearchResult:
    hits: list[SearchHit]
    took_ms: float
    bm25_candidates: int
    dense_candidates: int
