"""Where one /search and one /ask request spend their time, step by step, inside one Django
process (the full middleware, DRF and pipeline stack through django.test.Client; no HTTP server,
one caller): wall and CPU time of each stage, and the SQL statements each one sends, over the
Cranfield questions of the throughput benchmark's tenant. Then cProfile over the same loop.

It times by wrapping the platform's own functions in this process only (nothing in apps/ changes):
authentication, tenant resolution, throttles, act_for, principals, each pipeline step, the
Elasticsearch call, highlighting, the audit append, output serialisation, JSON rendering. CPU is
the process's (time.process_time), so torch's intra-op threads count in `embed`. Run after
bin/throughput has set the tenant up (it reads the set-up throughput.py keeps beside the services' data):

    bin/throughput profile [--requests 60] [--cprofile 40] [--output /tmp/profile.md]

Also aggregates py-spy's raw (collapsed) stacks into the same stages:

    python loadtest/profile_paths.py --collapsed py-spy.txt
"""

from __future__ import annotations

import argparse
import contextvars
import cProfile
import functools
import io
import json
import os
import pstats
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "platform")]
SETUP = Path(os.environ.get("KP_STATE_DIR", "/var/lib/knowledge-platform")) / "throughput" / "setup.json"

# --------------------------------------------------------------------------- what is timed
# (label, module, attribute path): a function or method replaced by a timed wrapper.
TIMED = [
    ("request (test client)", "django.test.client", "Client.post"),
    ("throttles (Redis)", "apps.core.throttling", "TenantScopedThrottle.allow_request"),
    ("authenticate: API key look-up", "apps.tenants.authentication", "ApiKeyAuthentication.authenticate"),
    ("tenant resolution", "apps.tenants.permissions", "TenantPermission.has_permission"),
    ("input validation", "rest_framework.serializers", "BaseSerializer.is_valid"),
    ("act_for (as_user member look-up)", "apps.tenants.resolution", "act_for"),
    ("principals (groups query)", "apps.answers.services", "context_principals"),
    ("step expand", "apps.answers.steps", "ExpandQuery.__call__"),
    ("step embed", "apps.answers.steps", "EmbedQuery.__call__"),
    ("step search", "apps.answers.steps", "Search.__call__"),
    ("  Elasticsearch msearch (client)", "elasticsearch", "Elasticsearch.msearch"),
    ("step fuse", "apps.answers.steps", "Fuse.__call__"),
    ("  highlight", "apps.search.ranking", "highlight"),
    ("step recheck", "apps.answers.steps", "RecheckPermissions.__call__"),
    ("  readable_published_documents", "apps.answers.steps", "readable_published_documents"),
    ("step select", "apps.answers.steps", "ShowResults.__call__"),
    ("step context", "apps.answers.steps", "AssembleContext.__call__"),
    ("step generate", "apps.answers.steps", "Generate.__call__"),
    ("  Embedder.encode (every call)", "apps.corpus.embedding", "Embedder.encode"),
    ("  Embedder.encode_queries (every call)", "apps.corpus.embedding", "Embedder.encode_queries"),
    ("audit: entry built", "apps.answers.services", "_entry"),
    ("audit: record_append", "apps.audit.services", "record_append"),
    ("  audit: lock chain head", "apps.audit.services", "_locked_head"),
    ("  audit: hashes", "apps.audit.chain", "record_hashes"),
    ("  audit: COPY chunks", "apps.audit.services", "_insert_chunks"),
    ("output serialisation", "rest_framework.serializers", "Serializer.data"),
    ("JSON render", "rest_framework.renderers", "JSONRenderer.render"),
]

_stack: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("stack", default=())


