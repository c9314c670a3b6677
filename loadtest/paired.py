"""Paired A/B of the production server: one gunicorn per variant, all started at once, and one
caller sending each question to every variant in turn (the order flipped every question), so the
variants share the machine's state minute by minute.

Why not two `bin/throughput` runs: on this machine one server start differs from the next by up
to a quarter at p50 with the same code (30 to 47 ms for /search, one caller, 2026-12-04), more than
most changes are worth. Side by side, the same comparison repeats within 1-2 ms.

A variant is a set of environment variables for its server (comma-separated NAME=value), so it
compares settings, not code: run it on the code under test.

    bin/throughput paired DATABASE_PREPARED_STATEMENTS=false DATABASE_PREPARED_STATEMENTS=true
    bin/throughput paired --requests 800 --path ask X=1 X=2

Reads the throughput benchmark's set-up (bin/throughput sets the tenant and its key up first).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import wait_ready
from throughput import BIN, ROOT, STATE, benchmark_env, http_call, production_gunicorn, serving_url


def variant_env(spec: str) -> dict[str, str]:
    pairs = [item.split("=", 1) for item in spec.split(",") if item]
    if any(len(pair) != 2 for pair in pairs):
        raise SystemExit(f"a variant is NAME=value[,NAME=value…]: {spec!r}")
    return dict(pairs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+", help="NAME=value[,NAME=value…] per server")
    parser.add_argument("--requests", type=int, default=500, help="timed requests per variant (default 500)")
    parser.add_argument("--warmup", type=int, default=60, help="untimed requests per variant first (default 60)")
    parser.add_argument("--path", choices=("search", "ask"), default="search")
    parser.add_argument("--port", type=int, default=8795, help="first variant's port; the next ones follow")
    parser.add_argument("--database", default="kp_tp")
    parser.add_argument("--index-prefix", default="kp-tp")
    args = parser.parse_args()
    if len(args.variants) < 2:
        raise SystemExit("name two variants or more")

    setup = json.loads((STATE / "setup.json").read_text())
    env = benchmark_env(args.database, args.index_prefix)
    base = {**env, "DATABASE_URL": serving_url(env), "EMBEDDING_QUERY_CACHE_SIZE": "0"}
    ports = [args.port + i for i in range(len(args.variants))]
    queries = setup["queries"]
    if args.path == "search":
        body_of = lambda i: {"query": queries[i], "mode": "hybrid", "k": 10, "as_user": setup["as_user"]}  # noqa: E731
    else:
        body_of = lambda i: {"query": queries[i], "as_user": setup["as_user"]}  # noqa: E731
    walls: dict[str, list[float]] = {v: [] for v in args.variants}
    steps: dict[str, list[float]] = {v: [] for v in args.variants}
    with contextlib.ExitStack() as stack:
        for variant, port in zip(args.variants, ports, strict=True):
            command = production_gunicorn(None)
            command[command.index("--bind") + 1] = f"127.0.0.1:{port}"
            log = stack.enter_context(tempfile.NamedTemporaryFile("w", prefix="paired-", suffix=".log", delete=False))
            server = subprocess.Popen(
                [str(BIN / "gunicorn"), *command[1:]],
                cwd=ROOT,
                env={**base, **variant_env(variant)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            stack.callback(server.wait, timeout=60)
            stack.callback(server.terminate)
        for port in ports:
            wait_ready(f"http://127.0.0.1:{port}", timeout=120)
        # The benchmark's own caller (one new connection per call, as it sends them).
        calls = [
            (v, http_call(p, f"/api/v1/{args.path}", setup["key"], body_of))
            for v, p in zip(args.variants, ports, strict=True)
        ]
        for i in tqdm(range(args.warmup + args.requests), desc="paired requests", unit="round", file=sys.stderr):
            for variant, call in calls if i % 2 else calls[::-1]:
                began = time.perf_counter()
                detail = call(i % len(queries))
                wall = (time.perf_counter() - began) * 1000
                if not detail["ok"]:
                    raise SystemExit(f"{variant}: {detail['error']}")
                if i >= args.warmup:
                    walls[variant].append(wall)
                    steps[variant].append(sum(detail["timings"].values()))

    first = args.variants[0]
    print(
        f"\n/{args.path}, one caller, {args.requests} requests per variant, interleaved "
        "(ms; the caller's wall clock):\n"
    )
    print("| variant | p50 | p95 | p99 | mean | p50 ÷ first | pipeline steps p50 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for variant in args.variants:
        wall = np.array(walls[variant])
        p50, p95, p99 = np.percentile(wall, [50, 95, 99])
        ratio = p50 / np.percentile(walls[first], 50)
        print(
            f"| `{variant}` | {p50:.1f} | {p95:.1f} | {p99:.1f} | {wall.mean():.1f} | {ratio:.3f} "
            f"| {np.percentile(steps[variant], 50):.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
