"""The query encoder on each runtime, in one run: torch (sentence-transformers) and ONNX Runtime
(apps/corpus/query_encoder.py) encode the Cranfield questions one at a time, as a request does,
interleaved query by query so both meet the same machine load. Prints p50/p95 per query, the
ratio to torch, and the cosine between the two vectors of every question. Each runtime runs in
a process of its own, so the memory it reports is that runtime's alone.

    bin/throughput encoders [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ROOT.parent / "shared" / "datasets" / "cranfield" / "queries.jsonl"


def _serve(runtime: str, threads: int, requests, replies) -> None:  # type: ignore[no-untyped-def]
    """One runtime in a process of its own: encode what arrives, one query per call."""
    os.environ.update(EMBEDDING_QUERY_RUNTIME=runtime, EMBEDDING_THREADS=str(threads))
    sys.path[:0] = [str(ROOT), str(ROOT / "platform")]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "knowledge_platform.settings.development")
    import django

    django.setup()
    from apps.corpus.embedding import get_embedder

    embedder = get_embedder()
    embedder.encode_queries(["warm up"])
    while (text := requests.get()) is not None:
        started = time.perf_counter()
        vector = embedder.encode_queries([text])[0]
        replies.put((time.perf_counter() - started, vector))
    with open("/proc/self/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    replies.put(("done", rss, "torch" in sys.modules))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the questions (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of each runtime (default 1)")
    args = parser.parse_args()
    questions = [json.loads(line)["text"] for line in QUERIES.read_text().splitlines()]
    runtimes = ("torch", "onnx")
    context = multiprocessing.get_context("spawn")
    queues = {name: (context.Queue(), context.Queue()) for name in runtimes}
    workers = [context.Process(target=_serve, args=(name, args.threads, *queues[name])) for name in runtimes]
    for worker in workers:
        worker.start()
    seconds: dict[str, list[float]] = {name: [] for name in runtimes}
    cosines = []
    for _ in range(args.rounds):
        for text in questions:
            vectors = {}
            for name in runtimes:  # one query on each runtime in turn: the same load for both
                requests, replies = queues[name]
                requests.put(text)
                took, vectors[name] = replies.get()
                seconds[name].append(took)
            cosines.append(float(np.dot(vectors["torch"], vectors["onnx"])))
    memory = {}
    for name in runtimes:
        requests, replies = queues[name]
        requests.put(None)
        _, rss, loaded_torch = replies.get()
        memory[name] = (rss, loaded_torch)
    for worker in workers:
        worker.join()

    base = np.percentile(seconds["torch"], [50, 95])
    print(
        f"{len(questions)} Cranfield questions × {args.rounds} rounds, one per call, "
        f"{args.threads} intra-op thread(s)\n"
    )
    print("| runtime | p50 ms | p95 ms | p50 ÷ torch | p95 ÷ torch | RSS after the run | torch imported |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name in runtimes:
        p50, p95 = np.percentile(seconds[name], [50, 95])
        rss, loaded_torch = memory[name]
        print(
            f"| {name} | {p50 * 1000:.1f} | {p95 * 1000:.1f} | {p50 / base[0]:.2f} | {p95 / base[1]:.2f} "
            f"| {rss / 1024:,.0f} MiB | {'yes' if loaded_torch else 'no'} |"
        )
    print(f"\nCosine between the runtimes' vectors of a question: min {min(cosines):.7f}, mean {np.mean(cosines):.7f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
