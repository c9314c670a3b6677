"""The search backend interface, and `search()` written once on top of two retrievers.

A backend implements storage and the two retrievers (`_retrieve`: BM25 and dense candidates,
already filtered by tenant, principals, `published` and the metadata filters, inside the engine).
Fusion, the per-document cap, the score floors and highlighting are `apps.search.ranking.rank`, a
pure function, identical for every backend; `search()` composes the two."""

from __future__ import annotations

import abc
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from apps.core.exceptions import TransientError

from .. import ranking
from ..types import MAX_K, Candidate, ChunkRef, IndexedChunk, Mode, SearchQuery, SearchResult


class SearchBackendError(TransientError):
    """The search backend could not do what was asked (down, misconfigured, refused)."""


class InvalidQuery(ValueError):
    """A query the backend refuses to run; the message says what to fix."""


@dataclass(frozen=True)
class RebuildReport:
    index: str
    chunks: int
    seconds: float


def validate_query(query: SearchQuery) -> None:
    if not query.principals:
        raise InvalidQuery("A search needs the caller's principals; nothing is readable without them.")
    if not 1 <= query.k <= MAX_K:
        raise InvalidQuery(f"k must be between 1 and {MAX_K}.")
    if query.mode in (Mode.DENSE, Mode.HYBRID) and query.vector is None:
        raise InvalidQuery(f"Mode {query.mode.value} needs the query vector.")
    if query.mode in (Mode.BM25, Mode.HYBRID) and not query.text.strip():
        raise InvalidQuery(f"Mode {query.mode.value} needs query text.")
    if not 0.0 <= query.dense_weight <= 1.0:
        raise InvalidQuery("dense_weight must be between 0 and 1.")
    if not 1 <= query.rrf_k <= 1000:
        raise InvalidQuery("rrf_k must be between 1 and 1000.")
    if query.max_per_document is not None and query.max_per_document < 1:
        raise InvalidQuery("max_per_document must be at least 1.")


class SearchBackend(abc.ABC):
    name: str

    # ---------------------------------------------------------------- writes (by chunk id)
    # Each tenant's chunks are stored apart (an index, a table), and only searchable chunks are
    # stored at all: the statistics a tenant's BM25 scores come from hold that tenant's published
    # chunks and nothing else (docs/search.md, "Tenant-isolated scoring").
    @abc.abstractmethod
    def ensure_index(self, tenant_id: int | None = None) -> None:
        """Create what every tenant shares, and the tenant's own index if one is named. Idempotent."""

    @abc.abstractmethod
    def index_chunks(self, chunks: Sequence[IndexedChunk]) -> None:
        """Insert or replace whole chunks, by id (a retry writes the same thing). A chunk that is
        not published is deleted instead: a draft is never stored."""

    @abc.abstractmethod
    def delete_chunks(self, refs: Sequence[ChunkRef]) -> None:
        """Remove chunks by id; missing ids are fine."""

    @abc.abstractmethod
    def rebuild(self, chunks: Iterable[IndexedChunk]) -> RebuildReport:
        """Build fresh indices from `chunks` (the published ones) and switch readers to them at once
        (no downtime)."""

    @abc.abstractmethod
    def fingerprints(self) -> dict[str, tuple[int, str]]:
        """chunk id → (tenant id, fingerprint) of everything indexed, for reconcile."""

    def refresh(self) -> None:  # noqa: B027 (an optional hook: engines that are not near-real-time have nothing to do)
        """Make every write so far visible to searches (near-real-time engines)."""

    @abc.abstractmethod
    def drop(self) -> None:
        """Delete everything this backend stores (its indices or file). For tests and evaluations."""

    # ---------------------------------------------------------------- reads
    @abc.abstractmethod
    def _retrieve(self, query: SearchQuery, size: int) -> tuple[list[Candidate], list[Candidate]]:
        """BM25 and dense candidates (each best first, at most `size`), filtered inside the engine
        by tenant, principals, published and `query.filters`. Empty lists for a mode's unused side."""

    @abc.abstractmethod
    def health(self) -> str:
        """A one-line description of a healthy backend; raises SearchBackendError otherwise."""

    def close(self) -> None:  # noqa: B027 (an optional hook: backends without connections have nothing to release)
        """Release connections. Safe to call more than once."""

    def search(self, query: SearchQuery) -> SearchResult:
        started = time.perf_counter()
        bm25, dense = self.retrieve(query)
        hits = ranking.rank(query, bm25, dense)
        return SearchResult(
            hits=hits,
            took_ms=round((time.perf_counter() - started) * 1000, 2),
            bm25_candidates=len(bm25),
            dense_candidates=len(dense),
        )

    # The engine's half of `search()`; the process's half is `ranking.rank` (the answer pipeline
    # calls the two as steps of their own, timed apart).
    def retrieve(self, query: SearchQuery) -> tuple[list[Candidate], list[Candidate]]:
        """The engine's part: BM25 and dense candidates, filtered inside the engine."""
        validate_query(query)
        return self._retrieve(query, query.candidates or max(4 * query.k, 50))
