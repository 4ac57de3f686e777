"""The local SQLite cache of one vault: the dedup index, verified catalog pages, backup file stats.

Everything here can be deleted at any time and is rebuilt from the backend (the source of truth):
the blob index by walking the catalog of the head commit, pages by fetching them again. What
comes out of the cache is still checked where it is cheap: page bytes are re-verified against
their keyed id by the caller.

No plaintext name, size or content is stored (a thief of the disk, class L, learns nothing the
provider does not already see). Every value is sealed under ``K_lc = Expand(VAK, "local-cache")``
(:meth:`~.keystore.Unlocked.local_cache_key`), from which two keys are derived::

    K_seal = Expand(K_lc, "local-cache/seal")   value = nonce (12) ‖ AES-256-GCM-SIV(K_seal, nonce, plain, ad)
    K_name = Expand(K_lc, "local-cache/name")   path key = HMAC-SHA256(K_name, path)

The nonce is random; GCM-SIV keeps a repeated nonce harmless (it reveals only that two values are
equal). ``ad`` binds each value to its table and row key (page id; blob id and object name; path
key), so rows cannot be swapped. A value that does not open is dropped and reads as absent.
Columns in the clear: page ids and blob ids (keyed hashes, as on the provider), object names (as
on the provider), the "committed" flag and the meta counters (generations). A cache written
by an older version in the clear is wiped (tables dropped, file vacuumed) on first open.

Only blobs whose object is durable on the backend enter the index (never blobs of an open pack),
so a dedup hit can never point at an object that was not written. A row is *provisional* until a
commit references its object: an upload that was never committed may vanish (a lost server
buffer, garbage collection), so :mod:`.index` checks such rows against the backend before reuse.

SQLite never runs on the event loop. The cache owns one connection, opened, used and closed by
one worker thread (a single-thread executor); sealing and opening values run there too. Reads are
``async`` and hop to that thread. Writes are queued without waiting (``stored`` is called from the
write pipeline's callbacks) and committed in one transaction per batch: when enough rows are
queued, when the vault commits (:meth:`Cache.flush_soon`), on :meth:`Cache.flush`, before a read
that needs a queued row (the same blob, page, path or counter), and at close — so nothing queued
is lost except by a crash, which costs only a re-upload (the index is a cache). A batch that
SQLite refuses is logged and dropped, for the same reason.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
import struct
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from ..errors import LocalIOError, UsageError
from ..keys.secret import Secret
from .cacheseal import Sealer
from .idfilter import IdFilter

log = logging.getLogger(__name__)

T = TypeVar("T")

FORMAT = 2  # 1: values in the clear (before sealing)
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (
    id BLOB PRIMARY KEY, o TEXT NOT NULL, v BLOB NOT NULL, committed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS blobs_by_object ON blobs(o);
CREATE TABLE IF NOT EXISTS pages (id BLOB PRIMARY KEY, v BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS files (path BLOB PRIMARY KEY, v BLOB NOT NULL);
"""
_OLD_TABLES = ("meta", "blobs", "pages", "files")
_BLOB = struct.Struct(">IBQQQ")  # epoch, kind, off, len, ol
_BLOB_Z = struct.Struct(">IBQQQQ")  # the same and zlen: a compressed pack member (rows of others stay as they were)
_STAT = struct.Struct(">QqQ")  # size, mtime_ns, ino

BlobRow = tuple[int, int, str, int, int, int, bool, int]  # e, k, o, off, len, ol, committed, zlen (0: none)
#: what the index adds: id, e, k, o, off, len, ol, zlen (0: stored as is)
NewBlob = tuple[bytes, int, int, str, int, int, int, int]
BATCH = 1024  # queued rows that start a commit in the background

_Write = Callable[[sqlite3.Connection], object]  # what it returns is ignored
_Key = tuple[str, object]  # (table, row key) a queued write touches
_ALL_BLOBS: _Key = ("blob", None)  # a queued write that may change any blob row (mark_committed)


_ADD_BLOB = ("INSERT INTO blobs(id, o, v, committed) VALUES (?,?,?,?) "
             "ON CONFLICT(id) DO UPDATE SET committed = max(committed, excluded.committed)")
_MOVE_BLOB = ("INSERT INTO blobs(id, o, v, committed) VALUES (?,?,?,?) "
              "ON CONFLICT(id) DO UPDATE SET o = excluded.o, v = excluded.v, committed = excluded.committed")


