"""The embedded backend: SQLite FTS5 for BM25 and NumPy for exact cosine, in one local file.

For the default profile, development and small installs: fit up to about 100k chunks (a query
then scans a 100k × 384 float32 matrix, ~150 MB in memory, in tens of milliseconds). Keyword
analysis is the shared Python English analysis (analysis.py), stored pre-analysed in FTS5.

Each tenant has an FTS5 table of its own, `fts_t<tenant id>`: FTS5's BM25 statistics (row count,
average column lengths, document frequencies) are per table, so one tenant's writes never move
another tenant's scores (docs/search.md, "Tenant-isolated scoring"). Only searchable chunks are
stored, so drafts never move them either. Cosine is exact, so dense scores depend on nothing else.
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
from ..types import Candidate, ChunkRef, IndexedChunk, Mode, SearchQuery
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
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', '0');
INSERT OR IGNORE INTO meta (key, value) VALUES ('built', '0');
"""


def fts_table(tenant_id: int) -> str:
    """The tenant's FTS5 table. The name is built from an int, never from text."""
    return f"fts_t{int(tenant_id)}"


def _ensure_fts(db: sqlite3.Connection, tenant_id: int) -> str:
    table = fts_table(tenant_id)
    db.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING fts5(title, body, tokenize = 'unicode61')")
    return table


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None


def _upgrade(db: sqlite3.Connection) -> None:
    """A file of the layout before per-tenant tables (one `chunks_fts` for every tenant, drafts
    stored): move each tenant's searchable chunks into its own table, drop the rest. The text is
    still in `chunks`, so nothing needs the database."""
    if not _has_table(db, "chunks_fts"):
        return
    db.execute("BEGIN IMMEDIATE")  # one process upgrades; the others wait, then find it done
    if not _has_table(db, "chunks_fts"):
        db.rollback()
        return
    unpublished = [r[0] for r in db.execute("SELECT rowid FROM chunks WHERE published = 0")]
    for rowid in unpublished:
        db.execute("DELETE FROM chunk_principals WHERE chunk_rowid = ?", (rowid,))
        db.execute("DELETE FROM chunks WHERE rowid = ?", (rowid,))
    for rowid, tenant_id, title, text in db.execute("SELECT rowid, tenant_id, title, text FROM chunks").fetchall():
        db.execute(
            f"INSERT INTO {_ensure_fts(db, tenant_id)} (rowid, title, body) VALUES (?, ?, ?)",
            (rowid, analyzed_text(title), analyzed_text(text)),
        )
    db.execute("DROP TABLE chunks_fts")
    db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")


TITLE_WEIGHT = 0.5  # title matches count half as much as body matches (as in the Elasticsearch backend)


