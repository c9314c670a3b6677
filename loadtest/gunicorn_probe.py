"""A gunicorn config file for measurements only (loadtest/throughput.py --torch-threads N): after
a worker has loaded the application it loads the embedding model (apps.corpus.embedding sets torch
to one intra-op thread per core when it loads) and then sets torch to KP_PROBE_TORCH_THREADS
threads. It changes nothing in the application; the production image does not use it."""

from __future__ import annotations

import os


def post_worker_init(worker) -> None:
    import torch

    from apps.corpus.embedding import get_embedder

    get_embedder().model  # noqa: B018 (loads the model, which sets the platform's thread count)
    torch.set_num_threads(int(os.environ["KP_PROBE_TORCH_THREADS"]))
    worker.log.info("probe: torch intra-op threads %s", torch.get_num_threads())
