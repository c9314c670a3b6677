"""Retrieval quality of a search backend alone, on a BEIR test collection: each corpus document
becomes one indexed chunk (no parsing, no chunking), each query runs through `backend.search`
with the same tenant and principal filters as any user query. Used by the `search_beir_eval`
command, the Cranfield quality tests and for tuning the fusion defaults."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from django.conf import settings
from tqdm import tqdm

from apps.search import feedback, ranking
from apps.search.backends.base import SearchBackend
from apps.search.types import Fusion, IndexedChunk, Mode, SearchQuery

from . import metrics
from .beir import BeirSet

EVAL_TENANT = 999_999  # a tenant id no real tenant has; the index used here is a throwaway one
EVAL_PRINCIPALS = ("tenant-wide",)


@dataclass(frozen=True)
class Config:
    label: str
    mode: Mode
    fusion: Fusion = Fusion.RRF
    dense_weight: float = 0.65
    rrf_k: int = 60
    feedback: bool = False  # pseudo-relevance feedback, as the answer pipeline does it (settings.ANSWERS)
    extra: dict = field(default_factory=dict)


STANDARD_CONFIGS = [
    Config("bm25", Mode.BM25),
    Config("dense", Mode.DENSE),
    Config("hybrid rrf", Mode.HYBRID, Fusion.RRF),
    Config("hybrid weighted", Mode.HYBRID, Fusion.WEIGHTED),
    Config("hybrid rrf + feedback", Mode.HYBRID, Fusion.RRF, feedback=True),
]


def cached_vectors(texts: list[str], embedder, cache_dir: Path | None, label: str, progress: bool) -> np.ndarray:
    key = hashlib.sha256(embedder.identity.encode() + b"\0" + "\0".join(texts).encode()).hexdigest()[:20]
    path = cache_dir / f"{label}-{key}.npy" if cache_dir else None
    if path and path.exists():
        return np.load(path)
    vectors = embedder.encode(texts, show_progress=progress)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return vectors


def corpus_texts(beir: BeirSet) -> list[str]:
    return [doc.text or doc.title for doc in beir.corpus]


def load_corpus(
    backend: SearchBackend, beir: BeirSet, embedder, *, cache_dir: Path | None = None, progress: bool = True
) -> int:
    texts = corpus_texts(beir)
    vectors = cached_vectors(texts, embedder, cache_dir, f"{beir.name}-corpus", progress)
    chunks = (
        IndexedChunk(
            chunk_id=f"beir-{doc.doc_id}",
            tenant_id=EVAL_TENANT,
            collection_id=1,
            document_id=number,
            version_id=number,
            published=True,
            principals=EVAL_PRINCIPALS,
            title=doc.title,
            text=doc.text or doc.title,
            vector=vector,
        )
        for number, (doc, vector) in enumerate(zip(beir.corpus, vectors, strict=True), start=1)
    )
    backend.rebuild(chunks)
    backend.refresh()
    return len(beir.corpus)


def _search(backend: SearchBackend, query: SearchQuery, config: Config, corpus_vectors: np.ndarray | None):
    bm25, dense = backend.retrieve(query)
    hits = ranking.rank(query, bm25, dense)
    if not config.feedback:
        return hits
    if query.vector is None or corpus_vectors is None:  # run() embeds both whenever a config has feedback
        raise ValueError("Feedback needs the query's vector and the corpus's vectors.")
    # Document n is corpus row n - 1 (load_corpus numbers them from 1).
    chosen = feedback.one_per_document(hits, lambda hit: hit.document_id, settings.ANSWERS["FEEDBACK_DOCUMENTS"])
    vector = feedback.moved_vector(
        query.vector,
        [corpus_vectors[hit.document_id - 1] for hit in chosen],
        query_weight=settings.ANSWERS["FEEDBACK_QUERY_WEIGHT"],
    )
    _, dense = backend.retrieve(replace(query, vector=vector, mode=Mode.DENSE))
    return ranking.rank(query, bm25, dense)


def run(
    backend: SearchBackend,
    beir: BeirSet,
    embedder,
    configs: Iterable[Config],
    *,
    k: int = 100,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> dict[str, dict]:
    """label → {"metrics": {...}, "per_query": {...}, "run": {...}}"""
    query_ids = sorted(beir.queries, key=lambda q: (len(q), q))
    vectors = cached_vectors([beir.queries[q] for q in query_ids], embedder, cache_dir, f"{beir.name}-queries", False)
    configs = list(configs)
    corpus_vectors = (
        cached_vectors(corpus_texts(beir), embedder, cache_dir, f"{beir.name}-corpus", progress)
        if any(c.feedback for c in configs)
        else None
    )
    results = {}
    for config in configs:
        ranking: dict[str, dict[str, float]] = {}
        for qid, vector in tqdm(
            list(zip(query_ids, vectors, strict=True)), desc=config.label, disable=not progress, leave=False
        ):
            query = SearchQuery(
                tenant_id=EVAL_TENANT,
                principals=EVAL_PRINCIPALS,
                text=beir.queries[qid],
                vector=vector,
                mode=config.mode,
                k=k,
                fusion=config.fusion,
                dense_weight=config.dense_weight,
                rrf_k=config.rrf_k,
                **config.extra,
            )
            hits = _search(backend, query, config, corpus_vectors)
            # Scores by rank keep exactly the backend's order (ties included).
            ranking[qid] = {hit.chunk_id.removeprefix("beir-"): float(k - hit.rank + 1) for hit in hits}
        per_query = metrics.per_query(beir.qrels, ranking)
        results[config.label] = {
            "metrics": {name: sum(values.values()) / len(values) for name, values in per_query.items()},
            "per_query": per_query,
            "run": ranking,
        }
    return results
