"""The local cache holds no plaintext (issue 10 item 9): values sealed, paths keyed, old clear caches wiped."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

from sigmavault.engine.keys.secret import Secret
from sigmavault.engine.local.cache import Cache

MARK = b"MARKERplaintext"
T = TypeVar("T")


def run(aw: Awaitable[T]) -> T:
    """The cache's reads are async (they run on its worker thread)."""
    async def go() -> T:
        return await aw

    return asyncio.run(go())


def _key() -> Secret:
    return Secret(os.urandom(32), "test key")


def _disk(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.iterdir() if p.is_file())


def test_values_round_trip_and_never_reach_the_disk_in_the_clear(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    key = _key()
    c = Cache(path, key)
    c.put_page(b"p" * 32, MARK + b" page")
    c.set_file_stats([(b"/dest\0/home/me/" + MARK, 123456789, 42, 7)])
    c.add_blobs([(b"b" * 32, 1, 2, "o/" + "ab" * 32, 4096, 987654, 1 << 20, 0)])
    assert run(c.get_page(b"p" * 32)) == MARK + b" page"
    assert run(c.file_stats([b"/dest\0/home/me/" + MARK])) == [(123456789, 42, 7)]
    assert run(c.find_blob(b"b" * 32)) == (1, 2, "o/" + "ab" * 32, 4096, 987654, 1 << 20, False, 0)
    c.close()
    data = _disk(path)
    assert MARK not in data and b"/home/me" not in data
    assert (987654).to_bytes(8, "big") not in data and (123456789).to_bytes(8, "big") not in data
    again = Cache(path, key)  # the same key reads them back in a new process
    assert run(again.get_page(b"p" * 32)) == MARK + b" page"
    again.close()


def test_another_key_reads_nothing(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    c = Cache(path, _key())
    c.put_page(b"p" * 32, b"page")
    c.set_file_stats([(b"/x", 1, 2, 3)])
    c.add_blobs([(b"b" * 32, 1, 2, "o/" + "ab" * 32, 0, 10, 100, 0)])
    c.close()
    other = Cache(path, _key())
    assert run(other.get_page(b"p" * 32)) is None
    assert run(other.file_stats([b"/x"])) == [None]
    assert run(other.find_blob(b"b" * 32)) is None


def test_swapped_rows_do_not_open(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    c = Cache(path, _key())
    c.put_page(b"1" * 32, b"one")
    c.put_page(b"2" * 32, b"two")
    run(c.flush())  # queued writes reach the file in one transaction
    db = sqlite3.connect(path)
    v1 = db.execute("SELECT v FROM pages WHERE id=?", (b"1" * 32,)).fetchone()[0]
    db.execute("UPDATE pages SET v=? WHERE id=?", (v1, b"2" * 32))
    db.commit()
    db.close()
    assert run(c.get_page(b"2" * 32)) is None and run(c.get_page(b"1" * 32)) == b"one"


def test_an_old_cache_in_the_clear_is_wiped(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        CREATE TABLE pages (id BLOB PRIMARY KEY, data BLOB NOT NULL);
        CREATE TABLE files (path BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                            ino INTEGER NOT NULL);
    """)
    db.execute("INSERT INTO meta VALUES ('indexed_gen', 5)")
    for _ in range(200):
        db.execute("INSERT INTO pages VALUES (?, ?)", (os.urandom(32), MARK * 20))
    db.execute("INSERT INTO files VALUES (?, 1, 2, 3)", (b"/home/me/" + MARK,))
    db.commit()
    db.close()
    assert MARK in _disk(path)
    c = Cache(path, _key())
    assert run(c.get_meta("indexed_gen")) == -1  # the index is rebuilt from the vault
    c.close()
    assert MARK not in _disk(path)
