"""Fusing the rankings of two retrievers. Pure functions over chunk ids, unit-tested by hand."""

from __future__ import annotations

from collections.abc import Sequence


def reciprocal_rank(rankings: Sequence[Sequence[str]], *, k: int = 60) -> dict[str, float]:
    """Σ 1 / (k + rank) over the rankings a chunk appears in (rank starts at 1)."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, chunk_id in enumerate(ranking, start=1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (k + rank)
    return fused


def min_max(scores: dict[str, float]) -> dict[str, float]:
    """Scale to [0, 1]; a single score (or all equal) becomes 1."""
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    if hi == lo:
        return dict.fromkeys(scores, 1.0)
    return {key: (value - lo) / (hi - lo) for key, value in scores.items()}


def weighted(bm25: dict[str, float], dense: dict[str, float], *, dense_weight: float) -> dict[str, float]:
    """dense_weight · minmax(dense) + (1 − dense_weight) · minmax(bm25); a retriever that did not
    find a chunk contributes 0 for it."""
    bm25_n, dense_n = min_max(bm25), min_max(dense)
    return {
        key: dense_weight * dense_n.get(key, 0.0) + (1.0 - dense_weight) * bm25_n.get(key, 0.0)
        for key in bm25_n.keys() | dense_n.keys()
    }
