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
