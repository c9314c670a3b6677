"""A request's query vector, kept in the serving process for the caller who asked, so a repeated
query (the next page, a refresh, a retry, the same question asked again) skips the encoder.

Keyed by who asked (tenant, API key, acting member) and what encoded it (model identity, query
runtime) as well as the text: a vector is only ever served back to the caller whose own query made
it. A cache shared across callers would be a side channel: a caller could time whether anyone else,
in their tenant or another, asked the same text lately. The vector of a text depends on nothing
else, so a hit is exactly the vector the encoder would give.

Bounded LRU of EMBEDDING_QUERY_CACHE_SIZE entries per process (a 384-float vector, about 1.6 KiB
each, with its key); 0 turns it off. docs/benchmarks/throughput-profile.md has the measurement."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol

import numpy as np
from cachetools import LRUCache
from django.conf import settings

if TYPE_CHECKING:
    from apps.tenants.resolution import TenantContext


class QueryEncoder(Protocol):  # apps.corpus.embedding.Embedder
    @property
    def identity(self) -> str: ...

    @property
    def query_runtime(self) -> str: ...

    def encode_queries(self, texts: list[str]) -> np.ndarray: ...


_lock = threading.Lock()
_cache: LRUCache | None = None


def _entries() -> LRUCache | None:
    global _cache
    size = settings.EMBEDDING.get("QUERY_CACHE_SIZE", 0)
    if size <= 0:
        return None
    if _cache is None or _cache.maxsize != size:
        with _lock:
            if _cache is None or _cache.maxsize != size:
                _cache = LRUCache(maxsize=size)
    return _cache


def query_vector(context: TenantContext, text: str, embedder: QueryEncoder) -> np.ndarray:
    """The vector of `text` for this caller: from their own earlier query, else encoded now."""
    entries = _entries()
    if entries is None:
        return embedder.encode_queries([text])[0]
    key = (
        context.tenant.pk,
        context.api_key.pk if context.api_key else None,
        context.user.pk,
        embedder.identity,
        embedder.query_runtime,
        text,
    )
    with _lock:  # cachetools' caches are not thread-safe; a hit takes microseconds
        vector = entries.get(key)
    if vector is None:
        vector = embedder.encode_queries([text])[0]
        vector.flags.writeable = False  # shared by later hits: nobody may change it in place
        with _lock:
            entries[key] = vector
    return vector


def clear() -> None:
    """Forget every vector (tests; a process serving on after a model change gets a new identity)."""
    with _lock:
        if _cache is not None:
            _cache.clear()
