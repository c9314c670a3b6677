"""The embedded backend: SQLite FTS5 for BM25 and NumPy for exact cosine, in one local file.

For the default profile, development and small installs: fit up to about 100k chunks (a query
then scans a 100k × 384 float32 matrix, ~150 MB in memory, in tens of milliseconds). Keyword
analysis is the shared Python English analysis (analysis.py), stored pre-analysed in FTS5.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..analysis import analyze, analyzed_text
from ..types import Candidate, ChunkRef, ChunkUpdate, IndexedChunk, Mode, SearchQuery
from .base import RebuildReport, SearchBackend, SearchBackendError

SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY,
    chunk_id TEXT NOT NULL UNIQUE,
    tenant_id INTEGER NOT NULL,
    collection_id INTEGER NOT NULL,
    document_id INTEGER NOT NULL,
    version_id INTEGER NOT NULL,
    published INTEGER NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    category TEXT NOT NULL,
    tags TEXT NOT NULL,
    effective_date TEXT,
    vector BLOB NOT NULL,
    fingerprint TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_tenant ON chunks (tenant_id, published);
CREATE TABLE IF NOT EXISTS chunk_principals (
    principal TEXT NOT NULL,
    chunk_rowid INTEGER NOT NULL,
    PRIMARY KEY (principal, chunk_rowid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunk_principals_rowid ON chunk_principals (chunk_rowid);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(title, body, tokenize = 'unicode61');
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', '0');
"""

TITLE_WEIGHT = 0.5  # title matches count half as much as body matches (as in the Elasticsearch backend)


