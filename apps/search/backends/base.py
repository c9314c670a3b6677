"""The search backend interface, and `search()` written once on top of two retrievers.

A backend implements storage and the two retrievers (`_retrieve`: BM25 and dense candidates,
already filtered by tenant, principals, `published` and the metadata filters, inside the engine).
Fusion, the per-document cap, the score floors and highlighting happen here, identically for
every backend."""

from __future__ import annotations

import abc
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from apps.core.exceptions import TransientError

from .. import fusion
from ..analysis import highlight
from ..types import (
    MAX_K,
    Candidate,
    ChunkRef,
    Fusion,
    IndexedChunk,
    Mode,
    SearchHit,
    SearchQuery,
    SearchResult,
)


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
        hits = self.rank(query, bm25, dense)
        return SearchResult(
            hits=hits,
            took_ms=round((time.perf_counter() - started) * 1000, 2),
            bm25_candidates=len(bm25),
            dense_candidates=len(dense),
        )

    # `search()` in two halves, for callers that time (or inspect) each: the answer pipeline.
    def retrieve(self, query: SearchQuery) -> tuple[list[Candidate], list[Candidate]]:
        """The engine's part: BM25 and dense candidates, filtered inside the engine."""
        validate_query(query)
        return self._retrieve(query, query.candidates or max(4 * query.k, 50))

    def rank(self, query: SearchQuery, bm25: list[Candidate], dense: list[Candidate]) -> list[SearchHit]:
        """The process's part: fusion, floors, the per-document cap, highlights."""
        return self._rank(query, bm25, dense)

    def _rank(self, query: SearchQuery, bm25: list[Candidate], dense: list[Candidate]) -> list[SearchHit]:
        by_id = {c.chunk_id: c for c in (*dense, *bm25)}
        bm25_scores = {c.chunk_id: c.score for c in bm25}
        dense_scores = {c.chunk_id: c.score for c in dense}
        bm25_rank = {c.chunk_id: i for i, c in enumerate(bm25, start=1)}
        dense_rank = {c.chunk_id: i for i, c in enumerate(dense, start=1)}

        if query.mode == Mode.BM25:
            fused = bm25_scores
        elif query.mode == Mode.DENSE:
            fused = dense_scores
        elif query.fusion == Fusion.RRF:
            fused = fusion.reciprocal_rank([[c.chunk_id for c in bm25], [c.chunk_id for c in dense]], k=query.rrf_k)
        else:
            fused = fusion.weighted(bm25_scores, dense_scores, dense_weight=query.dense_weight)

        def relevant(chunk_id: str) -> bool:
            floors = []
            if query.min_similarity is not None and query.mode != Mode.BM25:
                floors.append(dense_scores.get(chunk_id, -1.0) >= query.min_similarity)
            if query.min_bm25 is not None and query.mode != Mode.DENSE:
                floors.append(bm25_scores.get(chunk_id, 0.0) >= query.min_bm25)
            return not floors or any(floors)  # evidence from either retriever is enough

        hits: list[SearchHit] = []
        per_document: dict[int, int] = {}
        for chunk_id in sorted(fused, key=lambda cid: (-fused[cid], cid)):
            if not relevant(chunk_id):
                continue
            candidate = by_id[chunk_id]
            if query.max_per_document is not None:
                if per_document.get(candidate.document_id, 0) >= query.max_per_document:
                    continue
                per_document[candidate.document_id] = per_document.get(candidate.document_id, 0) + 1
            hits.append(
                SearchHit(
                    chunk_id=chunk_id,
                    document_id=candidate.document_id,
                    version_id=candidate.version_id,
                    collection_id=candidate.collection_id,
                    rank=len(hits) + 1,
                    score=round(fused[chunk_id], 6),
                    components={
                        "bm25": bm25_scores.get(chunk_id),
                        "bm25_rank": bm25_rank.get(chunk_id),
                        "dense": dense_scores.get(chunk_id),
                        "dense_rank": dense_rank.get(chunk_id),
                    },
                    title=candidate.title,
                    text=candidate.text,
                    highlights=highlight(candidate.text, query.text) if query.text else [],
                )
            )
            if len(hits) == query.k:
                break
        return hits
