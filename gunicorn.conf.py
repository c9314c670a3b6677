"""Hooks of the production server (the image's command names this file; its options are on that
command line). Sync workers: one request at a time each, the model loaded once per worker."""

import os


def on_starting(server):
    # Inherited by every worker forked after this: each embeds with its share of the cores
    # (apps/corpus/embedding.py, intra_op_threads), not all of them.
    os.environ.setdefault("SERVING_PROCESSES", str(server.cfg.workers))