class EmbeddedBackend(SearchBackend):
    name = "embedded"

    def __init__(self, config: dict):
        self.path = Path(config["PATH"])
        self._lock = threading.Lock()
        self._matrix: tuple[int, np.ndarray, np.ndarray] | None = None  # generation, rowids, vectors

    # ---------------------------------------------------------------- plumbing
    @contextmanager
    def _db(self):
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30)
        except (OSError, sqlite3.Error) as exc:
            raise SearchBackendError(f"SQLite at {self.path} cannot be opened: {exc}") from exc
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=OFF")
            yield db
            db.commit()
        except sqlite3.Error as exc:
            db.rollback()
            raise SearchBackendError(f"SQLite at {self.path}: {exc}") from exc
        finally:
            db.close()

    def ensure_index(self) -> None:
        with self._db() as db:
            db.executescript(SCHEMA)

    def health(self) -> str:
        try:
            with self._db() as db:
                # FTS5 is a compile-time option of SQLite: prove it is there, not assume it.
                db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.fts5_probe USING fts5(body)")
                version = db.execute("SELECT sqlite_version()").fetchone()[0]
        except sqlite3.Error as exc:
            raise SearchBackendError(f"SQLite at {self.path}: {exc}") from exc
        return f"SQLite {version} with FTS5 at {self.path}"

    @staticmethod
    def _bump(db: sqlite3.Connection) -> None:
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")

    # ---------------------------------------------------------------- writes
    def index_chunks(self, chunks: Sequence[IndexedChunk]) -> None:
        if not chunks:
            return
        self.ensure_index()
        with self._db() as db:
            self._write(db, chunks)
            self._bump(db)

    @staticmethod
    def _write(db: sqlite3.Connection, chunks: Iterable[IndexedChunk]) -> None:
        for chunk in chunks:
            row = db.execute("SELECT rowid FROM chunks WHERE chunk_id = ?", (chunk.chunk_id,)).fetchone()
            values = (
                chunk.chunk_id, chunk.tenant_id, chunk.collection_id, chunk.document_id, chunk.version_id,
                int(chunk.published), chunk.title, chunk.text, chunk.category, json.dumps(list(chunk.tags)),
                chunk.effective_date.isoformat() if chunk.effective_date else None,
                np.asarray(chunk.vector, dtype=np.float32).tobytes(), chunk.fingerprint(),
            )
            if row is None:
                rowid = db.execute(
                    "INSERT INTO chunks (chunk_id, tenant_id, collection_id, document_id, version_id, published, title,"
                    " text, category, tags, effective_date, vector, fingerprint) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    values,
                ).lastrowid
            else:
                rowid = row[0]
                db.execute(
                    "UPDATE chunks SET chunk_id=?, tenant_id=?, collection_id=?, document_id=?, version_id=?, published=?,"
                    " title=?, text=?, category=?, tags=?, effective_date=?, vector=?, fingerprint=? WHERE rowid=?",
                    (*values, rowid),
                )
                db.execute("DELETE FROM chunks_fts WHERE rowid = ?", (rowid,))
                db.execute("DELETE FROM chunk_principals WHERE chunk_rowid = ?", (rowid,))
            db.execute(
                "INSERT INTO chunks_fts (rowid, title, body) VALUES (?, ?, ?)",
                (rowid, analyzed_text(chunk.title), analyzed_text(chunk.text)),
            )
            db.executemany(
                "INSERT OR IGNORE INTO chunk_principals (principal, chunk_rowid) VALUES (?, ?)",
                [(p, rowid) for p in chunk.principals],
            )

    def update_chunks(self, updates: Sequence[ChunkUpdate]) -> None:
        if not updates:
            return
        self.ensure_index()
        with self._db() as db:
            for update in updates:
                row = db.execute("SELECT rowid, title FROM chunks WHERE chunk_id = ?", (update.chunk_id,)).fetchone()
                if row is None:
                    continue
                rowid, old_title = row
                db.execute(
                    "UPDATE chunks SET published=?, title=?, category=?, tags=?, effective_date=?, collection_id=?,"
                    " fingerprint=? WHERE rowid=?",
                    (int(update.published), update.title, update.category, json.dumps(list(update.tags)),
                     update.effective_date.isoformat() if update.effective_date else None, update.collection_id,
                     update.fingerprint, rowid),
                )
                db.execute("DELETE FROM chunk_principals WHERE chunk_rowid = ?", (rowid,))
                db.executemany(
                    "INSERT OR IGNORE INTO chunk_principals (principal, chunk_rowid) VALUES (?, ?)",
                    [(p, rowid) for p in update.principals],
                )
                if update.title != old_title:
                    db.execute("UPDATE chunks_fts SET title = ? WHERE rowid = ?", (analyzed_text(update.title), rowid))
            self._bump(db)

    def delete_chunks(self, refs: Sequence[ChunkRef]) -> None:
        if not refs:
            return
        self.ensure_index()
        with self._db() as db:
            for ref in refs:
                row = db.execute("SELECT rowid FROM chunks WHERE chunk_id = ?", (ref.chunk_id,)).fetchone()
                if row is None:
                    continue
                for table, column in (("chunks_fts", "rowid"), ("chunk_principals", "chunk_rowid"), ("chunks", "rowid")):
                    db.execute(f"DELETE FROM {table} WHERE {column} = ?", (row[0],))
            self._bump(db)

    def rebuild(self, chunks: Iterable[IndexedChunk]) -> RebuildReport:
        """Build a new file beside the old one, then swap it in with one atomic rename."""
        started = time.perf_counter()
        fresh = self.path.with_name(self.path.name + ".rebuild")
        fresh.unlink(missing_ok=True)
        count = 0
        db = sqlite3.connect(fresh)
        try:
            db.executescript(SCHEMA)
            batch: list[IndexedChunk] = []
            for chunk in chunks:
                batch.append(chunk)
                if len(batch) == 500:
                    self._write(db, batch)
                    count += len(batch)
                    batch = []
            self._write(db, batch)
            count += len(batch)
            db.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (str(time.time_ns()),))
            db.commit()
        finally:
            db.close()
        for suffix in ("-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)
        os.replace(fresh, self.path)
        return RebuildReport(index=str(self.path), chunks=count, seconds=round(time.perf_counter() - started, 2))

    def drop(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)
        self._matrix = None

    def fingerprints(self) -> dict[str, tuple[int, str]]:
        self.ensure_index()
        with self._db() as db:
            return {cid: (tenant, fp) for cid, tenant, fp in db.execute("SELECT chunk_id, tenant_id, fingerprint FROM chunks")}

    # ---------------------------------------------------------------- reads
    @staticmethod
    def _where(query: SearchQuery) -> tuple[str, list]:
        """The filters every query carries: tenant, published, principals, then metadata."""
        clauses = ["c.tenant_id = ?", "c.published = 1"]
        params: list = [query.tenant_id]
        marks = ",".join("?" * len(query.principals))
        clauses.append(f"c.rowid IN (SELECT chunk_rowid FROM chunk_principals WHERE principal IN ({marks}))")
        params += list(query.principals)
        f = query.filters
        for column, values in (("collection_id", f.collection_ids), ("category", f.categories), ("document_id", f.document_ids)):
            if values:
                clauses.append(f"c.{column} IN ({','.join('?' * len(values))})")
                params += list(values)
        if f.tags:
            clauses.append(f"EXISTS (SELECT 1 FROM json_each(c.tags) WHERE value IN ({','.join('?' * len(f.tags))}))")
            params += list(f.tags)
        if f.date_from:
            clauses.append("c.effective_date >= ?")
            params.append(f.date_from.isoformat())
        if f.date_to:
            clauses.append("c.effective_date <= ?")
            params.append(f.date_to.isoformat())
        return " AND ".join(clauses), params

    def _retrieve(self, query: SearchQuery, size: int) -> tuple[list[Candidate], list[Candidate]]:
        self.ensure_index()
        where, params = self._where(query)
        with self._db() as db:
            bm25 = self._bm25(db, query, where, params, size) if query.mode != Mode.DENSE else []
            dense = self._dense(db, query, where, params, size) if query.mode != Mode.BM25 else []
            generation = db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        index = f"{self.path.name}@{generation[0] if generation else 0}"  # the file's write generation
        return [replace(c, index=index) for c in bm25], [replace(c, index=index) for c in dense]

    _COLUMNS = "c.chunk_id, c.document_id, c.version_id, c.collection_id, c.title, c.text"

    def _bm25(self, db, query: SearchQuery, where: str, params: list, size: int) -> list[Candidate]:
        terms = sorted(set(analyze(query.text)))
        if not terms:
            return []
        # Only quoted analysed tokens reach FTS5: no query syntax from the user does.
        match = " OR ".join(f'"{term}"' for term in terms)
        rows = db.execute(
            f"SELECT {self._COLUMNS}, -bm25(chunks_fts, ?, 1.0) AS score FROM chunks_fts"
            f" JOIN chunks c ON c.rowid = chunks_fts.rowid WHERE chunks_fts MATCH ? AND {where}"
            " ORDER BY score DESC, c.chunk_id LIMIT ?",
            [TITLE_WEIGHT, match, *params, size],
        ).fetchall()
        return [Candidate(r[0], r[1], r[2], r[3], float(r[6]), r[4], r[5]) for r in rows]

    def _vectors(self, db) -> tuple[np.ndarray, np.ndarray]:
        """All vectors in one matrix, cached per process until the index changes."""
        generation = int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
        with self._lock:
            if self._matrix is None or self._matrix[0] != generation:
                rows = db.execute("SELECT rowid, vector FROM chunks ORDER BY rowid").fetchall()
                rowids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                matrix = np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows]) if rows else np.zeros((0, 0), np.float32)
                self._matrix = (generation, rowids, matrix)
            return self._matrix[1], self._matrix[2]

    def _dense(self, db, query: SearchQuery, where: str, params: list, size: int) -> list[Candidate]:
        allowed = np.fromiter((r[0] for r in db.execute(f"SELECT c.rowid FROM chunks c WHERE {where}", params)), dtype=np.int64)
        if allowed.size == 0:
            return []
        rowids, matrix = self._vectors(db)
        positions = np.searchsorted(rowids, allowed)
        positions = positions[(positions < rowids.size) & (rowids[np.minimum(positions, rowids.size - 1)] == allowed)]
        vector = np.asarray(query.vector, dtype=np.float32)
        scores = matrix[positions] @ (vector / (np.linalg.norm(vector) or 1.0))
        top = np.argsort(-scores, kind="stable")[:size]
        chosen = {int(rowids[positions[i]]): float(scores[i]) for i in top}
        marks = ",".join("?" * len(chosen))
        rows = {r[0]: r for r in db.execute(f"SELECT c.rowid, {self._COLUMNS} FROM chunks c WHERE c.rowid IN ({marks})", list(chosen))}
        ordered = sorted(chosen.items(), key=lambda item: (-item[1], rows[item[0]][1]))
        return [Candidate(rows[rid][1], rows[rid][2], rows[rid][3], rows[rid][4], score, rows[rid][5], rows[rid][6]) for rid, score in ordered]
