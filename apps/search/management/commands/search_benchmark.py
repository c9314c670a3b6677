"""Search latency through the backend against the same queries sent with the raw Elasticsearch
client, in one run: p50/p95 of BM25, kNN and hybrid with ACL filters, and their ratio (target:
backend ≤ 1.3 × raw). A benchmark command, not a test: it prints figures and writes a table.

`--tenants 10 100 1000` measures instead what an index per tenant costs (docs/search.md,
"Tenant-isolated scoring"): the same chunks spread over that many tenants, loaded through the
backend (one index each) and, in the same run, into one shared index routed by tenant (the layout
before); hybrid latency against both, index count, load time and the mappings' heap.

The corpus is synthetic (random EMBEDDING_DIMS-d vectors, Zipf-distributed words, random ACLs over 5 tenants,
60 principals) and goes into throwaway indices that are dropped at the end.
"""

from __future__ import annotations

import statistics
import time
from datetime import date
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from elasticsearch import helpers
from tqdm import tqdm

from apps.corpus.vectors import EMBEDDING_DIMS
from apps.search.backends.elasticsearch import ElasticsearchBackend
from apps.search.types import IndexedChunk, Mode, SearchQuery

TENANTS = 5
USERS, GROUPS = 50, 10
VOCABULARY = 5000


def synthetic_chunks(n: int, seed: int = 7, tenants: int = TENANTS):
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(VOCABULARY)])
    zipf = 1.0 / np.arange(1, VOCABULARY + 1)
    zipf /= zipf.sum()
    for i in range(n):
        tenant = int(rng.integers(1, tenants + 1))
        principals = {f"user:{int(u)}" for u in rng.integers(1, USERS + 1, size=rng.integers(1, 4))}
        principals |= {f"group:{int(g)}" for g in rng.integers(1, GROUPS + 1, size=rng.integers(0, 3))}
        if rng.random() < 0.2:
            principals.add(f"tenant:{tenant}:all")
        vector = rng.standard_normal(EMBEDDING_DIMS).astype(np.float32)
        yield IndexedChunk(
            chunk_id=f"bench-{i}",
            tenant_id=tenant,
            collection_id=int(rng.integers(1, 20)),
            document_id=i // 8 + 1,
            version_id=i // 8 + 1,
            published=rng.random() < 0.9,
            principals=tuple(sorted(principals)),
            title=" ".join(rng.choice(words, size=4, p=zipf)),
            text=" ".join(rng.choice(words, size=120, p=zipf)),
            vector=vector / np.linalg.norm(vector),
            category=["policy", "manual", "faq"][i % 3],
            tags=(f"t{i % 11}",),
            effective_date=date(2020 + i % 6, 1 + i % 12, 1),
        )


def synthetic_queries(count: int, seed: int = 11, tenants: int = TENANTS) -> list[SearchQuery]:
    rng = np.random.default_rng(seed)
    queries = []
    for _ in range(count):
        tenant = int(rng.integers(1, tenants + 1))
        principals = tuple(
            sorted(
                {f"user:{int(rng.integers(1, USERS + 1))}"}
                | {f"group:{int(g)}" for g in rng.integers(1, GROUPS + 1, size=2)}
            )
        )
        vector = rng.standard_normal(EMBEDDING_DIMS).astype(np.float32)
        queries.append(
            SearchQuery(
                tenant_id=tenant,
                principals=principals,
                text=" ".join(f"w{int(w)}" for w in rng.integers(0, 300, size=3)),
                vector=vector / np.linalg.norm(vector),
                k=10,
            )
        )
    return queries


def percentile(values: list[float], p: float) -> float:
    return float(np.percentile(values, p))


