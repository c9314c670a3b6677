"""The process's half of a search: fusion, the score floors, the per-document cap and highlights
over the candidates the engine returned. A pure function, the same for every backend; the answer
pipeline calls it as its own step (`answers.steps.Fuse`), `SearchBackend.search()` after retrieving."""

from __future__ import annotations

from collections.abc import Sequence

from . import fusion
from .analysis import highlight
from .types import Candidate, Fusion, Mode, SearchHit, SearchQuery


def rank(query: SearchQuery, bm25: Sequence[Candidate], dense: Sequence[Candidate]) -> list[SearchHit]:
    """The best `query.k` hits of the fused ranking (each retriever's candidates best first)."""
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
