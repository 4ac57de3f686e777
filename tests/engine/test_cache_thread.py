"""SQLite off the event loop (issue 11): one connection on one worker thread, writes batched.

Every statement the cache runs is traced with the thread that ran it: none may run on the event
loop's thread, whatever the vault does (create, import, dedup, commit, list, read, reopen).
Queued writes are committed in one transaction per batch and survive close and reopen.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vaulttools import new_vault, reopen

from sigmavault.engine.keys.secret import Secret
from sigmavault.engine.local import cache as cache_mod
from sigmavault.engine.local.cache import Cache
from sigmavault.engine.transfer.importer import import_paths


class Trace:
    def __init__(self) -> None:
        self.threads: set[int] = set()
        self.statements: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, statement: str) -> None:
        with self.lock:
            self.threads.add(threading.get_ident())
            self.statements.append(statement)

    def commits(self) -> int:
        return sum(1 for s in self.statements if s.strip().upper() == "COMMIT")


@pytest.fixture
def trace(monkeypatch: pytest.MonkeyPatch) -> Iterator[Trace]:
    """Every connection the cache opens reports each statement (and its thread) to the trace."""
    t = Trace()
    real = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        db = real(*args, **kwargs)
        db.set_trace_callback(t)
        return db

    monkeypatch.setattr(cache_mod.sqlite3, "connect", connect)
    yield t


def _key() -> Secret:
    return Secret(os.urandom(32), "test key")


def test_no_sqlite_call_runs_on_the_event_loop_thread(tmp_path: Path, trace: Trace) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        (src / f"f{i}").write_bytes(os.urandom(3000 + i))
    big = os.urandom(3 << 20)

    async def main() -> int:
        loop_thread = threading.get_ident()
        v = await new_vault(tmp_path / "vault")
        try:
            await v.put("/big", big)
            await v.put("/again", big)  # dedup: the index is asked
            await v.commit()
            await import_paths(v, [src], "/tree", incremental=True)  # file stats stored
            await v.commit()
            report = await import_paths(v, [src], "/tree", incremental=True)  # and asked
            assert report.skipped == 20
            assert len(await v.ls("/")) >= 2
        finally:
            await v.aclose()
        v = await reopen(tmp_path / "vault")
        try:
            assert b"".join([p async for p in v.open_read("/big")]) == big
            await v.put("/third", big)  # refills the index from the catalog, then dedups
            await v.commit()
        finally:
            await v.aclose()
        return loop_thread

    loop_thread = asyncio.run(main())
    assert trace.statements, "the cache was used"
    assert loop_thread not in trace.threads, "a SQLite statement ran on the event loop thread"
    assert threading.get_ident() not in trace.threads


def test_queued_rows_survive_close_and_reopen(tmp_path: Path) -> None:
    path, key = tmp_path / "cache.sqlite", _key()
    blobs = [(os.urandom(32), 1, 2, "o/" + os.urandom(32).hex(), i, 100, 1 << 20, i % 2 * 40) for i in range(50)]

    async def write() -> None:
        c = await Cache.open(path, key)
        c.add_blobs(blobs)
        c.put_page(b"p" * 32, b"page bytes")
        c.set_file_stats([(b"/a\0/home/a", 1, 2, 3)])
        c.set_meta("indexed_gen", 7)
        await c.aclose()  # nothing was flushed before: close commits the queue

    asyncio.run(write())
    sync = Cache(path, key)
    sync.mark_committed([blobs[0][3]])
    sync.close()  # the synchronous close commits its queue too

    async def read() -> None:
        c = await Cache.open(path, key)
        try:
            for i, e, k, o, off, n, ol, z in blobs:  # half of them compressed members (zlen 40)
                assert await c.find_blob(i) == (e, k, o, off, n, ol, o == blobs[0][3], z)
            assert await c.get_page(b"p" * 32) == b"page bytes"
            assert (await c.file_stats([b"/a\0/home/a"]))[0] == (1, 2, 3)
            assert await c.get_meta("indexed_gen") == 7
        finally:
            await c.aclose()

    asyncio.run(read())


def test_writes_are_batched_and_a_read_sees_what_it_needs(tmp_path: Path, trace: Trace) -> None:
    path = tmp_path / "cache.sqlite"

    async def main() -> None:
        c = await Cache.open(path, _key())
        before = trace.commits()
        ids = [os.urandom(32) for _ in range(200)]
        for i in ids:  # as the writer stage reports stored blobs: one row at a time
            c.add_blobs([(i, 1, 2, "o/" + i.hex(), 0, 10, 100, 0)])
        assert trace.commits() == before  # queued, not written yet
        assert await c.find_blob(os.urandom(32)) is None  # a read that needs none of them: no commit
        assert trace.commits() == before
        assert (await c.find_blob(ids[-1]) or ())[2] == "o/" + ids[-1].hex()  # needs a queued row
        assert trace.commits() == before + 1  # all 200 rows in one transaction
        c.forget_blob(ids[0])
        assert await c.find_blob(ids[0]) is None
        c.set_meta("indexed_gen", 3)
        c.set_meta("indexed_gen", 4, only_if_set=True)
        assert await c.get_meta("indexed_gen") == 4
        c.set_meta("other", 5, only_if_set=True)  # not set before: stays unset
        assert await c.get_meta("other") == -1
        await c.aclose()
        with pytest.raises(Exception, match="closed"):
            await c.get_page(b"x" * 32)

    asyncio.run(main())


def test_a_full_batch_is_committed_in_the_background(tmp_path: Path, trace: Trace) -> None:
    async def main() -> None:
        c = await Cache.open(tmp_path / "cache.sqlite", _key())
        before = trace.commits()
        c.add_blobs([(os.urandom(32), 1, 2, "o/x", 0, 10, 100, 0) for _ in range(cache_mod.BATCH)])
        for _ in range(200):  # the worker commits without being asked
            if trace.commits() > before:
                break
            await asyncio.sleep(0.01)
        assert trace.commits() == before + 1
        await c.aclose()

    asyncio.run(main())
