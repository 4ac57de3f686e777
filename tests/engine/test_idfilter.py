"""The dedup index's Bloom filter: never a false "no", few false "maybe"s, and lookups of new blobs
answered without the cache's worker thread — including ids added while the filter loads."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from sigmavault.engine.keys.secret import Secret
from sigmavault.engine.local.cache import Cache
from sigmavault.engine.local.idfilter import IdFilter


def test_no_false_negatives_as_it_grows_and_few_false_positives() -> None:
    f = IdFilter(capacity=1000)
    ids = [os.urandom(32) for _ in range(50_000)]  # 50 times its first capacity: it grows
    for i in ids:
        f.add(i)
    assert all(i in f for i in ids)
    false = sum(os.urandom(32) in f for _ in range(50_000))
    assert false < 50_000 * 0.01  # about 0.2 % per table, a few tables


def row(blob_id: bytes) -> tuple[bytes, int, int, str, int, int, int, int]:
    return (blob_id, 1, 1, "o/" + blob_id.hex()[:8], 0, 100, 200, 0)


async def test_unknown_ids_skip_the_worker_and_known_ones_are_found(tmp_path: Path) -> None:
    key = Secret(os.urandom(32))
    cache = await Cache.open(tmp_path / "c.db", key)
    old = os.urandom(32)
    cache.add_blobs([row(old)], committed=True)
    await cache.aclose()

    cache = await Cache.open(tmp_path / "c.db", key)
    try:
        assert (await cache.find_blob(old)) is not None  # loaded from the table
        calls: list[str] = []
        real = cache._call

        async def counted(fn):  # type: ignore[no-untyped-def]
            calls.append("hop")
            return await real(fn)

        cache._call = counted  # type: ignore[method-assign]
        assert all([await cache.find_blob(os.urandom(32)) is None for _ in range(200)])
        assert len(calls) < 5  # a false "maybe" now and then, not a hop per lookup
        new = os.urandom(32)
        cache.add_blobs([row(new)])
        assert (await cache.find_blob(new)) is not None  # queued, not yet written: still found
    finally:
        await cache.aclose()


async def test_ids_added_while_the_filter_loads_are_not_missed(tmp_path: Path) -> None:
    cache = await Cache.open(tmp_path / "c.db", Secret(os.urandom(32)))
    try:
        real_load = cache._load_ids
        loaded, go = threading.Event(), threading.Event()

        def load() -> IdFilter:  # the table is read; the filter is not handed over yet
            ids = real_load()
            loaded.set()
            go.wait(10)
            return ids

        cache._load_ids = load  # type: ignore[method-assign]
        lookup = asyncio.create_task(cache.find_blob(os.urandom(32)))
        await asyncio.to_thread(loaded.wait, 10)
        during = os.urandom(32)
        cache.add_blobs([row(during)])  # after the table was read, before the filter is in place
        go.set()
        assert await lookup is None
        assert (await cache.find_blob(during)) is not None
    finally:
        await cache.aclose()
