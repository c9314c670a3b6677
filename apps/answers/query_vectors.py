"""A request's query vector, kept in the serving process for the caller who asked, so a repeated
query (the next page, a refresh, a retry, the same question asked again) skips the encoder.

Who may get a vector back, and what a caller can learn from the cache's behaviour:

- Keyed by who asked (tenant, API key, acting member) as well as the text: a vector is only ever
  served back to the caller whose own query made it. A cache shared across callers would tell a
  caller, by the time a query took (or its `timings.embed`), that someone else asked that text.
- One LRU per tenant, of EMBEDDING_QUERY_CACHE_SIZE entries: no other tenant's queries can evict a
  tenant's entries, so their activity shows nowhere. Inside a tenant the budget is shared: a member
  who refills their own entries can tell that colleagues asked *something* new since (never what).
- The model identity and query runtime are part of the key; the text is keyed by its SHA-256, so
  the cache holds no query text. HyDE's text (query + a generated passage) is not cached: it
  practically never repeats.

A hit is exactly the vector the encoder gave for that text. Memory: about 1.7 KiB per entry, at
most tenants × EMBEDDING_QUERY_CACHE_SIZE entries per process; 0 turns it off. Measured in
docs/benchmarks/throughput-profile.md."""

from __future__ import annotations

import hashlib
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


_lock = threading.Lock()  # cachetools' caches are not thread-safe; a hit holds it for microseconds
_per_tenant: dict[int, LRUCache] = {}


def query_vector(context: TenantContext, text: str, embedder: QueryEncoder, *, cache: bool = True) -> np.ndarray:
    """The vector of `text` for this caller: from their own earlier query, else encoded now.
    `cache=False` encodes and keeps nothing (a text that will not repeat)."""
    size = settings.EMBEDDING.get("QUERY_CACHE_SIZE", 0)
    if not cache or size <= 0:
        return embedder.encode_queries([text])[0]
    key = (
        context.api_key.pk if context.api_key else None,
        context.user.pk,
        embedder.identity,
        embedder.query_runtime,
        hashlib.sha256(text.encode()).digest(),
    )
    with _lock:
        entries = _per_tenant.get(context.tenant.pk)
        if entries is None or entries.maxsize != size:
            entries = _per_tenant[context.tenant.pk] = LRUCache(maxsize=size)
        vector = entries.get(key)
    if vector is None:
        vector = embedder.encode_queries([text])[0]
        vector.flags.writeable = False  # shared by later hits: nobody may change it in place
        with _lock:
            entries[key] = vector
    return vector


def clear() -> None:
    """Forget every vector (tests, whose ids repeat from one test to the next)."""
    with _lock:
        _per_tenant.clear()
