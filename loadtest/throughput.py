"""Throughput of search and ask against their floor, in one run, on the same queries:

1. set up (idempotent): a PostgreSQL database and an Elasticsearch index prefix of the run's own,
   migrated; the Cranfield collection imported into a tenant (apps.evaluation.services.beir_import:
   1,398 documents, published and indexed; its judged questions are the query set), the tenant's
   owner, and a fresh API key with act_as_user that acts for that owner (as the load test's does);
2. capture the Elasticsearch requests the platform builds for those queries: every query runs once
   through the real pipeline (answers.services.search_run, as /search would for that key and
   member), and the msearch bodies its backend sends (tenant, published and principals filters,
   BM25 and kNN) are recorded;
3. the floor: the platform's own embedder (apps.corpus.embedding, so the same model, settings,
   query runtime and threads) encodes the query and the captured msearch is sent with that vector, in as many
   worker processes as gunicorn serves with, at each concurrency;
4. the platform: gunicorn started as the production image starts it (docker/Dockerfile's CMD, bound
   to loopback), POST /api/v1/search (hybrid, k 10) and /api/v1/ask (extractive) at each concurrency;
5. a Markdown table (req/s, p50/p95/p99, platform/floor ratio, CPU per request) printed and written.

Clients are closed-loop threads (no think time) timed with time.perf_counter; each cell runs for
--duration seconds after a short warm-up. Run it through bin/throughput (which loads the services'
environment); by hand:

    python loadtest/throughput.py --duration 15 --concurrency 1,4,8 --output docs/benchmarks/throughput.md
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import contextlib
import http.client
import itertools
import json
import multiprocessing
import os
import platform
import re
import secrets
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "platform")]
from run import manage, server_env, wait_ready  # noqa: E402 (loadtest/run.py, beside this file)

PYTHON = sys.executable
BIN = Path(PYTHON).parent
# Beside the services' data (bin/services), not in the checkout: the benchmark's database and its
# audit key ring, import marker and media belong together, whichever checkout runs it.
STATE = Path(os.environ.get("KP_STATE_DIR", "/var/lib/knowledge-platform")) / "throughput"
TENANT, OWNER, READER, KEY_NAME = "tp-cranfield", "owner", "reader", "throughput benchmark"
READERS_GROUP = "cranfield readers"
DATASET = Path(os.environ.get("KP_CRANFIELD", ROOT.parent / "shared" / "datasets" / "cranfield"))
if not DATASET.is_dir():
    DATASET = Path("/work/shared/datasets/cranfield")


# =========================================================================== environment
def audit_keys() -> str:
    """The audit chain's key ring for this benchmark's database, made once and kept (mode 0600) so
    every run appends to one chain that still verifies."""
    path = STATE / "audit-keys"
    if not path.exists():
        STATE.mkdir(parents=True, exist_ok=True)
        path.write_text(f"tp1:{secrets.token_urlsafe(32)}")
        path.chmod(0o600)
    return path.read_text().strip()


def benchmark_env(database: str, prefix: str) -> dict:
    base = dict(os.environ)
    if base.get("PLATFORM_PROFILE") != "full":
        raise SystemExit(
            "The throughput benchmark runs on the full profile: use bin/throughput (it loads the services)."
        )
    base["DATABASE_URL"] = base["DATABASE_URL"].rsplit("/", 1)[0] + f"/{database}"
    base["ELASTICSEARCH_INDEX_PREFIX"] = prefix
    base["CELERY_TASK_DEFAULT_QUEUE"] = prefix  # tasks sent here are never another session's worker's
    base["PLATFORM_VAR_DIR"] = str(STATE)
    base["MEDIA_ROOT"] = str(STATE / "media")
    base.setdefault("AUDIT_KEYS", audit_keys())
    env = server_env(base)
    env["PYTHONPATH"] = f"{ROOT}:{ROOT / 'platform'}"
    return env


def serving_url(env: dict) -> str:
    """The application role's URL for the benchmark database (production serves with that role), or
    the owner's when bin/services wrote none."""
    app = env.get("DATABASE_APP_URL")
    return app.rsplit("/", 1)[0] + "/" + env["DATABASE_URL"].rsplit("/", 1)[1] if app else env["DATABASE_URL"]


