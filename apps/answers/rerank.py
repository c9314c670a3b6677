"""Re-ranking with a sentence-transformers CrossEncoder loaded from a configured local folder.
No folder configured: re-ranking is off, and a request for it is refused with a clear message.
Nothing is ever downloaded."""

from __future__ import annotations

import threading
from functools import lru_cache

from django.conf import settings


class Reranker:
    def __init__(self, model_path: str):
        from sentence_transformers import CrossEncoder

        self.model_path = model_path
        self.model = CrossEncoder(model_path, device="cpu", local_files_only=True)
        self._lock = threading.Lock()

    def score(self, query: str, texts: list[str]) -> list[float]:
        if not texts:
            return []
        with self._lock:
            scores = self.model.predict([(query, text) for text in texts], show_progress_bar=False)
        return [float(s) for s in scores]


@lru_cache(maxsize=2)
def _load(model_path: str) -> Reranker:
    return Reranker(model_path)


def get_reranker() -> Reranker | None:
    path = settings.ANSWERS["RERANK_MODEL_PATH"]
    return _load(path) if path else None
