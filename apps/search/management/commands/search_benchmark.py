"""Search latency through the backend against the same queries sent with the raw Elasticsearch
client, in one run: p50/p95 of BM25, kNN and hybrid with ACL filters, and their ratio (target:
backend ≤ 1.3 × raw). A benchmark command, not a test: it prints figures and writes a table.

The corpus is synthetic (random 384-d vectors, Zipf-distributed words, random ACLs over 5 tenants,
60 principals) and goes into a throwaway index that is dropped at the end.
"""

from __future__ import annotations

import statistics
import time
from datetime import date
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand
from tqdm import tqdm

from apps.search.backends.elasticsearch import ElasticsearchBackend
from apps.search.types import IndexedChunk, Mode, SearchQuery

TENANTS = 5
USERS, GROUPS = 50, 10
VOCABULARY = 5000


def synthetic_chunks(n: int, seed: int = 7):
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(VOCABULARY)])
    zipf = 1.0 / np.arange(1, VOCABULARY + 1)
    zipf /= zipf.sum()
    for i in range(n):
        tenant = int(rng.integers(1, TENANTS + 1))
        principals = {f"user:{int(u)}" for u in rng.integers(1, USERS + 1, size=rng.integers(1, 4))}
        principals |= {f"group:{int(g)}" for g in rng.integers(1, GROUPS + 1, size=rng.integers(0, 3))}
        if rng.random() < 0.2:
            principals.add(f"tenant:{tenant}:all")
        vector = rng.standard_normal(384).astype(np.float32)
        yield IndexedChunk(
            chunk_id=f"bench-{i}", tenant_id=tenant, collection_id=int(rng.integers(1, 20)), document_id=i // 8 + 1,
            version_id=i // 8 + 1, published=rng.random() < 0.9, principals=tuple(sorted(principals)),
            title=" ".join(rng.choice(words, size=4, p=zipf)), text=" ".join(rng.choice(words, size=120, p=zipf)),
            vector=vector / np.linalg.norm(vector), category=["policy", "manual", "faq"][i % 3],
            tags=(f"t{i % 11}",), effective_date=date(2020 + i % 6, 1 + i % 12, 1),
        )


def synthetic_queries(count: int, seed: int = 11) -> list[SearchQuery]:
    rng = np.random.default_rng(seed)
    queries = []
    for _ in range(count):
        tenant = int(rng.integers(1, TENANTS + 1))
        principals = tuple(sorted({f"user:{int(rng.integers(1, USERS + 1))}"} | {f"group:{int(g)}" for g in rng.integers(1, GROUPS + 1, size=2)}))
        vector = rng.standard_normal(384).astype(np.float32)
        queries.append(SearchQuery(
            tenant_id=tenant, principals=principals, text=" ".join(f"w{int(w)}" for w in rng.integers(0, 300, size=3)),
            vector=vector / np.linalg.norm(vector), k=10,
        ))
    return queries


def percentile(values: list[float], p: float) -> float:
    return float(np.percentile(values, p))


class Command(BaseCommand):
    help = "Elasticsearch search latency: backend vs raw client, p50/p95, at several corpus sizes."

    def add_arguments(self, parser):
        parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
        parser.add_argument("--queries", type=int, default=200)
        parser.add_argument("--output", default=str(Path(settings.BASE_DIR) / "docs" / "benchmarks" / "search-latency.md"))

    def handle(self, *args, sizes, queries, output, **options):
        config = {**settings.SEARCH["ELASTICSEARCH"], "INDEX_PREFIX": f"{settings.SEARCH['ELASTICSEARCH']['INDEX_PREFIX']}-bench", "DEDICATED_TENANTS": []}
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
            f"{backend_version(config)}, single node on this 2-core machine, {date.today()}. Each query carries the tenant, "
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
                header = {"index": backend._alias(query.tenant_id), "routing": str(query.tenant_id)}
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
            rows.append({
                "size": size, "mode": mode.value,
                "raw_p50": percentile(raw_ms, 50), "raw_p95": percentile(raw_ms, 95),
                "backend_p50": percentile(backend_ms, 50), "backend_p95": percentile(backend_ms, 95),
                "ratio_p50": statistics.median(backend_ms) / statistics.median(raw_ms),
                "ratio_p95": percentile(backend_ms, 95) / percentile(raw_ms, 95),
            })
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


def backend_version(config: dict) -> str:
    backend = ElasticsearchBackend(config)
    try:
        return next(iter(backend.client.nodes.info()["nodes"].values()))["version"]
    finally:
        backend.close()
