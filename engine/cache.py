"""The local SQLite cache of one vault: the dedup index, verified catalog pages, backup file stats.

Everything here can be deleted at any time and is rebuilt from the backend (the source of truth):
the blob index by walking the catalog of the head commit, pages by fetching them again. The local
disk is trusted (CRYPTO.md §5.4), but what comes out of the cache is still checked where it is
cheap: page bytes are re-verified against their keyed id by the caller.

Only blobs whose object is durable on the backend enter the index (never blobs of an open pack),
so a dedup hit can never point at an object that was not written. A row is *provisional* until a
commit references its object: an upload that was never committed may vanish (a lost server
buffer, garbage collection), so :mod:`.index` checks such rows against the backend before reuse.

Queries are small and indexed; they run on the calling thread (microseconds each).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from .errors import LocalIOError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (
    id BLOB PRIMARY KEY, e INTEGER NOT NULL, k INTEGER NOT NULL, o TEXT NOT NULL,
    off INTEGER NOT NULL, len INTEGER NOT NULL, ol INTEGER NOT NULL,
    committed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS blobs_by_object ON blobs(o);
CREATE TABLE IF NOT EXISTS pages (id BLOB PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ino INTEGER NOT NULL
);
"""

BlobRow = tuple[int, int, str, int, int, int, bool]  # e, k, o, off, len, ol, committed


class Cache:
    """One vault's cache database. Safe to use from several processes (WAL, busy timeout)."""

    def __init__(self, path: Path | None) -> None:
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                self._db = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            else:
                self._db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise LocalIOError(f"cannot open the local cache at {path}: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    # --- meta ---------------------------------------------------------------------------

    def get_meta(self, key: str, default: int = -1) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return int(row[0]) if row else default

    def set_meta(self, key: str, value: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # --- dedup index --------------------------------------------------------------------

    def find_blob(self, blob_id: bytes) -> BlobRow | None:
        row = self._db.execute("SELECT e, k, o, off, len, ol, committed FROM blobs WHERE id=?", (blob_id,)).fetchone()
        if row is None:
            return None
        return int(row[0]), int(row[1]), str(row[2]), int(row[3]), int(row[4]), int(row[5]), bool(row[6])

    def add_blobs(self, rows: Iterable[tuple[bytes, int, int, str, int, int, int]], committed: bool = False) -> None:
        flag = int(committed)
        with self._tx():
            self._db.executemany(
                "INSERT INTO blobs(id, e, k, o, off, len, ol, committed) VALUES (?,?,?,?,?,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET committed = max(committed, excluded.committed)",
                ((*r, flag) for r in rows))

    def mark_committed(self, objects: Iterable[str]) -> None:
        with self._tx():
            self._db.executemany("UPDATE blobs SET committed=1 WHERE o=?", ((o,) for o in objects))

    def forget_blob(self, blob_id: bytes) -> None:
        self._db.execute("DELETE FROM blobs WHERE id=?", (blob_id,))

    # --- verified pages -----------------------------------------------------------------

    def get_page(self, page_id: bytes) -> bytes | None:
        row = self._db.execute("SELECT data FROM pages WHERE id=?", (page_id,)).fetchone()
        return None if row is None else bytes(row[0])

    def put_page(self, page_id: bytes, data: bytes) -> None:
        self._db.execute("INSERT OR IGNORE INTO pages(id, data) VALUES (?, ?)", (page_id, data))

    # --- backup: stats of files already imported ----------------------------------------

    def file_stat(self, path: bytes) -> tuple[int, int, int] | None:
        row = self._db.execute("SELECT size, mtime_ns, ino FROM files WHERE path=?", (path,)).fetchone()
        return None if row is None else (int(row[0]), int(row[1]), int(row[2]))

    def set_file_stats(self, rows: Iterable[tuple[bytes, int, int, int]]) -> None:
        with self._tx():
            self._db.executemany("INSERT OR REPLACE INTO files(path, size, mtime_ns, ino) VALUES (?,?,?,?)", rows)

    def _tx(self) -> _Tx:
        return _Tx(self._db)


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