class Recorder:
    def __init__(self) -> None:
        self.current: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0, 0.0])  # wall, cpu, sql n, sql ms
        self.requests: list[dict[str, list[float]]] = []
        self.enabled = False

    def timed(self, label: str, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if not self.enabled:
                return fn(*args, **kwargs)
            token = _stack.set((*_stack.get(), label))
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                entry = self.current[label]
                entry[0] += (time.perf_counter() - wall) * 1000
                entry[1] += (time.process_time() - cpu) * 1000
                _stack.reset(token)

        return wrapper

    def sql(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            if self.enabled:
                ms = (time.perf_counter() - started) * 1000
                for label in {*_stack.get()}:  # inclusive, like the times
                    self.current[label][2] += 1
                    self.current[label][3] += ms

    def next_request(self) -> None:
        self.requests.append(dict(self.current))
        self.current = defaultdict(lambda: [0.0, 0.0, 0, 0.0])


def install(recorder: Recorder) -> None:
    import importlib

    for label, module_name, path in TIMED:
        module = importlib.import_module(module_name)
        owner, _, name = path.rpartition(".")
        target = functools.reduce(getattr, owner.split("."), module) if owner else module
        original = target.__dict__[name] if owner else getattr(module, name)
        if isinstance(original, property):
            setattr(target, name, property(recorder.timed(label, original.fget)))
        else:
            setattr(target, name, recorder.timed(label, original))


def table(recorder: Recorder, title: str) -> str:
    labels = [label for label, *_ in TIMED]
    total = np.median([r["request (test client)"][0] for r in recorder.requests])
    rows = [
        f"### {title}: {len(recorder.requests)} requests, median wall {total:.1f} ms",
        "",
        "| stage | wall ms p50 | wall ms mean | CPU ms mean | SQL statements | SQL ms mean |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label in labels:
        values = [r[label] for r in recorder.requests if label in r]
        if not values:
            continue
        wall = [v[0] for v in values]
        rows.append(
            f"| {label} | {np.median(wall):.2f} | {np.mean(wall):.2f} | {np.mean([v[1] for v in values]):.2f} | "
            f"{np.mean([v[2] for v in values]):.1f} | {np.mean([v[3] for v in values]):.2f} |"
        )
    return "\n".join(rows)


# --------------------------------------------------------------------------- py-spy's collapsed stacks
# Samples of the gunicorn workers' main threads (py-spy record --subprocesses --format raw), each put
# in the first stage whose frames it holds (all of them, for a tuple): most specific first.
STAGES: list[tuple[str, str | tuple[str, ...]]] = [
    ("audit: lock the chain head (SELECT … FOR UPDATE, incl. waiting)", "_locked_head (apps/audit/services.py"),
    ("audit: COPY the chunk rows", "_insert_chunks (apps/audit/services.py"),
    ("audit: rest of record_append (hashes, INSERT, head UPDATE, COMMIT)", "record_append (apps/audit/services.py"),
    ("audit: entry built", "_entry (apps/answers/services.py"),
    ("generate: sentence split (pysbd)", "sentences (apps/answers/generators.py"),
    ("generate: sentence embedding", ("Generate.__call__", "Embedder.encode")),  # encode_queries too
    ("generate: other", "Generate.__call__"),
    ("context assembly", "AssembleContext.__call__"),
    ("embed: query encoding", "EmbedQuery.__call__"),
    ("search: Elasticsearch (body, client, TLS, wait)", "Search.__call__"),
    ("fuse: highlight", ("Fuse.__call__", "highlight (apps/search/analysis.py")),
    ("fuse: other", "Fuse.__call__"),
    ("recheck: SQL (psycopg)", ("RecheckPermissions.__call__", "psycopg/")),
    ("recheck: ORM and Python", "RecheckPermissions.__call__"),
    ("other pipeline steps", "run_steps (apps/answers/steps.py"),
    ("principals (groups query)", "context_principals (apps/access/principals.py"),
    ("act_for (member look-up)", "act_for (apps/tenants/resolution.py"),
    ("authenticate (API key look-up)", "ApiKeyAuthentication.authenticate"),
    ("tenant resolution", "TenantPermission.has_permission"),
    ("throttles (Redis)", "allow_request (apps/core/throttling.py"),
    ("input validation", "is_valid (rest_framework/serializers.py"),
    ("output serialisation", "Serializer.data (rest_framework/serializers.py"),
    ("JSON render", "JSONRenderer.render"),
    ("other Django / DRF (middleware, routing, response)", "WSGIHandler.__call__"),
    ("gunicorn (read request, write response, close)", "handle_request (gunicorn/workers/sync.py"),
    ("idle: worker waiting for a connection", "SyncWorker"),
]


def stage_of(stack: str) -> str:
    for stage, needles in STAGES:
        if all(n in stack for n in ((needles,) if isinstance(needles, str) else needles)):
            return stage
    return "other"


def collapsed(path: Path, rate: float, requests: int | None) -> str:
    """A table of where the workers' main threads were, from py-spy's raw output."""
    counts: dict[str, int] = defaultdict(int)
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit() or "SyncWorker.run" not in stack:  # the arbiter, tqdm's monitor thread, …
            continue
        counts[stage_of(stack)] += int(n)
        total += int(n)
    busy = total - counts.get("idle: worker waiting for a connection", 0)
    head = "| stage | samples | share of worker time | share of busy time |"
    rows = [head + (" ms per request |" if requests else ""), "|---|---:|---:|---:|" + ("---:|" if requests else "")]
    for stage, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        share = f"{100 * n / busy:.1f} %" if not stage.startswith("idle") else "–"
        row = f"| {stage} | {n} | {100 * n / total:.1f} % | {share} |"
        if requests:
            row += f" {n * 1000 / rate / requests:.1f} |"
        rows.append(row)
    rows.append(f"| **all** | {total} | 100 % | | {total * 1000 / rate / requests:.1f} |" if requests else "")
    return "\n".join(rows)


# --------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=60, help="timed requests per endpoint (default 60)")
    parser.add_argument("--cprofile", type=int, default=40, help="requests per endpoint under cProfile (0: none)")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--collapsed", type=Path, default=None, help="only aggregate py-spy raw stacks")
    parser.add_argument("--rate", type=float, default=50, help="py-spy's sampling rate (--collapsed)")
    parser.add_argument("--served", type=int, default=None, help="requests served while sampled (--collapsed)")
    parser.add_argument("--database", default="kp_tp", help="the benchmark's database (default kp_tp)")
    parser.add_argument("--index-prefix", default="kp-tp", help="the benchmark's index prefix (default kp-tp)")
    args = parser.parse_args()
    if args.collapsed:
        print(collapsed(args.collapsed, args.rate, args.served))
        return 0

    if os.environ.get("KP_PROFILE_CHILD") != "1":  # the benchmark's database, index and settings, then again
        from throughput import benchmark_env, serving_url

        env = benchmark_env(args.database, args.index_prefix)
        env = {**env, "DATABASE_URL": serving_url(env), "KP_PROFILE_CHILD": "1", "LOG_LEVEL": "WARNING"}
        return subprocess.run([sys.executable, __file__, *sys.argv[1:]], cwd=ROOT, env=env, check=False).returncode

    import django

    django.setup()
    import torch
    from django.db import connection
    from django.test import Client

    setup = json.loads(SETUP.read_text())
    recorder = Recorder()
    install(recorder)
    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Api-Key {setup['key']}")
    queries = setup["queries"]
    bodies = {
        "search": lambda q: {"query": q, "mode": "hybrid", "k": 10, "as_user": setup["as_user"]},
        "ask": lambda q: {"query": q, "as_user": setup["as_user"]},
    }

    def call(path: str, query: str) -> None:
        response = client.post(f"/api/v1/{path}", bodies[path](query), content_type="application/json")
        if response.status_code != 200:
            raise SystemExit(f"{path}: {response.status_code} {response.content[:300]!r}")

    for path in ("search", "ask"):  # warm: the model loads, connections open
        for query in queries[:5]:
            call(path, query)
    out = [
        f"torch intra-op threads in this process after the model loaded: {torch.get_num_threads()}",
        "",
    ]
    with connection.execute_wrapper(recorder.sql):
        for path in ("search", "ask"):
            recorder.requests.clear()
            recorder.enabled = True
            for i in range(args.requests):
                call(path, queries[i % len(queries)])
                recorder.next_request()
            recorder.enabled = False
            out += [table(recorder, f"/{path}"), ""]
    if args.cprofile:
        for path in ("search", "ask"):
            profile = cProfile.Profile()
            profile.enable()
            for i in range(args.cprofile):
                call(path, queries[(i + 7) % len(queries)])
            profile.disable()
            stream = io.StringIO()
            stats = pstats.Stats(profile, stream=stream)
            stats.sort_stats("cumulative").print_stats(45)
            out += [
                f"### cProfile /{path}, {args.cprofile} requests, by cumulative time",
                "",
                "```",
                _trim(stream.getvalue()),
                "```",
                "",
            ]
            stream = io.StringIO()
            pstats.Stats(profile, stream=stream).sort_stats("tottime").print_stats(25)
            out += [f"### cProfile /{path}, by own time", "", "```", _trim(stream.getvalue()), "```", ""]
    text = "\n".join(out)
    print(text)
    if args.output:
        args.output.write_text(text)
    return 0


def _trim(report: str) -> str:
    """pstats' table without its preamble, paths shortened to the project's or the library's."""
    lines = report.splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    kept = []
    for line in lines[start:]:
        line = re.sub(r"\S*/site-packages/", "", line)
        line = re.sub(r"\S*/lib/python3\.\d+/", "", line)
        kept.append(line.replace(f"{ROOT}/", "").rstrip())
    return "\n".join(kept).strip()


if __name__ == "__main__":
    sys.exit(main())
