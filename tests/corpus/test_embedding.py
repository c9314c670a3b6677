"""The embedder (apps/corpus/embedding.py) and the one vector size (apps/corpus/vectors.py)."""

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.corpus.embedding import Embedder, get_embedder
from apps.corpus.vectors import EMBEDDING_DIMS


def test_the_model_makes_vectors_of_the_platforms_size():
    embedder = get_embedder()
    assert embedder.dimensions == EMBEDDING_DIMS
    vectors = embedder.encode(["Employees book economy class for flights under six hours."])
    assert vectors.shape == (1, EMBEDDING_DIMS) and vectors.dtype == np.float32
    assert abs(float((vectors[0] ** 2).sum()) - 1) < 1e-3
    assert embedder.encode([]).shape == (0, EMBEDDING_DIMS)


def test_a_model_of_another_size_is_refused_when_it_loads(monkeypatch, tmp_path):
    import sentence_transformers

    class OtherSize:
        def __init__(self, path, **kwargs):
            self.max_seq_length = 512

        def get_embedding_dimension(self):
            return 768

        get_sentence_embedding_dimension = get_embedding_dimension

        def encode(self, texts, **kwargs):  # never reached
            return np.zeros((len(texts), 768), dtype=np.float32)

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", OtherSize)
    embedder = Embedder(str(tmp_path / "all-mpnet-base-v2"))
    with pytest.raises(
        ImproperlyConfigured,
        match=rf"all-mpnet-base-v2 makes 768-dimensional vectors; .* {EMBEDDING_DIMS} \(EMBEDDING_DIMS",
    ):
        embedder.encode(["a text"])
    with pytest.raises(ImproperlyConfigured):
        embedder.dimensions  # noqa: B018 (still refused: nothing half-loaded is kept)


def test_each_serving_process_embeds_with_its_share_of_the_cores(monkeypatch, settings):
    from apps.corpus import embedding

    monkeypatch.setattr(embedding.os, "cpu_count", lambda: 2)
    monkeypatch.delenv("SERVING_PROCESSES", raising=False)
    settings.EMBEDDING = {**settings.EMBEDDING, "THREADS": 0}
    assert embedding.intra_op_threads() == 2  # a lone process (a command, a test) takes every core
    monkeypatch.setenv("SERVING_PROCESSES", "3")
    assert embedding.intra_op_threads() == 1  # three workers on two cores: one thread each, not six
    monkeypatch.setenv("SERVING_PROCESSES", "1")
    settings.EMBEDDING = {**settings.EMBEDDING, "THREADS": 4}
    assert embedding.intra_op_threads() == 4  # EMBEDDING_THREADS, when set, decides


def test_gunicorn_and_the_celery_worker_tell_their_processes_how_many_share_the_cores(monkeypatch, tmp_path):
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path
    from types import SimpleNamespace

    from knowledge_platform.celery import share_cores

    monkeypatch.delenv("SERVING_PROCESSES", raising=False)
    share_cores(sender=SimpleNamespace(concurrency=2))
    assert __import__("os").environ["SERVING_PROCESSES"] == "2"

    # The production server's own config file, with a probe app that reports what its worker got.
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "probe.py").write_text(
        "import os\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [os.environ.get('SERVING_PROCESSES', 'unset').encode()]\n"
    )
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = {k: v for k, v in __import__("os").environ.items() if k != "SERVING_PROCESSES"}
    env["PYTHONPATH"] = str(tmp_path)
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", str(root / "gunicorn.conf.py"), "--workers", "3",
         "--bind", f"127.0.0.1:{port}", "probe:app"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        assert body == "3"
    finally:
        server.terminate()
        server.wait(timeout=30)