def ensure_database(url: str) -> None:
    import psycopg

    parts = urllib.parse.urlparse(url)
    name = parts.path.lstrip("/")
    admin = {
        "host": parts.hostname,
        "port": parts.port or 5432,
        "user": urllib.parse.unquote(parts.username or ""),
        "password": urllib.parse.unquote(parts.password or ""),
        "dbname": "postgres",
        "autocommit": True,
    }
    with psycopg.connect(**admin) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            connection.execute(f'CREATE DATABASE "{name}"')


def production_gunicorn(workers: int | None) -> list[str]:
    """docker/Dockerfile's CMD (the production server), bound to loopback; workers overridable."""
    text = (ROOT / "docker" / "Dockerfile").read_text()
    match = re.search(r"^CMD\s+(\[.*\])\s*$", text, re.MULTILINE)
    if not match:
        raise SystemExit("docker/Dockerfile has no CMD [...] line to start gunicorn from")
    command = json.loads(match.group(1))
    if command[0] != "gunicorn":
        raise SystemExit(f"docker/Dockerfile's CMD does not start gunicorn: {command}")
    if workers is not None:
        position = command.index("--workers")
        command[position + 1] = str(workers)
    return command


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


# =========================================================================== setup (a Django process)
ACCESS = {
    OWNER: "an owner's access (an API key with act_as_user, `as_user` the tenant's owner: reads by role)",
    READER: "a reader's access (an API key with act_as_user, `as_user` a reader who reads the collection "
    "through a group's grant: the re-check's guardian look-ups)",
}


