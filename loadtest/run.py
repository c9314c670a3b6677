"""A bounded load test of search and ask on loopback, end to end:

1. migrate and seed the demo tenants (manage.py seed_demo: documents ingested and published — by a
   Celery worker started here on the full profile; a fresh demo API key for acme),
2. serve the platform with gunicorn on 127.0.0.1 (production settings, rate limits raised above
   the load so that a 429 would be a real error),
3. warm each worker up (the embedding model loads on first use), then run locust headless,
4. verify the audit hash chain of every tenant after the load (manage.py audit_verify),
5. write a Markdown report (throughput, p50/p95/p99, errors) and exit non-zero on any error.

    python loadtest/run.py --users 8 --duration 60 --output docs/benchmarks/load.md

The profile is the caller's environment (bin/loadtest sources the full profile's services)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
BIN = Path(PYTHON).parent


def server_env(base) -> dict:
    """`base` (the caller's environment) with what serving the production settings on loopback
    needs: generated secrets where none are set, plain HTTP, rate limits raised above any load (so
    that a 429 is a real error). loadtest/throughput.py serves with the same."""
    env = {**base, "PYTHONPATH": f"{ROOT}:{ROOT / 'platform'}"}
    env.setdefault("DJANGO_SETTINGS_MODULE", "knowledge_platform.settings.production")
    env.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    env.setdefault("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
    env.setdefault("DJANGO_SECURE_SSL_REDIRECT", "false")  # plain HTTP on loopback
    env["API_THROTTLE_CALLER"] = env["API_THROTTLE_TENANT"] = "1000000/min"
    return env


def manage(*args: str, env: dict) -> str:
    result = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def wait_ready(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health/ready", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"the server at {url} did not become ready in {timeout:.0f} s")


def post(url: str, key: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{url}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Api-Key {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def warm_up(url: str, key: str, rounds: int, timeout: float) -> None:
    """Waits until the demo documents answer (the worker may still be ingesting them), then loads
    the embedding model in each gunicorn worker (it loads on first use) before anything is timed."""
    deadline = time.monotonic() + timeout
    body = {"query": "How many weeks of parental leave do parents get?", "as_user": "hannah.hr"}
    while not post(url, key, "/api/v1/search", body)["results"]:
        if time.monotonic() > deadline:
            raise SystemExit(f"the demo documents were not searchable after {timeout:.0f} s")
        time.sleep(2)
    for _ in range(rounds):
        post(url, key, "/api/v1/search", body)
        post(url, key, "/api/v1/ask", body)


def percentile(histogram: dict[str, int], share: float) -> float:
    """From locust's response-time histogram (rounded milliseconds → count)."""
    points = sorted((float(ms), count) for ms, count in histogram.items())
    total, seen = sum(c for _, c in points), 0
    for ms, count in points:
        seen += count
        if seen >= share * total:
            return ms
    return points[-1][0] if points else 0.0


def report(
    stats: list[dict], *, users: int, duration: int, workers: int, audit: str, environment: dict
) -> tuple[str, int]:
    rows, errors = [], 0
    for entry in sorted(stats, key=lambda e: e["name"]):
        seconds = max(entry["last_request_timestamp"] - entry["start_time"], 1e-9)
        errors += entry["num_failures"]
        rows.append(
            f"| {entry['method']} {entry['name']} | {entry['num_requests']} | {entry['num_failures']} | "
            f"{entry['num_requests'] / seconds:.1f} | {percentile(entry['response_times'], 0.5):.0f} | "
            f"{percentile(entry['response_times'], 0.95):.0f} | {percentile(entry['response_times'], 0.99):.0f} | "
            f"{entry['max_response_time']:.0f} |"
        )
    total = sum(e["num_requests"] for e in stats)
    text = "\n".join(
        [
            "# Load test: search and ask on loopback",
            "",
            f"`bin/loadtest` — locust, {users} simulated tenant apps (0.05–0.2 s think time) for {duration} s "
            "against gunicorn "
            f"({workers} workers) on 127.0.0.1; profile `{environment['profile']}`, search backend "
            f"`{environment['backend']}`; "
            f"{os.cpu_count()} cores, Python {platform.python_version()}. Each call acts for one of four people "
            "of the demo "
            "tenant (`as_user`), so their own access applies; search draws hybrid, bm25 or dense at random, k "
            "10; ask uses the "
            "extractive generator. Rate limits are raised above the load for the run (a 429 would count as an error); "
            f"the query-vector cache {environment['query_cache']} (`--query-cache`).",
            "",
            "| endpoint | requests | errors | req/s | p50 ms | p95 ms | p99 ms | max ms |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            f"**{total} requests, {errors} errors.** Audit chain after the load: {audit}",
            "",
        ]
    )
    return text, errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--duration", type=int, default=60, help="seconds")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--output", type=Path, default=None, help="Markdown report (printed either way)")
    parser.add_argument(
        "--query-cache",
        type=int,
        default=0,
        help="the server's per-caller query-vector cache (EMBEDDING_QUERY_CACHE_SIZE); default 0, off: the mix "
        "has 8 questions × 4 people, so with it on nearly every call would skip the encoder",
    )
    args = parser.parse_args()

    env = server_env(os.environ)
    env["EMBEDDING_QUERY_CACHE_SIZE"] = str(args.query_cache)
    url = f"http://127.0.0.1:{args.port}"

    manage("migrate", "--no-input", "-v0", env=env)
    log = tempfile.NamedTemporaryFile("w", prefix="loadtest-", suffix=".log", delete=False)  # noqa: SIM115 (a child process's log: it outlives this block)
    processes = []
    if env.get("PLATFORM_PROFILE") == "full":  # uploads are ingested by a worker, as deployed
        processes.append(
            subprocess.Popen(
                [str(BIN / "celery"), "-A", "knowledge_platform", "worker", "-P", "solo", "-l", "WARNING"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        seeded = manage("seed_demo", env=env)
        match = re.search(r"tenant acme\s.*demo API key: (\S+)", seeded)
        if not match:
            raise SystemExit(f"seed_demo printed no key for acme:\n{seeded}")
        key = match.group(1)
        processes.append(
            subprocess.Popen(
                [
                    str(BIN / "gunicorn"),
                    "knowledge_platform.wsgi:application",
                    "-w",
                    str(args.workers),
                    "-b",
                    f"127.0.0.1:{args.port}",
                    "--timeout",
                    "120",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        wait_ready(url, timeout=120)
        warm_up(url, key, rounds=2 * args.workers, timeout=300)
        with tempfile.TemporaryDirectory() as folder:
            stats_file = Path(folder) / "stats.json"
            subprocess.run(
                [
                    str(BIN / "locust"),
                    "-f",
                    str(ROOT / "loadtest" / "locustfile.py"),
                    "--headless",
                    "--only-summary",
                    "-u",
                    str(args.users),
                    "-r",
                    str(args.users),
                    "-t",
                    f"{args.duration}s",
                    "--host",
                    url,
                    "--json-file",
                    str(stats_file.with_suffix("")),
                ],
                cwd=ROOT,
                env={**env, "KP_LOAD_KEY": key},
                check=False,
            )
            stats = json.loads(stats_file.read_text())
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=60)
        log.close()

    verify = subprocess.run([PYTHON, "manage.py", "audit_verify"], cwd=ROOT, env=env, capture_output=True, text=True)
    audit = ("verified — " if verify.returncode == 0 else "**BROKEN** — ") + " ".join(verify.stdout.split())[:300]
    backend = env.get("SEARCH_BACKEND") or ("elasticsearch" if env.get("PLATFORM_PROFILE") == "full" else "embedded")
    text, errors = report(
        stats,
        users=args.users,
        duration=args.duration,
        workers=args.workers,
        audit=audit,
        environment={
            "profile": env.get("PLATFORM_PROFILE", "embedded"),
            "backend": backend,
            "query_cache": f"{args.query_cache:,} entries per tenant" if args.query_cache else "off",
        },
    )
    print(text)
    if args.output:
        args.output.write_text(text)
        print(f"written to {args.output}")
    if errors or verify.returncode != 0:
        print(
            f"FAILED: {errors} errors; audit_verify exit code {verify.returncode}; server log: {log.name}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
