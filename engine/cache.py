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

Queries are small and indexed; they run on the calling thread (microseconds each; sealing a row
costs a few more).
"""

from __future__ import annotations

import hmac
import secrets
import sqlite3
import struct
from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV

from .errors import LocalIOError
from .keys import expand
from .secret import Secret

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
_STAT = struct.Struct(">QqQ")  # size, mtime_ns, ino
NONCE = 12

BlobRow = tuple[int, int, str, int, int, int, bool]  # e, k, o, off, len, ol, committed


class _Sealer:
    """Seals and opens cache values; keyed hashes of paths."""

    def __init__(self, key: Secret | None) -> None:
        base = key.reveal() if key is not None else secrets.token_bytes(32)  # no key: an in-memory cache
        self._aead = AESGCMSIV(expand(base, "local-cache/seal"))
        self._name = expand(base, "local-cache/name")

    def seal(self, plain: bytes, ad: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE)
        return nonce + self._aead.encrypt(nonce, plain, ad)

    def open(self, value: bytes, ad: bytes) -> bytes | None:
        if len(value) < NONCE + 16:
            return None
        try:
            return self._aead.decrypt(value[:NONCE], value[NONCE:], ad)
        except InvalidTag:
            return None

    def name(self, path: bytes) -> bytes:
        return hmac.digest(self._name, path, "sha256")


class Cache:
    """One vault's cache database. Safe to use from several processes (WAL, busy timeout).

    ``key`` is the vault's local-cache key; without one (an in-memory cache) a random key is used.
    """

    def __init__(self, path: Path | None, key: Secret | None = None) -> None:
        self._s = _Sealer(key)
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                self._db = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("PRAGMA secure_delete=ON")  # deleted rows are zeroed, not left in free pages
                self._upgrade()
            else:
                self._db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            self._db.executescript(SCHEMA)
            self.set_meta("cache_format", FORMAT)
        except sqlite3.Error as exc:
            raise LocalIOError(f"cannot open the local cache at {path}: {exc}") from exc

    def _upgrade(self) -> None:
        """Wipe a cache of another format (an old one held plaintext): drop, vacuum, truncate the WAL."""
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            return
        row = self._db.execute("SELECT value FROM meta WHERE key='cache_format'").fetchone() \
            if "meta" in tables else None
        if row is not None and int(row[0]) == FORMAT:
            return
        with self._tx():
            for name in _OLD_TABLES:
                if name in tables:
                    self._db.execute(f"DROP TABLE {name}")
        self._db.execute("VACUUM")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

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
        row = self._db.execute("SELECT o, v, committed FROM blobs WHERE id=?", (blob_id,)).fetchone()
        if row is None:
            return None
        o = str(row[0])
        plain = self._s.open(bytes(row[1]), b"blob\0" + blob_id + o.encode())
        if plain is None or len(plain) != _BLOB.size:
            self.forget_blob(blob_id)
            return None
        e, k, off, length, ol = _BLOB.unpack(plain)
        return e, k, o, off, length, ol, bool(row[2])

    def add_blobs(self, rows: Iterable[tuple[bytes, int, int, str, int, int, int]], committed: bool = False) -> None:
        flag = int(committed)
        seal = self._s.seal
        with self._tx():
            self._db.executemany(
                "INSERT INTO blobs(id, o, v, committed) VALUES (?,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET committed = max(committed, excluded.committed)",
                ((i, o, seal(_BLOB.pack(e, k, off, n, ol), b"blob\0" + i + o.encode()), flag)
                 for i, e, k, o, off, n, ol in rows))

    def mark_committed(self, objects: Iterable[str]) -> None:
        with self._tx():
            self._db.executemany("UPDATE blobs SET committed=1 WHERE o=?", ((o,) for o in objects))

    def forget_blob(self, blob_id: bytes) -> None:
        self._db.execute("DELETE FROM blobs WHERE id=?", (blob_id,))

    # --- verified pages -----------------------------------------------------------------

    def get_page(self, page_id: bytes) -> bytes | None:
        row = self._db.execute("SELECT v FROM pages WHERE id=?", (page_id,)).fetchone()
        if row is None:
            return None
        plain = self._s.open(bytes(row[0]), b"page\0" + page_id)
        if plain is None:
            self._db.execute("DELETE FROM pages WHERE id=?", (page_id,))
        return plain

    def put_page(self, page_id: bytes, data: bytes) -> None:
        self._db.execute("INSERT OR IGNORE INTO pages(id, v) VALUES (?, ?)",
                         (page_id, self._s.seal(bytes(data), b"page\0" + page_id)))

    # --- backup: stats of files already imported (keyed by a keyed hash of the path) ----

    def file_stat(self, path: bytes) -> tuple[int, int, int] | None:
        name = self._s.name(path)
        row = self._db.execute("SELECT v FROM files WHERE path=?", (name,)).fetchone()
        if row is None:
            return None
        plain = self._s.open(bytes(row[0]), b"file\0" + name)
        if plain is None or len(plain) != _STAT.size:
            return None
        size, mtime_ns, ino = _STAT.unpack(plain)
        return size, mtime_ns, ino

    def set_file_stats(self, rows: Iterable[tuple[bytes, int, int, int]]) -> None:
        def sealed(path: bytes, size: int, mtime_ns: int, ino: int) -> tuple[bytes, bytes]:
            name = self._s.name(path)
            return name, self._s.seal(_STAT.pack(size, mtime_ns, ino), b"file\0" + name)

        with self._tx():
            self._db.executemany("INSERT OR REPLACE INTO files(path, v) VALUES (?,?)", (sealed(*r) for r in rows))

    def _tx(self) -> _Tx:
        return _Tx(self._db)


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
