"""The Elasticsearch backend, on the official Python client. The only module that talks to
Elasticsearch.

Indices: one shared, versioned index behind the alias `<prefix>-chunks`, with routing by tenant;
tenants listed in DEDICATED_TENANTS get their own `<prefix>-chunks-t<tenant id>`. Every query,
BM25 and kNN alike, carries the tenant, `published` and principals filter (inside the knn clause:
a pre-filter, so top-k is computed among what the caller may read), and both go in one msearch.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone

from elasticsearch import Elasticsearch, helpers
from elasticsearch import exceptions as es_exceptions

from ..analysis import analyzed_text
from ..types import Candidate, ChunkRef, ChunkUpdate, IndexedChunk, Mode, SearchQuery
from .base import RebuildReport, SearchBackend, SearchBackendError

DIMS = 384
TITLE_BOOST = 0.5
SOURCE_FIELDS = ["chunk_id", "document_id", "version_id", "collection_id", "title", "text"]
ANALYSIS_SERVER = "english"  # the server's `english` analyser
ANALYSIS_PYTHON = "python-english"  # pre-analysed by analysis.py, whitespace on the server


def build_client(config: dict) -> Elasticsearch:
    options: dict = {
        "hosts": [config["URL"]],
        "request_timeout": config["REQUEST_TIMEOUT"],
        "retry_on_timeout": True,
        "max_retries": 2,
    }
    if config["URL"].startswith("https://"):  # the client refuses TLS options on plain http
        options["verify_certs"] = config["VERIFY_CERTS"]
        if config["CA_CERTS"]:
            options["ca_certs"] = config["CA_CERTS"]
    if config["API_KEY"]:
        options["api_key"] = config["API_KEY"]
    elif config["USERNAME"]:
        options["basic_auth"] = (config["USERNAME"], config["PASSWORD"])
    return Elasticsearch(**options)


class ElasticsearchBackend(SearchBackend):
    name = "elasticsearch"

    def __init__(self, config: dict):
        self.config = config
        self.client = build_client(config)
        self.prefix = config["INDEX_PREFIX"]
        self.dedicated = {int(t) for t in config.get("DEDICATED_TENANTS", [])}
        self._analysis: str | None = None

    # ---------------------------------------------------------------- plumbing
    def _alias(self, tenant_id: int) -> str:
        base = f"{self.prefix}-chunks"
        return f"{base}-t{tenant_id}" if tenant_id in self.dedicated else base

    def _aliases(self) -> list[str]:
        try:
            found = self.client.indices.get_alias(name=f"{self.prefix}-chunks*")
        except es_exceptions.NotFoundError:
            return []
        return sorted({alias for index in found.values() for alias in index["aliases"]})

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except es_exceptions.ApiError as exc:
            raise SearchBackendError(f"Elasticsearch refused {what}: {exc.message} ({exc.meta.status})") from exc
        except es_exceptions.TransportError as exc:
            raise SearchBackendError(f"Elasticsearch at {self.config['URL']} unreachable during {what}: {exc}") from exc

    def analysis(self) -> str:
        """Which English analysis the server offers: detected once, never assumed."""
        if self._analysis is None:
            try:
                self.client.indices.analyze(analyzer="english", text="running")
                self._analysis = ANALYSIS_SERVER
            except es_exceptions.BadRequestError:
                self._analysis = ANALYSIS_PYTHON
            except es_exceptions.TransportError as exc:  # unreachable: say so, decide next time
                raise SearchBackendError(f"Elasticsearch at {self.config['URL']} unreachable: {exc}") from exc
        return self._analysis

    def _index_body(self) -> dict:
        english = self.analysis() == ANALYSIS_SERVER
        text_field = {"type": "text", "analyzer": "english" if english else "standard"}
        properties = {
            "chunk_id": {"type": "keyword"},
            "tenant_id": {"type": "integer"},
            "collection_id": {"type": "integer"},
            "document_id": {"type": "integer"},
            "version_id": {"type": "integer"},
            "published": {"type": "boolean"},
            "principals": {"type": "keyword"},
            "title": text_field,
            "text": text_field,
            "category": {"type": "keyword"},
            "tags": {"type": "keyword"},
            "effective_date": {"type": "date"},
            "fingerprint": {"type": "keyword", "index": False},
            "vector": {
                "type": "dense_vector",
                "dims": DIMS,
                "index": True,
                "similarity": "cosine",
                "index_options": {"type": "int8_hnsw" if self.config.get("INT8") else "hnsw", "m": 16, "ef_construction": 100},
            },
        }
        if not english:
            for field in ("title", "text"):
                properties[f"{field}_analyzed"] = {"type": "text", "analyzer": "whitespace"}
        return {
            "settings": {
                "number_of_shards": self.config.get("SHARDS", 1),
                "number_of_replicas": self.config.get("REPLICAS", 0),
            },
            "mappings": {
                "dynamic": "strict",
                "_meta": {"analysis": self.analysis(), "schema": 1},
                # Vectors are rebuilt from the database, never read back: keep them out of _source.
                "_source": {"excludes": ["vector"]},
                "properties": properties,
            },
        }

    def _new_index(self, alias: str) -> str:
        name = f"{alias}-{datetime.now(timezone.utc):%Y%m%d%H%M%S%f}"
        self._call("index creation", self.client.indices.create, index=name, **self._index_body())
        return name

    def ensure_index(self, tenant_id: int | None = None) -> None:
        aliases = {self._alias(tenant_id)} if tenant_id is not None else {f"{self.prefix}-chunks"} | {self._alias(t) for t in self.dedicated}
        for alias in aliases:
            if not self._call("alias look-up", self.client.indices.exists_alias, name=alias):
                index = self._new_index(alias)
                self._call("alias creation", self.client.indices.put_alias, index=index, name=alias)

    def health(self) -> str:
        try:
            health = self.client.options(request_timeout=3, max_retries=0).cluster.health()
        except es_exceptions.ApiError as exc:
            raise SearchBackendError(f"Elasticsearch at {self.config['URL']}: {exc.message}") from exc
        except es_exceptions.TransportError as exc:
            raise SearchBackendError(f"Elasticsearch at {self.config['URL']} unreachable: {exc}") from exc
        if health["status"] == "red":
            raise SearchBackendError(f"cluster {health['cluster_name']} is red")
        return f"cluster {health['cluster_name']} {health['status']}, {health['number_of_nodes']} node(s)"

    def close(self) -> None:
        self.client.close()

    def refresh(self) -> None:
        for alias in self._aliases():
            self._call("refresh", self.client.indices.refresh, index=alias)

    # ---------------------------------------------------------------- writes
    def _source(self, chunk: IndexedChunk) -> dict:
        source = {
            "chunk_id": chunk.chunk_id,
            "tenant_id": chunk.tenant_id,
            "collection_id": chunk.collection_id,
            "document_id": chunk.document_id,
            "version_id": chunk.version_id,
            "published": chunk.published,
            "principals": list(chunk.principals),
            "title": chunk.title,
            "text": chunk.text,
            "category": chunk.category,
            "tags": list(chunk.tags),
            "effective_date": chunk.effective_date.isoformat() if chunk.effective_date else None,
            "fingerprint": chunk.fingerprint(),
            "vector": [float(x) for x in chunk.vector],
        }
        if self.analysis() == ANALYSIS_PYTHON:
            source["title_analyzed"] = analyzed_text(chunk.title)
            source["text_analyzed"] = analyzed_text(chunk.text)
        return source

    def _bulk(self, what: str, actions: list[dict], *, missing_ok: bool) -> None:
        if not actions:
            return
        try:
            _, errors = helpers.bulk(self.client, actions, raise_on_error=False, raise_on_exception=True, stats_only=False)
        except es_exceptions.TransportError as exc:
            raise SearchBackendError(f"Elasticsearch at {self.config['URL']} unreachable during {what}: {exc}") from exc
        real = [e for e in errors if not (missing_ok and next(iter(e.values())).get("status") == 404)]
        if real:
            raise SearchBackendError(f"Elasticsearch refused {len(real)} {what} operation(s), first: {real[0]}")

    def index_chunks(self, chunks: Sequence[IndexedChunk]) -> None:
        for tenant_id in {c.tenant_id for c in chunks}:
            self.ensure_index(tenant_id)
        actions = [
            {"_op_type": "index", "_index": self._alias(c.tenant_id), "_id": c.chunk_id, "routing": str(c.tenant_id), "_source": self._source(c)}
            for c in chunks
        ]
        self._bulk("index", actions, missing_ok=False)

    def update_chunks(self, updates: Sequence[ChunkUpdate]) -> None:
        actions = []
        for u in updates:
            doc = {
                "published": u.published, "principals": list(u.principals), "title": u.title, "category": u.category,
                "tags": list(u.tags), "effective_date": u.effective_date.isoformat() if u.effective_date else None,
                "collection_id": u.collection_id, "fingerprint": u.fingerprint,
            }
            if self.analysis() == ANALYSIS_PYTHON:
                doc["title_analyzed"] = analyzed_text(u.title)
            actions.append({"_op_type": "update", "_index": self._alias(u.tenant_id), "_id": u.chunk_id, "routing": str(u.tenant_id), "doc": doc})
        self._bulk("update", actions, missing_ok=True)

    def delete_chunks(self, refs: Sequence[ChunkRef]) -> None:
        actions = [{"_op_type": "delete", "_index": self._alias(r.tenant_id), "_id": r.chunk_id, "routing": str(r.tenant_id)} for r in refs]
        self._bulk("delete", actions, missing_ok=True)

    def rebuild(self, chunks: Iterable[IndexedChunk]) -> RebuildReport:
        """Load every chunk into new indices, then move each alias in one atomic step and drop the
        old indices. Searches keep using the old index until the switch: no downtime."""
        started = time.perf_counter()
        shared = f"{self.prefix}-chunks"
        targets = {alias: self._new_index(alias) for alias in {shared} | {self._alias(t) for t in self.dedicated}}
        count = 0

        def actions():
            nonlocal count
            for chunk in chunks:
                count += 1
                yield {"_op_type": "index", "_index": targets[self._alias(chunk.tenant_id)], "_id": chunk.chunk_id,
                       "routing": str(chunk.tenant_id), "_source": self._source(chunk)}

        try:
            for ok, item in helpers.streaming_bulk(self.client, actions(), chunk_size=500, raise_on_error=False):
                if not ok:
                    raise SearchBackendError(f"Elasticsearch refused a chunk during rebuild: {item}")
        except es_exceptions.TransportError as exc:
            raise SearchBackendError(f"Elasticsearch unreachable during rebuild: {exc}") from exc
        for alias, index in targets.items():
            self._call("refresh", self.client.indices.refresh, index=index)
            old = []
            if self._call("alias look-up", self.client.indices.exists_alias, name=alias):
                old = list(self._call("alias look-up", self.client.indices.get_alias, name=alias).keys())
            swap = [{"remove": {"index": o, "alias": alias}} for o in old] + [{"add": {"index": index, "alias": alias}}]
            self._call("alias swap", self.client.indices.update_aliases, actions=swap)
            for o in old:
                self._call("old index removal", self.client.indices.delete, index=o)
        return RebuildReport(index=", ".join(sorted(targets.values())), chunks=count, seconds=round(time.perf_counter() - started, 2))

    def drop(self) -> None:
        # destructive_requires_name is on: delete by exact names, never by wildcard.
        names = list(self._call("index listing", self.client.indices.get, index=f"{self.prefix}-chunks*", allow_no_indices=True))
        if names:
            self._call("index removal", self.client.indices.delete, index=",".join(names))

    def fingerprints(self) -> dict[str, tuple[int, str]]:
        found: dict[str, tuple[int, str]] = {}
        for alias in self._aliases():
            try:
                for hit in helpers.scan(self.client, index=alias, query={"query": {"match_all": {}}}, _source=["tenant_id", "fingerprint"], size=1000):
                    found[hit["_id"]] = (hit["_source"]["tenant_id"], hit["_source"]["fingerprint"])
            except es_exceptions.TransportError as exc:
                raise SearchBackendError(f"Elasticsearch unreachable during a scan: {exc}") from exc
        return found

    # ---------------------------------------------------------------- reads
    @staticmethod
    def filters(query: SearchQuery) -> list[dict]:
        """The filter clauses of every query: tenant, published, principals, then metadata."""
        clauses: list[dict] = [
            {"term": {"tenant_id": query.tenant_id}},
            {"term": {"published": True}},
            {"terms": {"principals": list(query.principals)}},
        ]
        f = query.filters
        for field, values in (("collection_id", f.collection_ids), ("category", f.categories), ("tags", f.tags), ("document_id", f.document_ids)):
            if values:
                clauses.append({"terms": {field: list(values)}})
        if f.date_from or f.date_to:
            bounds = {}
            if f.date_from:
                bounds["gte"] = f.date_from.isoformat()
            if f.date_to:
                bounds["lte"] = f.date_to.isoformat()
            clauses.append({"range": {"effective_date": bounds}})
        return clauses

    def bm25_body(self, query: SearchQuery, size: int) -> dict:
        if self.analysis() == ANALYSIS_SERVER:
            text, fields = query.text, ["text", f"title^{TITLE_BOOST}"]
        else:
            text, fields = analyzed_text(query.text), ["text_analyzed", f"title_analyzed^{TITLE_BOOST}"]
        # A match-type query: the user's words are analysed, never parsed as query syntax.
        match = {"multi_match": {"query": text or "", "fields": fields, "type": "most_fields"}}
        return {"size": size, "_source": SOURCE_FIELDS, "query": {"bool": {"must": [match], "filter": self.filters(query)}}}

    def knn_body(self, query: SearchQuery, size: int) -> dict:
        return {
            "size": size,
            "_source": SOURCE_FIELDS,
            "knn": {
                "field": "vector",
                "query_vector": [float(x) for x in query.vector],
                "k": size,
                "num_candidates": max(100, 2 * size),
                "filter": {"bool": {"filter": self.filters(query)}},
            },
        }

    def _retrieve(self, query: SearchQuery, size: int) -> tuple[list[Candidate], list[Candidate]]:
        header = {"index": self._alias(query.tenant_id), "routing": str(query.tenant_id), "ignore_unavailable": True}
        kinds = [k for k in ("bm25", "dense") if (k == "bm25" and query.mode != Mode.DENSE) or (k == "dense" and query.mode != Mode.BM25)]
        searches: list[dict] = []
        for kind in kinds:
            searches += [header, self.bm25_body(query, size) if kind == "bm25" else self.knn_body(query, size)]
        response = self._call("search", self.client.msearch, searches=searches)
        results = {"bm25": [], "dense": []}
        for kind, answer in zip(kinds, response["responses"]):
            if "error" in answer:
                if answer.get("status") == 404:  # no index yet: nothing indexed, nothing found
                    continue
                raise SearchBackendError(f"Elasticsearch refused the {kind} search: {answer['error']}")
            for hit in answer["hits"]["hits"]:
                s = hit["_source"]
                # kNN's cosine score is (1 + cos) / 2; report the cosine itself, as the embedded backend does.
                score = hit["_score"] if kind == "bm25" else 2 * hit["_score"] - 1
                results[kind].append(Candidate(s["chunk_id"], s["document_id"], s["version_id"], s["collection_id"], float(score), s["title"], s["text"], hit["_index"]))
        return results["bm25"], results["dense"]