class EmbeddedBackend(SearchBackend):
    name = "embedded"

    def __init__(self, config: dict):
        self.path = Path(config["PATH"])
        self._lock = threading.Lock()
        self._matrix: tuple[int, np.ndarray, np.ndarray] | None = None  # generation, rowids, vectors
        self._local = threading.local()  # this thread's connection, and the file it opened

    # ---------------------------------------------------------------- plumbing
    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, kept open: SQLite parses the whole schema on a connection's
        first statement, and each tenant adds an FTS5 table and its shadow tables (~0.25 ms per
        tenant). Reopened when the file was replaced (a rebuild) or removed (drop); the schema is
        created, and a file of the layout before upgraded, once per connection."""
        cached = getattr(self._local, "db", None)
        try:
            current = self.path.stat().st_ino
        except FileNotFoundError:
            current = None
        if cached is not None and cached[1] == current:
            return cached[0]
        if cached is not None:
            cached[0].close()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=OFF")
            db.executescript(SCHEMA)
            _upgrade(db)
            db.commit()
        except (OSError, sqlite3.Error) as exc:
            raise SearchBackendError(f"SQLite at {self.path} cannot be opened: {exc}") from exc
        self._local.db = (db, self.path.stat().st_ino)
        self._local.fts = set()
        return db

    def _has_fts(self, db: sqlite3.Connection, tenant_id: int) -> bool:
        """Does the tenant's FTS5 table exist? Known tables are remembered per connection (a look-up
        in sqlite_master scans it: milliseconds with thousands of tenants); tables are never dropped
        but with the whole file, which opens a new connection."""
        known = self._local.__dict__.setdefault("fts", set())
        if tenant_id not in known and _has_table(db, fts_table(tenant_id)):
            known.add(tenant_id)
        return tenant_id in known

    @contextmanager
    def _db(self):
        db = self._connection()
        try:
            yield db
            db.commit()
        except sqlite3.Error as exc:
            db.rollback()
            raise SearchBackendError(f"SQLite at {self.path}: {exc}") from exc

    def close(self) -> None:
        cached = getattr(self._local, "db", None)
        if cached is not None:
            cached[0].close()
            self._local.db = None

    def ensure_index(self, tenant_id: int | None = None) -> None:
        with self._db() as db:  # the schema comes with the connection
            if tenant_id is not None:
                _ensure_fts(db, tenant_id)

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
    def _bump(db: sqlite3.Connection, tenant_ids: Iterable[int]) -> None:
        """Count a write: the file's generation (the cached vector matrix follows it) and each written
        tenant's own (what an audit record names as the index generation, so that another tenant's
        writes never show in it)."""
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
        for tenant_id in sorted(set(tenant_ids)):
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, '1')"
                " ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
                (f"generation:t{int(tenant_id)}",),
            )

    # ---------------------------------------------------------------- writes
    def index_chunks(self, chunks: Sequence[IndexedChunk]) -> None:
        if not chunks:
            return
        self.ensure_index()
        with self._db() as db:
            self._write(db, chunks)
            self._bump(db, (c.tenant_id for c in chunks))

    @staticmethod
    def _write(db: sqlite3.Connection, chunks: Iterable[IndexedChunk]) -> None:
        for chunk in chunks:
            row = db.execute("SELECT rowid, tenant_id FROM chunks WHERE chunk_id = ?", (chunk.chunk_id,)).fetchone()
            if row is not None:
                EmbeddedBackend._delete_row(db, *row)
            if not chunk.published:  # only what some query may find is stored: drafts never count
                continue
            rowid = db.execute(
                "INSERT INTO chunks (chunk_id, tenant_id, collection_id, document_id, version_id, published, title,"
                " text, category, tags, effective_date, vector, fingerprint) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    chunk.chunk_id,
                    chunk.tenant_id,
                    chunk.collection_id,
                    chunk.document_id,
                    chunk.version_id,
                    int(chunk.published),
                    chunk.title,
                    chunk.text,
                    chunk.category,
                    json.dumps(list(chunk.tags)),
                    chunk.effective_date.isoformat() if chunk.effective_date else None,
                    np.asarray(chunk.vector, dtype=np.float32).tobytes(),
                    chunk.fingerprint(),
                ),
            ).lastrowid
            db.execute(
                f"INSERT INTO {_ensure_fts(db, chunk.tenant_id)} (rowid, title, body) VALUES (?, ?, ?)",
                (rowid, analyzed_text(chunk.title), analyzed_text(chunk.text)),
            )
            db.executemany(
                "INSERT OR IGNORE INTO chunk_principals (principal, chunk_rowid) VALUES (?, ?)",
                [(p, rowid) for p in chunk.principals],
            )

    @staticmethod
    def _delete_row(db: sqlite3.Connection, rowid: int, tenant_id: int) -> None:
        # FTS5 removes a row's tokens from its statistics exactly: the tenant's scores are as if
        # the chunk had never been written.
        db.execute(f"DELETE FROM {fts_table(tenant_id)} WHERE rowid = ?", (rowid,))  # a stored row's table exists
        db.execute("DELETE FROM chunk_principals WHERE chunk_rowid = ?", (rowid,))
        db.execute("DELETE FROM chunks WHERE rowid = ?", (rowid,))

    def delete_chunks(self, refs: Sequence[ChunkRef]) -> None:
        if not refs:
            return
        self.ensure_index()
        with self._db() as db:
            for ref in refs:
                row = db.execute("SELECT rowid, tenant_id FROM chunks WHERE chunk_id = ?", (ref.chunk_id,)).fetchone()
                if row is not None:
                    self._delete_row(db, *row)
            self._bump(db, (r.tenant_id for r in refs))

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
                if not chunk.published:
                    continue
                batch.append(chunk)
                if len(batch) == 500:
                    self._write(db, batch)
                    count += len(batch)
                    batch = []
            self._write(db, batch)
            count += len(batch)
            db.execute("UPDATE meta SET value = ? WHERE key IN ('generation', 'built')", (str(time.time_ns()),))
            db.commit()
        finally:
            db.close()
        self.close()  # this thread's connection is to the file about to be replaced
        for suffix in ("-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)
        os.replace(fresh, self.path)
        return RebuildReport(index=str(self.path), chunks=count, seconds=round(time.perf_counter() - started, 2))

    def drop(self) -> None:
        self.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)
        self._matrix = None

    def fingerprints(self) -> dict[str, tuple[int, str]]:
        self.ensure_index()
        with self._db() as db:
            return {
                cid: (tenant, fp)
                for cid, tenant, fp in db.execute("SELECT chunk_id, tenant_id, fingerprint FROM chunks")
            }

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
        for column, values in (
            ("collection_id", f.collection_ids),
            ("category", f.categories),
            ("document_id", f.document_ids),
        ):
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
            stamps = dict(
                db.execute(
                    "SELECT key, value FROM meta WHERE key IN ('built', ?)", (f"generation:t{int(query.tenant_id)}",)
                )
            )
        # Which build of the file, and how many writes of this tenant's: another tenant's never count.
        tenant = int(query.tenant_id)
        index = f"{self.path.name}@{stamps.get('built', '0')}.t{tenant}.{stamps.get(f'generation:t{tenant}', '0')}"
        return [replace(c, index=index) for c in bm25], [replace(c, index=index) for c in dense]

    _COLUMNS = "c.chunk_id, c.document_id, c.version_id, c.collection_id, c.title, c.text"

    def _bm25(self, db, query: SearchQuery, where: str, params: list, size: int) -> list[Candidate]:
        terms = sorted(set(analyze(query.text)))
        if not terms:
            return []
        # Only quoted analysed tokens reach FTS5: no query syntax from the user does.
        table = fts_table(query.tenant_id)
        if not self._has_fts(db, query.tenant_id):  # the tenant has nothing searchable yet
            return []
        match = " OR ".join(f'"{term}"' for term in terms)
        rows = db.execute(
            f"SELECT {self._COLUMNS}, -bm25({table}, ?, 1.0) AS score FROM {table}"
            f" JOIN chunks c ON c.rowid = {table}.rowid WHERE {table} MATCH ? AND {where}"
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
                matrix = (
                    np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
                    if rows
                    else np.zeros((0, 0), np.float32)
                )
                self._matrix = (generation, rowids, matrix)
            return self._matrix[1], self._matrix[2]

    def _dense(self, db, query: SearchQuery, where: str, params: list, size: int) -> list[Candidate]:
        allowed = np.fromiter(
            (r[0] for r in db.execute(f"SELECT c.rowid FROM chunks c WHERE {where}", params)), dtype=np.int64
        )
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
        rows = {
            r[0]: r
            for r in db.execute(
                f"SELECT c.rowid, {self._COLUMNS} FROM chunks c WHERE c.rowid IN ({marks})", list(chosen)
            )
        }
        ordered = sorted(chosen.items(), key=lambda item: (-item[1], rows[item[0]][1]))
        return [
            Candidate(rows[rid][1], rows[rid][2], rows[rid][3], rows[rid][4], score, rows[rid][5], rows[rid][6])
            for rid, score in ordered
        ]