def setup_phase(out: Path, limit: int | None, as_user: str = OWNER) -> None:
    """Runs inside Django (python loadtest/throughput.py --phase setup): the tenant, the corpus, the
    key, the queries and the platform's own msearch bodies for them, as JSON in `out`. With
    `as_user` READER the calls run for a reader who reads the corpus through a group's grant on its
    collection (django-guardian), not by role as the owner does."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    from apps.answers import services as answers
    from apps.answers.api import SearchInputSerializer
    from apps.documents.models import Collection, Document
    from apps.evaluation import services as evaluation
    from apps.evaluation.models import GoldenQuestion, GoldenSet
    from apps.search.backends import get_search_backend
    from apps.tenants import resolution
    from apps.tenants import services as tenants
    from apps.tenants.models import ApiKey, Membership, Role, Scope, Tenant

    with transaction.atomic():
        tenant = Tenant.objects.filter(slug=TENANT).first() or tenants.tenant_create(slug=TENANT, name="Cranfield")
        owner = Membership.objects.filter(tenant=tenant, username=OWNER).first() or tenants.member_create(
            tenant=tenant, username=OWNER, role=Role.OWNER
        )
    golden = GoldenSet.objects.filter(tenant=tenant, name="cranfield").first()
    collection = Collection.objects.filter(tenant=tenant, name="cranfield").first()
    # A marker written after a complete import (beir_import is resumable, but even skipping what is
    # ingested takes a minute): naming the database and the tenant, so a new database imports again.
    marker = STATE / f"imported-{connection.settings_dict['NAME']}"
    done = marker.exists() and marker.read_text() == str(tenant.pk) and collection is not None
    if not done or golden is None or not GoldenQuestion.objects.for_tenant(tenant).exists():
        print(f"[throughput] importing Cranfield into tenant {TENANT} (once; minutes)", file=sys.stderr, flush=True)
        golden = evaluation.beir_import(
            tenant=tenant, folder=DATASET, collection_name="cranfield", name="cranfield", progress=False
        )
        collection = Collection.objects.get(tenant=tenant, name="cranfield")
        marker.write_text(str(tenant.pk))
    if as_user == READER:
        _reader_through_a_group(tenant, collection)
    # A corpus an earlier checkout imported may lack what ingestion stores now (another model, or
    # no sentence vectors): brought up to date as an operator would, a no-op when it is current.
    call_command("reembed", tenant=TENANT, stdout=sys.stderr)
    documents = Document.objects.filter(tenant=tenant, collection=collection).count()
    questions = list(
        GoldenQuestion.objects.for_tenant(tenant)
        .filter(golden_set=golden)
        .order_by("pk")
        .values_list("text", flat=True)
    )[:limit]

    with transaction.atomic():  # one live benchmark key: the earlier ones are revoked
        for old in ApiKey.objects.for_tenant(tenant).filter(name=KEY_NAME, revoked_at__isnull=True):
            tenants.api_key_revoke(api_key=old)
        api_key, raw_key = tenants.api_key_create(
            tenant=tenant,
            name=KEY_NAME,
            scopes=[Scope.SEARCH, Scope.ASK, Scope.ACT_AS_USER],
            created_by=owner.user,  # a trusted command's key (as seed_demo's): an owner may not hand out act_as_user
        )

    # The platform's own Elasticsearch requests: the real pipeline, as /search runs it for this key.
    backend = get_search_backend()
    sent: list[list[dict]] = []
    real_msearch = backend.client.msearch

    def recording(*args, **kwargs):
        sent.append(json.loads(json.dumps(kwargs["searches"])))
        return real_msearch(*args, **kwargs)

    backend.client.msearch = recording
    key = ApiKey.objects.across_tenants().select_related("tenant", "service_user").get(pk=api_key.pk)
    caller = resolution.resolve_tenant_context(user=key.service_user, api_key=key, tenant_slug=None)
    context = resolution.act_for(caller, as_user=as_user, require=(Scope.SEARCH,))
    bodies, hits = [], []
    for text in questions:
        data = SearchInputSerializer(data={"query": text, "mode": "hybrid", "k": 10, "as_user": as_user})
        data.is_valid(raise_exception=True)
        before = len(sent)
        outcome = answers.search_run(context=context, request=data.to_request())
        if len(sent) != before + 1:
            raise SystemExit(f"expected one msearch per search, saw {len(sent) - before}")
        bodies.append(sent[-1])
        hits.append(len(outcome.run.shown))
    backend.client.msearch = real_msearch
    out.write_text(
        json.dumps(
            {
                "key": raw_key,
                "as_user": as_user,
                "tenant": TENANT,
                "tenant_id": tenant.pk,
                "documents": documents,
                "chunks": backend.client.count(index=backend._alias(tenant.pk))["count"],
                "queries": questions,
                "msearch": bodies,
                "shown": hits,
            }
        )
    )


def _reader_through_a_group(tenant, collection) -> None:
    """A reader in a group granted VIEW on the Cranfield collection, and the index's principals
    brought up to date as `search_reconcile` does (the grant's own re-index is a task, and no worker
    listens on this benchmark's queue)."""
    from django.db import transaction

    from apps.access.grants import Grant
    from apps.access.levels import Level
    from apps.documents import services as documents
    from apps.search import services as search
    from apps.tenants import services as tenants
    from apps.tenants.actors import Actor
    from apps.tenants.models import Membership, Role, TenantGroup

    with transaction.atomic():
        reader = Membership.objects.filter(tenant=tenant, username=READER).first() or tenants.member_create(
            tenant=tenant, username=READER, role=Role.READER
        )
        group = TenantGroup.objects.filter(tenant=tenant, name=READERS_GROUP).first() or tenants.group_create(
            tenant=tenant, name=READERS_GROUP
        )
        if not reader.user.groups.filter(pk=group.auth_group_id).exists():
            tenants.group_member_add(group=group, membership=reader)
        documents.grants_replace(obj=collection, grants=[Grant(group.auth_group, Level.VIEW)], actor=Actor(user=None))
    report = search.reconcile(repair=True)
    print(f"[throughput] reader '{READER}' reads through group '{READERS_GROUP}'; index: {report}", file=sys.stderr)


# =========================================================================== the floor (worker processes)
_floor: dict = {}


def floor_init(bodies: list[list[dict]], queries: list[str], torch_threads: int | None) -> None:
    """A floor worker: Django's settings (for the same embedder and client configuration), the
    platform's embedder loaded, an Elasticsearch client as the backend builds it. Nothing else."""
    import django

    django.setup()
    from django.conf import settings

    from apps.corpus.embedding import get_embedder
    from apps.search.backends.elasticsearch import build_client

    embedder = get_embedder()
    # Loads the query path the platform serves with (EMBEDDING_QUERY_RUNTIME), with its threads.
    embedder.encode_queries(["warm up"])
    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    client = build_client(settings.SEARCH["ELASTICSEARCH"])
    _floor.update(embedder=embedder, client=client, bodies=bodies, queries=queries)
    floor_call(0)  # a first call outside the timing (lazy imports, the connection pool)


def floor_call(index: int) -> dict:
    """Encode the query, then send the platform's msearch for it with that vector."""
    started = time.perf_counter()
    cpu = time.thread_time()
    vector = _floor["embedder"].encode_queries([_floor["queries"][index]])[0]
    encoded = time.perf_counter()
    searches = [dict(part) for part in _floor["bodies"][index]]
    for part in searches:
        if "knn" in part:
            part["knn"] = {**part["knn"], "query_vector": [float(x) for x in vector]}
    response = _floor["client"].msearch(searches=searches)
    done = time.perf_counter()
    errors = [r for r in response["responses"] if "error" in r]
    return {
        "ok": not errors,
        "encode_ms": (encoded - started) * 1000,
        "es_ms": (done - encoded) * 1000,
        "es_took_ms": max((r.get("took", 0) for r in response["responses"]), default=0),
        "thread_cpu_ms": (time.thread_time() - cpu) * 1000,
        "hits": sum(len(r["hits"]["hits"]) for r in response["responses"] if "hits" in r),
    }


def floor_vector(index: int) -> list[float]:
    return [float(x) for x in _floor["embedder"].encode_queries([_floor["queries"][index]])[0]]


def floor_pid(_: int) -> int:
    time.sleep(0.2)  # keeps this worker busy so the others take the other calls
    return os.getpid()


# =========================================================================== driving and measuring
@dataclass
class Cell:
    target: str
    concurrency: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # ms, successful calls
    errors: list[str] = field(default_factory=list)
    details: list[dict] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds during the cell, by group

    @property
    def requests(self) -> int:
        return len(self.latencies)

    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")


def merged(cells: list[Cell]) -> list[Cell]:
    """One cell per (target, callers): the rounds of a run pooled (requests, seconds and CPU add up)."""
    out: dict[tuple[str, int], Cell] = {}
    for cell in cells:
        into = out.setdefault((cell.target, cell.concurrency), Cell(cell.target, cell.concurrency))
        into.seconds += cell.seconds
        into.latencies += cell.latencies
        into.errors += cell.errors
        into.details += cell.details
        for name, value in cell.cpu.items():
            into.cpu[name] = into.cpu.get(name, 0.0) + value
    order = {"floor": 0, "/search": 1, "/ask": 2}
    return sorted(out.values(), key=lambda c: (order.get(c.target, 9), c.concurrency))


def process_groups(serving: list[int]) -> dict[str, list[psutil.Process]]:
    """The processes whose CPU a cell reports: the serving workers, Elasticsearch, PostgreSQL."""
    groups: dict[str, list[psutil.Process]] = {
        "serving": [psutil.Process(p) for p in serving],
        "es": [],
        "pg": [],
        "driver": [psutil.Process()],  # this process: the callers' threads (and the pool's hand-off)
    }
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            if "org.elasticsearch" in cmdline and "java" in (proc.info["name"] or ""):
                groups["es"].append(proc)
            elif (proc.info["name"] or "").startswith("postgres"):
                groups["pg"].append(proc)
        except psutil.Error:
            continue
    return groups


def cpu_seconds(groups: dict[str, list[psutil.Process]]) -> dict[str, dict[int, float]]:
    """CPU seconds so far of every process of every group, by pid; the machine's busy time as pid 0."""
    totals: dict[str, dict[int, float]] = {}
    for name, procs in groups.items():
        totals[name] = {}
        for proc in procs:
            try:
                t = proc.cpu_times()
                totals[name][proc.pid] = t.user + t.system
            except psutil.Error:  # gone: it counts in neither sample
                pass
    busy = psutil.cpu_times()
    totals["machine"] = {0: sum(busy) - busy.idle - getattr(busy, "iowait", 0.0)}
    return totals


def cpu_spent(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
    """CPU seconds between two samples, by group, over the processes alive at both."""
    return {
        name: sum(max(0.0, after[name][pid] - was) for pid, was in before.get(name, {}).items() if pid in after[name])
        for name in after
    }


def drive(cell: Cell, call, n_queries: int, duration: float, warmup: float, groups) -> Cell:
    """`cell.concurrency` closed-loop callers for `warmup` then `duration` seconds. A call counts
    when it ends inside the timed window (throughput = completions in the window ÷ its length, so
    slow calls are not under-counted); callers start nothing after the window."""
    order = itertools.count()
    lock = threading.Lock()
    start_at = time.perf_counter() + warmup
    stop_at = start_at + duration
    before: dict[str, dict[int, float]] = {}

    def caller() -> None:
        while True:
            began = time.perf_counter()
            if began >= stop_at:
                return
            index = next(order) % n_queries
            try:
                detail = call(index)
                error = "" if detail.get("ok", True) else detail.get("error", "failed")
            except Exception as exc:  # a failed call is counted, not fatal
                detail, error = {}, repr(exc)[:200]
            ended = time.perf_counter()
            if start_at <= ended <= stop_at:
                with lock:
                    if error:
                        cell.errors.append(error)
                    else:
                        cell.latencies.append((ended - began) * 1000)
                        cell.details.append(detail)

    def sample_cpu() -> None:
        time.sleep(max(0.0, start_at - time.perf_counter()))
        before.update(cpu_seconds(groups))
        # A mark for tools that watch the run (a profiler attaching to the server for this window).
        print(f"[throughput] {cell.target} ×{cell.concurrency}: timed window open", file=sys.stderr, flush=True)

    threads = [threading.Thread(target=caller, daemon=True) for _ in range(cell.concurrency)]
    sampler = threading.Thread(target=sample_cpu, daemon=True)
    sampler.start()
    for thread in threads:
        thread.start()
    sampler.join()
    time.sleep(max(0.0, stop_at - time.perf_counter()))
    after = cpu_seconds(groups)
    for thread in threads:
        thread.join(timeout=180)
    cell.seconds = duration
    cell.cpu = cpu_spent(before, after)
    return cell


def http_call(port: int, path: str, key: str, body_of):
    headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}

    def call(index: int) -> dict:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            connection.request("POST", path, body=json.dumps(body_of(index)), headers=headers)
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        if response.status != 200:
            return {"ok": False, "error": f"{response.status}: {payload[:160]!r}"}
        data = json.loads(payload)
        if "audit_id" not in data:
            return {"ok": False, "error": "no audit_id in the response"}
        return {
            "ok": True,
            "timings": data.get("timings", {}),
            "results": len(data.get("results", data.get("sources", []))),
        }

    return call


# =========================================================================== report
def fmt(value: float, digits: int = 0) -> str:
    return "–" if value != value else f"{value:,.{digits}f}"  # NaN → dash


def cpu_per_request(cell: Cell, name: str) -> float:
    return cell.cpu.get(name, float("nan")) * 1000 / cell.requests if cell.requests else float("nan")


def busy(cell: Cell, name: str) -> float:
    """CPU use during the cell as % of one core: the machine's, or what none of ours used."""
    if not cell.seconds:
        return float("nan")
    if name == "others":
        ours = sum(cell.cpu.get(g, 0.0) for g in ("serving", "es", "pg", "driver"))
        return max(0.0, cell.cpu.get("machine", 0.0) - ours) / cell.seconds * 100
    return cell.cpu.get(name, 0.0) / cell.seconds * 100


def median_of(details: list[dict], key: str) -> float:
    values = [d[key] for d in details if key in d]
    return float(np.median(values)) if values else float("nan")


def step_medians(details: list[dict]) -> dict[str, float]:
    steps: dict[str, list[float]] = {}
    for d in details:
        for name, ms in d.get("timings", {}).items():
            steps.setdefault(name, []).append(ms)
    return {name: float(np.median(v)) for name, v in steps.items() if max(v) > 0.05}


def report(cells: list[Cell], meta: dict) -> str:
    floor = {c.concurrency: c for c in cells if c.target == "floor"}
    rows = []
    for cell in cells:
        base = floor.get(cell.concurrency)
        ratio = cell.rate() / base.rate() if base and base.rate() and cell.target != "floor" else float("nan")
        p50_ratio = cell.pct(50) / base.pct(50) if base and cell.target != "floor" else float("nan")
        rows.append(
            f"| {cell.target} | {cell.concurrency} | {cell.requests} | {len(cell.errors)} | {fmt(cell.rate(), 1)} | "
            f"{fmt(cell.pct(50))} | {fmt(cell.pct(95))} | {fmt(cell.pct(99))} | "
            f"{fmt(ratio, 2) if base is not cell else '1'} | {fmt(p50_ratio, 1) if base is not cell else '1'} | "
            f"{fmt(cpu_per_request(cell, 'serving'))} | {fmt(cpu_per_request(cell, 'es'))} | "
            f"{fmt(cpu_per_request(cell, 'pg'))} | {fmt(cpu_per_request(cell, 'driver'))} | "
            f"{fmt(busy(cell, 'machine'))} | {fmt(busy(cell, 'others'))} |"
        )
    breakdown = []
    for cell in cells:
        if cell.target == "floor":
            parts = (
                f"encode {fmt(median_of(cell.details, 'encode_ms'), 1)}, "
                f"Elasticsearch {fmt(median_of(cell.details, 'es_ms'), 1)} "
                f"(its own `took` {fmt(median_of(cell.details, 'es_took_ms'), 0)})"
            )
        else:
            parts = ", ".join(f"{k} {fmt(v, 1)}" for k, v in step_medians(cell.details).items())
        breakdown.append(f"| {cell.target} | {cell.concurrency} | {parts} |")
    errors = sorted({e for c in cells for e in c.errors})[:5]
    return "\n".join(
        [
            "# Throughput: search and ask against their floor",
            "",
            f"`{meta['command']}`",
            "",
            f"{meta['when']}; {os.cpu_count()} cores, Python {platform.python_version()}, profile full, Elasticsearch "
            f"backend; code {meta['code']}. Tenant `{meta['tenant']}`: Cranfield, {meta['documents']:,} documents, "
            f"{meta['chunks']:,} chunks in its index; {meta['queries']} Cranfield questions, each caller taking the "
            f"next one in turn; {ACCESS[meta.get('as_user', OWNER)]}.",
            "",
            f"- **floor**: the platform's embedder's query path (`apps.corpus.embedding`, "
            f"`EMBEDDING_QUERY_RUNTIME` {meta['floor_threads']}) encodes the query, then the msearch the "
            "platform built for that query (captured from the real pipeline: tenant, `published` and "
            "principals filters, BM25 and kNN) is sent with that "
            f"vector; in {meta['workers']} worker processes (a process pool: one call at a time each, like a sync "
            "gunicorn worker). Vectors agree with the platform's: "
            f"min cosine {meta['cosine']:.6f}.",
            f"- **/search**: `POST /api/v1/search` (hybrid, RRF, k 10); **/ask**: `POST /api/v1/ask` (k 5, the "
            f"extractive generator). Server: `{meta['server']}` (docker/Dockerfile's CMD, bound to loopback), "
            "production settings, the application's database role, rate limits raised above the load, the "
            f"query-vector cache {meta['query_cache']}; OS threads per gunicorn worker after warm-up: "
            f"{meta['os_threads']}.",
            f"- Closed-loop callers (no think time), {meta['warmup']:g} s warm-up then {meta['duration']:g} s timed "
            f"per row and round ({meta['rounds']} round(s), pooled); rows interleaved (at each caller count the "
            "floor, then /search, then /ask), so each ratio compares rows taken close together; a call counts when "
            "it ends inside the timed window. Latency in ms, measured by the caller (HTTP included for the "
            "platform; the process-pool hand-off for the floor).",
            "",
            "| target | callers | requests | errors | req/s | p50 | p95 | p99 | req/s ÷ floor | p50 ÷ floor "
            "| CPU ms/req: serving | Elasticsearch | PostgreSQL¹ | callers | machine CPU %² | others' CPU %² |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "¹ every PostgreSQL process on the machine, other sessions' included. ² % of one core (the machine has "
            f"{os.cpu_count()}): the whole machine's use, and what is left after this run's processes (serving, "
            "Elasticsearch, PostgreSQL, callers): other sessions' load, the noise in these figures.",
            "",
            "Median per-request breakdown, ms (the floor's own timers; the platform's `timings` from its responses):",
            "",
            "| target | callers | steps |",
            "|---|---:|---|",
            *breakdown,
            "",
            *(["Errors seen (first five kinds): " + "; ".join(f"`{e}`" for e in errors), ""] if errors else []),
            f"Audit chain after the run: {meta['audit']}",
            "",
            "**These figures were taken on a shared 2-core machine, with other sessions' test suites running: "
            "re-measure on a quiet machine before treating them as the baseline.**",
            "",
            "Where the time goes, and the same benchmark with one torch thread per worker (`--torch-threads 1`): "
            "[throughput-profile.md](throughput-profile.md).",
            "",
        ]
    )


# =========================================================================== main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phase", choices=["all", "setup"], default="all", help=argparse.SUPPRESS)
    parser.add_argument("--setup-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=15, help="seconds timed per row (default 15)")
    parser.add_argument("--warmup", type=float, default=3, help="seconds before each row's timing (default 3)")
    parser.add_argument("--concurrency", default="1,4,8", help="comma-separated caller counts (default 1,4,8)")
    parser.add_argument("--targets", default="floor,search,ask", help="any of floor,search,ask (default all)")
    parser.add_argument(
        "--workers", type=int, default=None, help="gunicorn and floor workers (default: the Dockerfile's)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="sweeps of every row, pooled (default 1)")
    parser.add_argument("--queries", type=int, default=None, help="the first N Cranfield questions (default all)")
    parser.add_argument(
        "--as",
        dest="as_user",
        choices=[OWNER, READER],
        default=OWNER,
        help="whom the key acts for: the owner (reads by role) or a reader (through a group's grant)",
    )
    parser.add_argument("--torch-threads", type=int, default=None, help="probe: torch threads per worker after load")
    parser.add_argument(
        "--query-cache",
        type=int,
        default=0,
        help="the server's per-caller query-vector cache size (EMBEDDING_QUERY_CACHE_SIZE); default 0, off: "
        "every request encodes, as the floor does",
    )
    parser.add_argument("--database", default="kp_tp", help="PostgreSQL database of the run (default kp_tp)")
    parser.add_argument("--index-prefix", default="kp-tp", help="Elasticsearch index prefix (default kp-tp)")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--output", type=Path, default=None, help="Markdown report (printed either way)")
    parser.add_argument("--json", type=Path, default=None, help="raw figures as JSON")
    args = parser.parse_args()
    if args.phase == "setup":
        setup_phase(args.setup_out, args.queries, args.as_user)
        return 0

    command_line = "bin/throughput " + shlex.join(sys.argv[1:])
    levels = [int(c) for c in args.concurrency.split(",")]
    targets = args.targets.split(",")
    env = benchmark_env(args.database, args.index_prefix)
    ensure_database(env["DATABASE_URL"])
    manage("migrate", "--no-input", "-v0", env=env)
    STATE.mkdir(parents=True, exist_ok=True)
    if not (STATE / "staticfiles").is_dir():  # as the image does at build time (WhiteNoise serves them)
        manage("collectstatic", "--no-input", "-v0", env=env)
    setup_file = STATE / "setup.json"
    started = time.monotonic()
    subprocess.run(
        [PYTHON, __file__, "--phase", "setup", "--setup-out", str(setup_file), "--as", args.as_user]
        + (["--queries", str(args.queries)] if args.queries else []),
        cwd=ROOT,
        env={**env, "LOG_LEVEL": "WARNING"},
        check=True,
    )
    setup = json.loads(setup_file.read_text())
    print(
        f"[throughput] set up in {time.monotonic() - started:.0f} s: {len(setup['queries'])} queries, "
        f"{setup['chunks']} chunks, {sum(1 for s in setup['shown'] if s)} queries with results",
        file=sys.stderr,
    )
    server = production_gunicorn(args.workers)
    workers = int(option(server, "--workers"))
    server[server.index("--bind") + 1] = f"127.0.0.1:{args.port}"
    n = len(setup["queries"])
    cells: list[Cell] = []
    floor_threads, cosine, os_threads = "as the platform sets them", float("nan"), "–"

    os.environ.update(env)  # the floor's workers read the same settings as the server
    # ... and share the cores as the server's workers do (gunicorn.conf.py sets this for them).
    os.environ.setdefault("SERVING_PROCESSES", str(workers))

    log = tempfile.NamedTemporaryFile("w", prefix="throughput-", suffix=".log", delete=False)  # noqa: SIM115 (the server's log outlives this block)
    calls: dict[str, Callable[[int], dict]] = {}
    groups_of: dict[str, dict[str, list[psutil.Process]]] = {}
    with contextlib.ExitStack() as stack:
        if "floor" in targets:
            pool = stack.enter_context(
                futures.ProcessPoolExecutor(
                    max_workers=workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=floor_init,
                    initargs=(setup["msearch"], setup["queries"], args.torch_threads),
                )
            )
            pids = sorted(set(pool.map(floor_pid, range(workers * 4))))
            floor_threads = pool.submit(_query_runtime).result()
            platform_vectors = [next(p for p in body if "knn" in p)["knn"]["query_vector"] for body in setup["msearch"]]
            mine = list(pool.map(floor_vector, range(min(n, 20))))
            cosine = min(
                float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
                for a, b in zip(mine, platform_vectors, strict=False)
            )
            calls["floor"] = lambda i: pool.submit(floor_call, i).result()
            groups_of["floor"] = process_groups(pids)
        if any(t in ("search", "ask") for t in targets):
            # The query-vector cache off unless asked for: a caller repeats every question once per
            # 113 requests, so with it on nearly every request would skip the encoder the floor runs.
            serve_env = {**env, "DATABASE_URL": serving_url(env), "EMBEDDING_QUERY_CACHE_SIZE": str(args.query_cache)}
            extra = ["--config", str(ROOT / "loadtest" / "gunicorn_probe.py")] if args.torch_threads else []
            if args.torch_threads:
                serve_env["KP_PROBE_TORCH_THREADS"] = str(args.torch_threads)
            process = subprocess.Popen(
                [str(BIN / "gunicorn"), *server[1:], *extra],
                cwd=ROOT,
                env=serve_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            stack.callback(log.close)
            stack.callback(process.wait, timeout=60)
            stack.callback(process.terminate)
            wait_ready(f"http://127.0.0.1:{args.port}", timeout=120)
            bodies = {
                "search": lambda i: {
                    "query": setup["queries"][i],
                    "mode": "hybrid",
                    "k": 10,
                    "as_user": setup["as_user"],
                },
                "ask": lambda i: {"query": setup["queries"][i], "as_user": setup["as_user"]},
            }
            # Every worker loads the model on its first request: warm them all before anything is timed.
            warm = http_call(args.port, "/api/v1/search", setup["key"], bodies["search"])
            with futures.ThreadPoolExecutor(workers * 2) as warmers:
                list(warmers.map(warm, (i % n for i in range(workers * 6))))  # --queries may be fewer
            served = process_groups([c.pid for c in psutil.Process(process.pid).children()])
            os_threads = ", ".join(str(proc.num_threads()) for proc in served["serving"])
            for target in ("search", "ask"):
                if target in targets:
                    calls[target] = http_call(args.port, f"/api/v1/{target}", setup["key"], bodies[target])
                    groups_of[target] = served
        # Interleaved: at each caller count the floor, then /search, then /ask, so that each ratio
        # compares rows taken minutes apart at most (the machine's other load drifts).
        for _ in range(args.rounds):
            for level in levels:
                for target in [t for t in ("floor", "search", "ask") if t in targets]:
                    label = "floor" if target == "floor" else f"/{target}"
                    cell = drive(Cell(label, level), calls[target], n, args.duration, args.warmup, groups_of[target])
                    cells.append(cell)
                    print(
                        f"[throughput] {label} ×{level}: {cell.rate():.1f} req/s, p50 {cell.pct(50):.0f} ms, "
                        f"{len(cell.errors)} errors",
                        file=sys.stderr,
                    )
    cells = merged(cells)

    verify = subprocess.run([PYTHON, "manage.py", "audit_verify"], cwd=ROOT, env=env, capture_output=True, text=True)
    audit = ("verified — " if verify.returncode == 0 else "**BROKEN** — ") + " ".join(verify.stdout.split())[:200]
    code = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    text = report(
        cells,
        {
            "command": command_line,
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "code": code + ("-dirty" if dirty else ""),
            "tenant": setup["tenant"],
            "as_user": setup["as_user"],
            "documents": setup["documents"],
            "chunks": setup["chunks"],
            "queries": n,
            "floor_threads": floor_threads + (f" (probe: set to {args.torch_threads})" if args.torch_threads else ""),
            "workers": workers,
            "cosine": cosine,
            "server": " ".join(server) + (f" + probe torch threads {args.torch_threads}" if args.torch_threads else ""),
            "warmup": args.warmup,
            "duration": args.duration,
            "audit": audit,
            "os_threads": os_threads,
            "rounds": args.rounds,
            "query_cache": f"{args.query_cache:,} entries" if args.query_cache else "off (every request encodes)",
        },
    )
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        print(f"written to {args.output}", file=sys.stderr)
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "target": c.target,
                        "concurrency": c.concurrency,
                        "seconds": c.seconds,
                        "latencies_ms": c.latencies,
                        "errors": c.errors,
                        "cpu_s": c.cpu,
                        "details": c.details,
                    }
                    for c in cells
                ]
            )
        )
    failed = sum(len(c.errors) for c in cells)
    if failed or verify.returncode != 0:
        print(
            f"FAILED: {failed} errors; audit_verify exit code {verify.returncode}; server log: {log.name}",
            file=sys.stderr,
        )
        return 1
    return 0


def _query_runtime() -> str:
    from django.conf import settings

    from apps.corpus.embedding import intra_op_threads

    runtime = settings.EMBEDDING["QUERY_RUNTIME"]
    if runtime == "torch":
        import torch

        return f"torch, {torch.get_num_threads()} intra-op thread(s)"
    return f"{runtime}, {intra_op_threads()} intra-op thread(s)"


if __name__ == "__main__":
    sys.exit(main())
