"""Pseudo-relevance feedback on the dense side (Rocchio): the query vector moves toward the vectors
of a first pass's best documents, and the dense retriever runs again with it. The documents a
question is about share vocabulary the question lacks; their vectors carry it.

Pure functions, shared by the answer pipeline (`apps.answers.steps.Feedback`, which uses only
chunks that passed the permission re-check) and the backend evaluation (`apps.evaluation.backend_eval`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def one_per_document(ranked: Iterable[T], document_of, limit: int) -> list[T]:
    """The first (best) item of each document, in order, at most `limit` of them: one long
    document must not outvote the others."""
    chosen: dict[int, T] = {}
    for item in ranked:
        chosen.setdefault(document_of(item), item)
        if len(chosen) == limit:
            break
    return list(chosen.values())


def moved_vector(
    query_vector: np.ndarray, feedback_vectors: Sequence[np.ndarray], *, query_weight: float
) -> np.ndarray:
    """weight · query + (1 − weight) · mean(feedback), L2-normalised (the index holds unit vectors)."""
    if not len(feedback_vectors):
        return query_vector
    moved = query_weight * np.asarray(query_vector, dtype=np.float32) + (1.0 - query_weight) * np.mean(
        feedback_vectors, axis=0
    )
    return (moved / np.linalg.norm(moved)).astype(np.float32)
