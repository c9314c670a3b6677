"""The Elasticsearch backend, on the official Python client. The only module that talks to
Elasticsearch.

Indices: one per tenant, `<prefix>-chunks-t<tenant id>`, an alias over a concrete index that a
rebuild replaces. BM25's statistics (document frequencies, average lengths) and the HNSW graph are
per index, so what one tenant indexes never moves another tenant's scores or kNN results
(docs/search.md, "Tenant-isolated scoring"). Only searchable chunks are stored: a draft is never
in an index, so it cannot move published rankings either. Every query, BM25 and kNN alike, still
carries the tenant, `published` and principals filter (inside the knn clause: a pre-filter, so
top-k is computed among what the caller may read), and both go in one msearch.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from elasticsearch import Elasticsearch, helpers
from elasticsearch import exceptions as es_exceptions

from apps.corpus.vectors import EMBEDDING_DIMS

from ..analysis import analyzed_text
from ..types import Candidate, ChunkRef, IndexedChunk, Mode, SearchQuery
from .base import RebuildReport, SearchBackend, SearchBackendError

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
        self._analysis: str | None = None

    # ---------------------------------------------------------------- plumbing
    def _alias(self, tenant_id: int) -> str:
        return f"{self.prefix}-chunks-t{int(tenant_id)}"

    @property
    def _every_tenant(self) -> str:
        """The index pattern of every tenant's index (one request over all of them)."""
        return f"{self.prefix}-chunks-t*"

    def _tenant_aliases(self) -> dict[str, list[str]]:
        """alias → its concrete indices, for every tenant index."""
        try:
            found = self.client.indices.get_alias(name=self._every_tenant)
        except es_exceptions.NotFoundError:
            return {}
        except es_exceptions.TransportError as exc:
            raise SearchBackendError(
                f"Elasticsearch at {self.config['URL']} unreachable during alias look-up: {exc}"
            ) from exc
        aliases: dict[str, list[str]] = {}
        for index, body in found.items():
            for alias in body["aliases"]:
                aliases.setdefault(alias, []).append(index)
        return aliases

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
                "dims": EMBEDDING_DIMS,
                "index": True,
                "similarity": "cosine",
                "index_options": {
                    "type": "int8_hnsw" if self.config.get("INT8") else "hnsw",
                    "m": 16,
                    "ef_construction": 100,
                },
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
        name = f"{alias}-{datetime.now(UTC):%Y%m%d%H%M%S%f}"
        self._call("index creation", self.client.indices.create, index=name, **self._index_body())
        return name

    def ensure_index(self, tenant_id: int | None = None) -> None:
        """Create the tenant's index if missing (tenants get theirs on their first write; without a
        tenant there is nothing to create). Two workers writing a new tenant's first chunks at once
        both create the same name, with the alias in the same request: one wins, the other finds
        it there, and the alias never points at two indices."""
        if tenant_id is None:
            return
        alias = self._alias(tenant_id)
        if self._call("alias look-up", self.client.indices.exists_alias, name=alias):
            return
        try:
            self.client.indices.create(index=f"{alias}-initial", aliases={alias: {}}, **self._index_body())
            behind = self._tenant_aliases_of(alias)
            if len(behind) > 1:  # a rebuild moved the alias onto its new index meanwhile: that one wins
                self._call(
                    "alias repair",
                    self.client.indices.update_aliases,
                    actions=[{"remove_index": {"index": f"{alias}-initial"}}],
                )
        except es_exceptions.BadRequestError as exc:
            if exc.error != "resource_already_exists_exception":
                raise SearchBackendError(
                    f"Elasticsearch refused index creation: {exc.message} ({exc.meta.status})"
                ) from exc
            if not self._call("alias look-up", self.client.indices.exists_alias, name=alias):
                raise SearchBackendError(
                    f"Index {alias}-initial exists without its alias {alias}: rebuild the index."
                ) from exc
        except es_exceptions.ApiError as exc:
            raise SearchBackendError(
                f"Elasticsearch refused index creation: {exc.message} ({exc.meta.status})"
            ) from exc
        except es_exceptions.TransportError as exc:
            raise SearchBackendError(
                f"Elasticsearch at {self.config['URL']} unreachable during index creation: {exc}"
            ) from exc

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
        self._call("refresh", self.client.indices.refresh, index=self._every_tenant, allow_no_indices=True)

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
            # require_alias: a write never auto-creates an index (with a guessed mapping) where a
            # tenant's alias should be; it fails, and the task retries after ensure_index.
            _, errors = helpers.bulk(
                self.client,
                actions,
                raise_on_error=False,
                raise_on_exception=True,
                stats_only=False,
                require_alias=(what == "index"),
            )
        except es_exceptions.TransportError as exc:
            raise SearchBackendError(f"Elasticsearch at {self.config['URL']} unreachable during {what}: {exc}") from exc
        # stats_only=False: the failed items themselves (bulk's annotation also allows their count).
        failed = cast("list[dict[str, Any]]", errors)
        real = [e for e in failed if not (missing_ok and next(iter(e.values())).get("status") == 404)]
        if real:
            raise SearchBackendError(f"Elasticsearch refused {len(real)} {what} operation(s), first: {real[0]}")

    def index_chunks(self, chunks: Sequence[IndexedChunk]) -> None:
        """Index searchable chunks; a chunk that is not (a draft, an unpublished version) is
        deleted instead, so the index only ever holds what some query may find."""
        searchable = [c for c in chunks if c.published]
        for tenant_id in sorted({c.tenant_id for c in searchable}):
            self.ensure_index(tenant_id)
        actions = [
            {"_op_type": "index", "_index": self._alias(c.tenant_id), "_id": c.chunk_id, "_source": self._source(c)}
            for c in searchable
        ]
        self._bulk("index", actions, missing_ok=False)
        self.delete_chunks([ChunkRef(c.chunk_id, c.tenant_id) for c in chunks if not c.published])

    def delete_chunks(self, refs: Sequence[ChunkRef]) -> None:
        # A tenant without an index has nothing to delete: a 404 for it is fine, as for a missing id.
        actions = [{"_op_type": "delete", "_index": self._alias(r.tenant_id), "_id": r.chunk_id} for r in refs]
        self._bulk("delete", actions, missing_ok=True)

    def rebuild(self, chunks: Iterable[IndexedChunk]) -> RebuildReport:
        """Load every searchable chunk into a new index per tenant, then move each tenant's alias in
        one atomic step and drop every other index of the prefix: the old ones, those of tenants
        left with nothing, those a failed rebuild left, and the one shared index of the layout
        before per-tenant indices. Searches keep using the old index until the switch: no downtime.
        A write that lands during a rebuild may be missed by it: services.rebuild reconciles after."""
        started = time.perf_counter()
        targets: dict[str, str] = {}  # alias → the new concrete index
        count = 0

        def actions():
            nonlocal count
            for chunk in chunks:
                if not chunk.published:
                    continue
                alias = self._alias(chunk.tenant_id)
                if alias not in targets:
                    targets[alias] = self._new_index(alias)
                count += 1
                yield {
                    "_op_type": "index",
                    "_index": targets[alias],
                    "_id": chunk.chunk_id,
                    "_source": self._source(chunk),
                }

        try:
            for ok, item in helpers.streaming_bulk(self.client, actions(), chunk_size=500, raise_on_error=False):
                if not ok:
                    raise SearchBackendError(f"Elasticsearch refused a chunk during rebuild: {item}")
            for alias, index in targets.items():
                self._call("refresh", self.client.indices.refresh, index=index)
                # Whatever the alias points at now (an -initial index a worker created meanwhile too).
                old = self._tenant_aliases_of(alias)
                swap = [{"remove": {"index": o, "alias": alias}} for o in old] + [
                    {"add": {"index": index, "alias": alias}}
                ]
                self._call("alias swap", self.client.indices.update_aliases, actions=swap)
        except es_exceptions.TransportError as exc:
            self._delete_indices(
                "failed rebuild clean-up", sorted(set(targets.values()) - self._aliased_indices()), quiet=True
            )
            raise SearchBackendError(f"Elasticsearch unreachable during rebuild: {exc}") from exc
        except SearchBackendError:
            self._delete_indices(
                "failed rebuild clean-up", sorted(set(targets.values()) - self._aliased_indices()), quiet=True
            )
            raise
        keep = set(targets.values())
        every = self._call(
            "index listing", self.client.indices.get, index=f"{self.prefix}-chunks*", allow_no_indices=True
        )
        # Tenant indices outside the new set, and the pre-0.9 shared index `<prefix>-chunks-<timestamp>`.
        self._delete_indices(
            "old index removal", sorted(name for name in every if name not in keep and self._ours(name))
        )
        return RebuildReport(
            index=", ".join(sorted(targets.values())), chunks=count, seconds=round(time.perf_counter() - started, 2)
        )

    def _ours(self, name: str) -> bool:
        """An index this backend makes: `<prefix>-chunks-t<id>-<suffix>`, or the shared index of the
        layout before, `<prefix>-chunks-<digits>`. Never another prefix's (`<prefix>-chunks-…` of a
        prefix such as `kp-chunks-x` would not have these shapes)."""
        rest = name.removeprefix(f"{self.prefix}-chunks-")
        if rest == name:
            return False
        if rest.isdigit():
            return True
        tenant, _, suffix = rest.partition("-")
        return tenant.startswith("t") and tenant[1:].isdigit() and (suffix == "initial" or suffix.isdigit())

    def _tenant_aliases_of(self, alias: str) -> list[str]:
        if not self._call("alias look-up", self.client.indices.exists_alias, name=alias):
            return []
        return list(self._call("alias look-up", self.client.indices.get_alias, name=alias))

    def _aliased_indices(self) -> set[str]:
        return {index for indices in self._tenant_aliases().values() for index in indices}

    def drop(self) -> None:
        names = list(
            self._call("index listing", self.client.indices.get, index=f"{self.prefix}-chunks*", allow_no_indices=True)
        )
        self._delete_indices("index removal", sorted(names))

    def _delete_indices(self, what: str, names: list[str], *, quiet: bool = False) -> None:
        """By exact names (destructive_requires_name is on: never by wildcard), in batches: a thousand
        tenants' names in one URL are longer than the 4,096-byte HTTP line Elasticsearch accepts.
        `quiet`: clean-up after a failure, which must not hide the failure itself."""
        batches: list[list[str]] = [[]]
        for name in names:
            if batches[-1] and sum(len(n) + 1 for n in batches[-1]) + len(name) > 3000:
                batches.append([])
            batches[-1].append(name)
        for batch in filter(None, batches):
            try:
                self._call(what, self.client.indices.delete, index=",".join(batch), ignore_unavailable=True)
            except SearchBackendError:
                if not quiet:
                    raise

    def fingerprints(self) -> dict[str, tuple[int, str]]:
        found: dict[str, tuple[int, str]] = {}
        serving = self._aliased_indices()  # what searches read; an index no alias points at is not served
        if not serving:
            return found
        try:
            for hit in helpers.scan(
                self.client,
                index=self._every_tenant,
                query={"query": {"match_all": {}}},
                _source=["tenant_id", "fingerprint"],
                size=1000,
            ):
                if hit["_index"] in serving:
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
        for field, values in (
            ("collection_id", f.collection_ids),
            ("category", f.categories),
            ("tags", f.tags),
            ("document_id", f.document_ids),
        ):
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
        return {
            "size": size,
            "_source": SOURCE_FIELDS,
            "query": {"bool": {"must": [match], "filter": self.filters(query)}},
        }

    def knn_body(self, query: SearchQuery, size: int) -> dict:
        if query.vector is None:
            raise ValueError("A dense search needs the query's vector (SearchQuery.vector).")
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
        header = {"index": self._alias(query.tenant_id), "ignore_unavailable": True}
        kinds = [
            k
            for k in ("bm25", "dense")
            if (k == "bm25" and query.mode != Mode.DENSE) or (k == "dense" and query.mode != Mode.BM25)
        ]
        searches: list[dict] = []
        for kind in kinds:
            searches += [header, self.bm25_body(query, size) if kind == "bm25" else self.knn_body(query, size)]
        response = self._call("search", self.client.msearch, searches=searches)
        results: dict[str, list[Candidate]] = {"bm25": [], "dense": []}
        for kind, answer in zip(kinds, response["responses"], strict=True):
            if "error" in answer:
                if answer.get("status") == 404:  # no index yet: nothing indexed, nothing found
                    continue
                raise SearchBackendError(f"Elasticsearch refused the {kind} search: {answer['error']}")
            for hit in answer["hits"]["hits"]:
                s = hit["_source"]
                # kNN's cosine score is (1 + cos) / 2; report the cosine itself, as the embedded backend does.
                score = hit["_score"] if kind == "bm25" else 2 * hit["_score"] - 1
                results[kind].append(
                    Candidate(
                        s["chunk_id"],
                        s["document_id"],
                        s["version_id"],
                        s["collection_id"],
                        float(score),
                        s["title"],
                        s["text"],
                        hit["_index"],
                    )
                )
        return results["bm25"], results["dense"]