class Command(BaseCommand):
    help = "Elasticsearch search latency: backend vs raw client, p50/p95, at several corpus sizes."

    def add_arguments(self, parser):
        parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
        parser.add_argument("--queries", type=int, default=200)
        parser.add_argument(
            "--tenants",
            type=int,
            nargs="+",
            help="measure the index-per-tenant layout at these tenant counts (with --chunks chunks in all)",
        )
        parser.add_argument("--chunks", type=int, default=20_000, help="with --tenants: chunks spread over the tenants")
        parser.add_argument(
            "--output",
            help="the Markdown table (default: docs/benchmarks/search-latency.md, or search-tenants.md with --tenants)",
        )

    def handle(self, *args, sizes, queries, tenants, chunks, output, **options):
        config = {
            **settings.SEARCH["ELASTICSEARCH"],
            "INDEX_PREFIX": f"{settings.SEARCH['ELASTICSEARCH']['INDEX_PREFIX']}-bench",
        }
        benchmarks = Path(settings.BASE_DIR) / "docs" / "benchmarks"
        if tenants:
            return self.tenant_layouts(
                config, tenants, chunks, queries, Path(output or benchmarks / "search-tenants.md")
            )
        output = output or str(benchmarks / "search-latency.md")
        backend = ElasticsearchBackend(config)
        rows = []
        try:
            for size in sizes:
                started = time.perf_counter()
                backend.rebuild(tqdm(synthetic_chunks(size), total=size, desc=f"loading {size} chunks", unit="chunk"))
                load_seconds = time.perf_counter() - started
                self.stdout.write(f"{size} chunks loaded in {load_seconds:.0f} s")
                rows += self.measure(backend, size, synthetic_queries(queries))
        finally:
            backend.drop()
            backend.close()
        table = self.table(rows)
        self.stdout.write("\n" + table)
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(
            "# Search latency: backend vs raw client\n\n"
            f"`manage.py search_benchmark --sizes {' '.join(map(str, sizes))} --queries {queries}`, Elasticsearch "
            f"{backend_version(config)}, single node on this 2-core machine, {date.today()}. Each query carries "
            "the tenant, "
            "published and principal filters (kNN: inside the knn clause). *Raw* sends the same request bodies with "
            "the Python client and reads the hits; *backend* adds query building, fusion, the per-document cap and "
            "highlighting.\n\n" + table + "\n"
        )
        self.stdout.write(f"\nwritten to {output}")

    def measure(self, backend: ElasticsearchBackend, size: int, queries: list[SearchQuery]) -> list[dict]:
        client = backend.client
        rows = []
        for mode in (Mode.BM25, Mode.DENSE, Mode.HYBRID):
            raw_ms, backend_ms = [], []
            for query in tqdm(queries, desc=f"{size} {mode.value}", leave=False):
                query = SearchQuery(**{**query.__dict__, "mode": mode})
                header = {"index": backend._alias(query.tenant_id)}
                bodies = []
                if mode != Mode.DENSE:
                    bodies += [header, backend.bm25_body(query, 50)]
                if mode != Mode.BM25:
                    bodies += [header, backend.knn_body(query, 50)]
                for _ in range(2):  # alternate, so neither side always runs on a warmer cache
                    t = time.perf_counter()
                    client.msearch(searches=bodies)
                    raw_ms.append((time.perf_counter() - t) * 1000)
                    t = time.perf_counter()
                    backend.search(query)
                    backend_ms.append((time.perf_counter() - t) * 1000)
            rows.append(
                {
                    "size": size,
                    "mode": mode.value,
                    "raw_p50": percentile(raw_ms, 50),
                    "raw_p95": percentile(raw_ms, 95),
                    "backend_p50": percentile(backend_ms, 50),
                    "backend_p95": percentile(backend_ms, 95),
                    "ratio_p50": statistics.median(backend_ms) / statistics.median(raw_ms),
                    "ratio_p95": percentile(backend_ms, 95) / percentile(raw_ms, 95),
                }
            )
        return rows

    @staticmethod
    def table(rows: list[dict]) -> str:
        lines = [
            "| chunks | mode | raw p50 ms | raw p95 ms | backend p50 ms | backend p95 ms | ratio p50 | ratio p95 |",
            "|---:|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            lines.append(
                f"| {r['size']:,} | {r['mode']} | {r['raw_p50']:.1f} | {r['raw_p95']:.1f} | {r['backend_p50']:.1f} | "
                f"{r['backend_p95']:.1f} | {r['ratio_p50']:.2f} | {r['ratio_p95']:.2f} |"
            )
        return "\n".join(lines)

    # ------------------------------------------------------------------ index per tenant vs shared
    def tenant_layouts(self, config: dict, counts: list[int], chunks: int, queries: int, output: Path) -> None:
        backend = ElasticsearchBackend(config)
        client = backend.client.options(request_timeout=600)  # force-merges and 1,000 index creations take long
        shared = f"{backend.prefix}-shared-baseline"
        rows = []
        try:
            for count in counts:
                backend.drop()
                client.indices.delete(index=shared, ignore_unavailable=True)
                started = time.perf_counter()
                report = backend.rebuild(
                    tqdm(
                        synthetic_chunks(chunks, tenants=count),
                        total=chunks,
                        unit="chunk",
                        desc=f"{count} tenants: an index each",
                    )
                )
                per_tenant_load = time.perf_counter() - started
                client.indices.forcemerge(index=backend._every_tenant, max_num_segments=1)
                indices = len(client.indices.get(index=backend._every_tenant))
                per_tenant = {
                    "indices": indices,
                    "mapping_overhead_mb": _mapping_overhead(client) / 2**20,
                    "load_s": per_tenant_load,
                }

                started = time.perf_counter()
                client.indices.create(index=shared, **backend._index_body())
                sources = (
                    {"_index": shared, "_id": c.chunk_id, "routing": str(c.tenant_id), "_source": backend._source(c)}
                    for c in synthetic_chunks(chunks, tenants=count)
                    if c.published
                )
                for ok, item in helpers.streaming_bulk(client, sources, chunk_size=500, raise_on_error=False):
                    if not ok:
                        raise CommandError(f"the shared baseline index refused a chunk: {item}")
                client.indices.refresh(index=shared)
                client.indices.forcemerge(index=shared, max_num_segments=1)
                shared_load = time.perf_counter() - started

                own_ms, shared_ms = [], []
                for query in tqdm(
                    synthetic_queries(queries, tenants=count), desc=f"{count} tenants: hybrid", leave=False
                ):
                    bodies = [backend.bm25_body(query, 50), backend.knn_body(query, 50)]
                    own = [
                        x
                        for b in bodies
                        for x in ({"index": backend._alias(query.tenant_id), "ignore_unavailable": True}, b)
                    ]
                    routed = [x for b in bodies for x in ({"index": shared, "routing": str(query.tenant_id)}, b)]
                    for _ in range(2):  # alternate, so neither side always runs on a warmer cache
                        t = time.perf_counter()
                        client.msearch(searches=own)
                        own_ms.append((time.perf_counter() - t) * 1000)
                        t = time.perf_counter()
                        client.msearch(searches=routed)
                        shared_ms.append((time.perf_counter() - t) * 1000)
                rows.append(
                    {
                        "tenants": count,
                        "chunks": report.chunks,
                        **per_tenant,
                        "shared_load_s": shared_load,
                        "own_p50": percentile(own_ms, 50),
                        "own_p95": percentile(own_ms, 95),
                        "shared_p50": percentile(shared_ms, 50),
                        "shared_p95": percentile(shared_ms, 95),
                    }
                )
                self.stdout.write(self.tenant_table(rows[-1:]))
        finally:
            backend.drop()
            client.indices.delete(index=shared, ignore_unavailable=True)
            backend.close()
        table = self.tenant_table(rows)
        self.stdout.write("\n" + table)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(
            "# Search: an index per tenant against one shared index\n\n"
            f"`manage.py search_benchmark --tenants {' '.join(map(str, counts))} --chunks {chunks} --queries "
            f"{queries}`, "
            f"Elasticsearch {backend_version(config)}, single node, 2 GiB heap, this 2-core machine, {date.today()}. "
            "The same synthetic published chunks, spread over that many tenants, in an index each (the platform's "
            "layout, through the backend) and in one index routed by tenant (the layout before, raw client). Each "
            "hybrid query (BM25 + kNN in one msearch, raw client, same bodies) carries the tenant, published and "
            "principal filters; both layouts force-merged to one segment per shard before timing. *Mapping heap* is "
            "Elasticsearch's own estimate of the heap the node's mappings take (`_nodes/stats`, every index of "
            "the node: "
            "the per-tenant indices are the difference between rows); segments and HNSW graphs live off-heap in "
            "Elasticsearch 9.\n\n" + table + "\n"
        )
        self.stdout.write(f"\nwritten to {output}")

    @staticmethod
    def tenant_table(rows: list[dict]) -> str:
        lines = [
            "| tenants | chunks | tenant indices | load s, own / shared | hybrid p50 ms, own / shared | hybrid "
            "p95 ms, own / shared "
            "| p50 ratio | mapping heap MB |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            lines.append(
                f"| {r['tenants']:,} | {r['chunks']:,} | {r['indices']:,} | {r['load_s']:.0f} / "
                f"{r['shared_load_s']:.0f} "
                f"| {r['own_p50']:.1f} / {r['shared_p50']:.1f} | {r['own_p95']:.1f} / {r['shared_p95']:.1f} "
                f"| {r['own_p50'] / r['shared_p50']:.2f} | {r['mapping_overhead_mb']:.1f} |"
            )
        return "\n".join(lines)


def _mapping_overhead(client) -> int:
    nodes = client.nodes.stats(metric="indices", index_metric="mappings")["nodes"].values()
    return sum(n["indices"]["mappings"]["total_estimated_overhead_in_bytes"] for n in nodes)


def backend_version(config: dict) -> str:
    backend = ElasticsearchBackend(config)
    try:
        return next(iter(backend.client.nodes.info()["nodes"].values()))["version"]
    finally:
        backend.close()