class Cache:
    """One vault's cache database. Safe to use from several processes (WAL, busy timeout).

    ``key`` is the vault's local-cache key; without one (an in-memory cache) a random key is used.
    The connection lives on one worker thread: construct with ``await Cache.open(...)`` on the
    event loop (the constructor waits for the database to open). Raises LocalIOError if it cannot.
    Reads raise UsageError once the cache is closed (writes are then dropped). Cancelling a read
    abandons its answer; the query itself still runs to its end on the worker.
    """

    def __init__(self, path: Path | None, key: Secret | None = None) -> None:
        self._start(path, key)
        try:
            self._opened.result()
        except BaseException:
            self._pool.shutdown(wait=False)
            raise

    @classmethod
    async def open(cls, path: Path | None, key: Secret | None = None) -> Cache:
        """The cache at ``path``, opened without blocking the event loop. Raises LocalIOError."""
        cache = cls.__new__(cls)
        cache._start(path, key)
        try:
            await asyncio.wrap_future(cache._opened)
        except BaseException:
            cache._pool.shutdown(wait=False)
            raise
        return cache

    def _start(self, path: Path | None, key: Secret | None) -> None:
        self._s = Sealer(key)
        self._db: sqlite3.Connection | None = None  # the worker thread's alone
        self._lock = threading.Lock()  # guards the queue, shared by the callers and the worker
        self._queue: list[_Write] = []
        self._queued_rows = 0
        self._touched: set[_Key] = set()
        self._scheduled = self._closed = False
        self._ids: IdFilter | None = None  # the blob ids of the index, loaded on the first lookup
        self._ids_pending: list[bytes] | None = None  # ids added while the filter loads
        self._ids_lock = asyncio.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sigmavault-cache")
        self._opened: Future[None] = self._pool.submit(self._open, path)

    # --- on the worker thread -------------------------------------------------------------

    def _open(self, path: Path | None) -> None:
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                self._db = sqlite3.connect(str(path), timeout=30, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("PRAGMA secure_delete=ON")  # deleted rows are zeroed, not left in free pages
                self._upgrade(self._db)
            else:
                self._db = sqlite3.connect(":memory:", isolation_level=None)
            self._db.executescript(SCHEMA)
            self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('cache_format', ?)", (FORMAT,))
        except sqlite3.Error as exc:
            if self._db is not None:
                self._db.close()
                self._db = None
            raise LocalIOError(f"cannot open the local cache at {path}: {exc}") from exc

    @staticmethod
    def _upgrade(db: sqlite3.Connection) -> None:
        """Wipe a cache of another format (an old one held plaintext): drop, vacuum, truncate the WAL."""
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            return
        row = db.execute("SELECT value FROM meta WHERE key='cache_format'").fetchone() if "meta" in tables else None
        if row is not None and int(row[0]) == FORMAT:
            return
        with _Tx(db):
            for name in _OLD_TABLES:
                if name in tables:
                    db.execute(f"DROP TABLE {name}")
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise UsageError("the local cache is closed")
        return self._db

    def _drain(self) -> None:
        """Commit every queued write in one transaction (a refused batch is logged and dropped)."""
        with self._lock:
            batch, self._queue = self._queue, []
            rows, self._queued_rows = self._queued_rows, 0
            self._touched.clear()
            self._scheduled = False
        if not batch:
            return
        db = self._conn()
        try:
            with _Tx(db):
                for write in batch:
                    write(db)
        except sqlite3.Error as exc:
            log.warning("local cache: %d queued rows not stored (%s); they are rebuilt when needed", rows, exc)

    def _read(self, needs: tuple[_Key, ...], fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            stale = any(k in self._touched for k in needs)
        if stale:
            self._drain()
        return fn(self._conn())

    def _close(self) -> None:
        try:
            if self._db is not None:
                self._drain()
        finally:
            if self._db is not None:
                self._db.close()
                self._db = None

    # --- queueing ---------------------------------------------------------------------------

    def _enqueue(self, write: _Write, touches: Iterable[_Key], rows: int = 1) -> None:
        """Queue a write (never blocks); start a background commit once a batch is full."""
        with self._lock:
            if self._closed:
                log.debug("local cache closed: a write is dropped")
                return
            self._queue.append(write)
            self._queued_rows += rows
            self._touched.update(touches)
            start = self._queued_rows >= BATCH and not self._scheduled
            self._scheduled = self._scheduled or start
        if start:
            self._pool.submit(self._drain)

    def flush_soon(self) -> None:
        """Commit what is queued in the background (the vault just committed). Never blocks."""
        with self._lock:
            if self._closed or not self._queue or self._scheduled:
                return
            self._scheduled = True
        self._pool.submit(self._drain)

    async def flush(self) -> None:
        """Commit what is queued and wait until it is stored."""
        await self._call(lambda: self._drain())

    async def _call(self, fn: Callable[[], T]) -> T:
        if self._closed:
            raise UsageError("the local cache is closed")
        return await asyncio.wrap_future(self._pool.submit(fn))

    def close(self) -> None:
        """Commit what is queued, close the database and stop the worker (waits for both). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._pool.submit(self._close).result()
        finally:
            self._pool.shutdown(wait=True)

    async def aclose(self) -> None:
        """:meth:`close` without blocking the event loop."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            await asyncio.wrap_future(self._pool.submit(self._close))
        finally:  # its worker thread is gone when this returns (joined off the loop)
            await asyncio.to_thread(self._pool.shutdown, wait=True)

    # --- meta ---------------------------------------------------------------------------

    async def get_meta(self, key: str, default: int = -1) -> int:
        def read(db: sqlite3.Connection) -> int:
            row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            return int(row[0]) if row else default

        return await self._call(lambda: self._read((("meta", key),), read))

    def set_meta(self, key: str, value: int, *, only_if_set: bool = False) -> None:
        """Queue ``key = value``; with ``only_if_set``, only if the key holds a value >= 0 by then."""
        def write(db: sqlite3.Connection) -> None:
            if only_if_set:
                db.execute("UPDATE meta SET value=? WHERE key=? AND value >= 0", (value, key))
            else:
                db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

        self._enqueue(write, [("meta", key)])

    # --- dedup index --------------------------------------------------------------------

    async def find_blob(self, blob_id: bytes) -> BlobRow | None:
        if not await self._may_hold(blob_id):
            return None  # most lookups of a write are new blobs: answered without a thread hop

        def read(db: sqlite3.Connection) -> BlobRow | None:
            row = db.execute("SELECT o, v, committed FROM blobs WHERE id=?", (blob_id,)).fetchone()
            if row is None:
                return None
            o = str(row[0])
            plain = self._s.open(bytes(row[1]), b"blob\0" + blob_id + o.encode())
            if plain is None or len(plain) not in (_BLOB.size, _BLOB_Z.size):
                db.execute("DELETE FROM blobs WHERE id=?", (blob_id,))
                return None
            e, k, off, length, ol, *z = (_BLOB if len(plain) == _BLOB.size else _BLOB_Z).unpack(plain)
            return e, k, o, off, length, ol, bool(row[2]), z[0] if z else 0

        return await self._call(lambda: self._read((("blob", blob_id), _ALL_BLOBS), read))

    def add_blobs(self, rows: Iterable[NewBlob], committed: bool = False, move: bool = False) -> None:
        """Rows of blobs; a blob known already keeps its place (and becomes committed if this says
        so), unless ``move``: then the row names the new place, with the new committed flag."""
        items = list(rows)
        if not items:
            return
        flag = int(committed)
        seal = self._s.seal
        sql = _MOVE_BLOB if move else _ADD_BLOB

        def write(db: sqlite3.Connection) -> None:
            db.executemany(
                sql,
                ((i, o, seal(_BLOB_Z.pack(e, k, off, n, ol, z) if z else _BLOB.pack(e, k, off, n, ol),
                             b"blob\0" + i + o.encode()), flag)
                 for i, e, k, o, off, n, ol, z in items))

        self._enqueue(write, [("blob", r[0]) for r in items], len(items))
        if self._ids is not None:
            self._ids.update(r[0] for r in items)
        elif self._ids_pending is not None:
            self._ids_pending.extend(r[0] for r in items)

    async def _may_hold(self, blob_id: bytes) -> bool:
        """False if the index certainly holds no row for ``blob_id`` (a Bloom filter of its ids, kept
        in memory from the first lookup on; rows another process adds later are missed: their blobs
        are stored again, which is always correct)."""
        if self._ids is None:
            async with self._ids_lock:
                if self._ids is None:
                    self._ids_pending = []
                    try:
                        ids = await self._call(self._load_ids)
                        ids.update(self._ids_pending)
                        self._ids = ids
                    finally:
                        self._ids_pending = None
        return blob_id in self._ids

    def _load_ids(self) -> IdFilter:
        """The ids in the table and in the queue of writes (read without committing the queue)."""
        with self._lock:
            queued = [k[1] for k in self._touched if k[0] == "blob" and isinstance(k[1], bytes)]
        db = self._conn()
        (count,) = db.execute("SELECT count(*) FROM blobs").fetchone()
        rows = (bytes(r[0]) for r in db.execute("SELECT id FROM blobs"))
        return IdFilter(itertools.chain(queued, rows), capacity=int(count) + len(queued))

    def mark_committed(self, objects: Iterable[str]) -> None:
        names = list(objects)
        if names:
            self._enqueue(lambda db: db.executemany("UPDATE blobs SET committed=1 WHERE o=?", ((o,) for o in names)),
                          [_ALL_BLOBS], len(names))

    def mark_all_provisional(self) -> None:
        """Every blob row is looked up in the store again before it is reused (a prune deleted objects)."""
        self._enqueue(lambda db: db.execute("UPDATE blobs SET committed=0"), [_ALL_BLOBS])

    def forget_provisional(self) -> None:
        """Drop every row no commit (or drop record) made final: a write-only client's interrupted
        run, whose objects are sealed under a key nobody holds any more."""
        self._enqueue(lambda db: db.execute("DELETE FROM blobs WHERE committed=0"), [_ALL_BLOBS])

    def forget_blob(self, blob_id: bytes) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM blobs WHERE id=?", (blob_id,))

        self._enqueue(write, [("blob", blob_id)])

    # --- verified pages -----------------------------------------------------------------

    async def get_page(self, page_id: bytes) -> bytes | None:
        def read(db: sqlite3.Connection) -> bytes | None:
            row = db.execute("SELECT v FROM pages WHERE id=?", (page_id,)).fetchone()
            if row is None:
                return None
            plain = self._s.open(bytes(row[0]), b"page\0" + page_id)
            if plain is None:
                db.execute("DELETE FROM pages WHERE id=?", (page_id,))
            return plain

        return await self._call(lambda: self._read((("page", page_id),), read))

    def put_page(self, page_id: bytes, data: bytes) -> None:
        data = bytes(data)

        def write(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR IGNORE INTO pages(id, v) VALUES (?, ?)",
                       (page_id, self._s.seal(data, b"page\0" + page_id)))

        self._enqueue(write, [("page", page_id)])

    # --- backup: stats of files already imported (keyed by a keyed hash of the path) ----

    async def file_stats(self, paths: list[bytes], *, extra: bool = False) -> list[tuple[int, int, int] | bytes | None]:
        """(size, mtime_ns, ino) recorded for each of ``paths`` (None: none or unreadable), in one hop
        to the worker; with ``extra``, the bytes stored after them instead (the guard's signal)."""
        def read(db: sqlite3.Connection) -> list[tuple[int, int, int] | bytes | None]:
            out: list[tuple[int, int, int] | bytes | None] = []
            for path in paths:
                row = db.execute("SELECT v FROM files WHERE path=?", (name := self._s.name(path),)).fetchone()
                plain = None if row is None else self._s.open(bytes(row[0]), b"file\0" + name)
                if plain is None or len(plain) < _STAT.size:
                    out.append(None)
                else:
                    out.append(plain[_STAT.size:] if extra else _STAT.unpack_from(plain))
            return out

        return await self._call(lambda: self._read(tuple(("file", p) for p in paths), read))

    def set_file_stats(self, rows: Iterable[tuple[bytes, int, int, int] | tuple[bytes, int, int, int, bytes]]) -> None:
        """Rows of (path, size, mtime_ns, ino) and optionally extra bytes kept after them."""
        items = list(rows)
        if not items:
            return

        def sealed(path: bytes, size: int, mtime_ns: int, ino: int, more: bytes = b"") -> tuple[bytes, bytes]:
            name = self._s.name(path)
            return name, self._s.seal(_STAT.pack(size, mtime_ns, ino) + more, b"file\0" + name)

        def write(db: sqlite3.Connection) -> None:
            db.executemany("INSERT OR REPLACE INTO files(path, v) VALUES (?,?)", (sealed(*r) for r in items))

        self._enqueue(write, [("file", r[0]) for r in items], len(items))


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
