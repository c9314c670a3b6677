"""The embedded backend: SQLite FTS5 for BM25 and NumPy for exact cosine, in one local file.
Fit for development and small installs (about 100k chunks)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .base import SearchBackend, SearchBackendError


class EmbeddedBackend(SearchBackend):
    name = "embedded"

    def __init__(self, config: dict):
        self.path = Path(config["PATH"])

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return sqlite3.connect(self.path, timeout=5)

    def health(self) -> str:
        try:
            with self._connect() as db:
                # FTS5 is a compile-time option of SQLite: prove it is there, not assume it.
                db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.fts5_probe USING fts5(body)")
                version = db.execute("SELECT sqlite_version()").fetchone()[0]
        except sqlite3.Error as exc:
            raise SearchBackendError(f"SQLite at {self.path}: {exc}") from exc
        return f"SQLite {version} with FTS5 at {self.path}"
