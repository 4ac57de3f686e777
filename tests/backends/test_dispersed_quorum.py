"""A dispersed put returns at the write quorum; records wait for the places still uploading (real servers).

One place's shard uploads are held on an event that only the dispersed backend's own ``on_settle``
hook sets (called when a record write starts waiting), so the order is made, not hoped for: a put
that waited for every place, or a commit that did not wait for the held one, fails the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from dispersal import KEYS, dispersed, reopen
from test_dispersed_servers import urls  # noqa: F401  (the fixture: local + SeaweedFS + Azurite)

from sigmavault.backends.base import Backend, Wrapper
from sigmavault.backends.dispersed import DispersedBackend
from sigmavault.backends.dispersed.repair import repair
from sigmavault.backends.local import LocalBackend
from sigmavault.backends.urls import open_backend
from sigmavault.engine.errors import BackendUnavailable, NotFound

OBJ = "o/" + "ab" * 32
COMMIT = "c/0000000000000001"
GUARD = 120  # seconds: only a hang (a put that waits for the held place) ever reaches it


class Watched(Wrapper):
    """Logs each write; with ``held``, holds its o/ uploads until the event is set, then stores or fails them."""

    def __init__(self, inner: Backend, log: list[tuple[str, str]], label: str,
                 held: asyncio.Event | None = None, fail: bool = False) -> None:
        super().__init__(inner)
        self.log, self.label, self.held, self.fail = log, label, held, fail

    async def put_if_absent(self, name: str, data: bytes | bytearray | memoryview) -> bool:
        if self.held is not None and name.startswith("o/"):
            await self.held.wait()
            if self.fail:
                self.log.append((self.label, "o/ failed"))
                raise BackendUnavailable(f"{self.label}: failed as told")
            created = await self.inner.put_if_absent(name, data)
            self.log.append((self.label, "o/ stored"))
            return created
        self.log.append((self.label, name[:2]))
        return await self.inner.put_if_absent(name, data)


def places(where: list[str], log: list[tuple[str, str]], held: asyncio.Event, fail: bool = False) -> list[Backend]:
    return [Watched(LocalBackend(where[0], create=True), log, "local"), Watched(open_backend(where[1]), log, "s3"),
            Watched(open_backend(where[2]), log, "azure", held, fail)]


async def shards_on(b: DispersedBackend) -> list[bool]:
    """Whether each place (by index) holds its shard of OBJ."""
    out = []
    for p in sorted((p for p in b.slots if p is not None), key=lambda p: p.index):
        try:
            await p.backend.head(KEYS.shard_name(OBJ, p.index))
            out.append(True)
        except NotFound:
            out.append(False)
    return out


@contextlib.asynccontextmanager
async def held_place(where: list[str], fail: bool = False,
                     ) -> AsyncIterator[tuple[DispersedBackend, list[tuple[str, str]], asyncio.Event]]:
    """A backend over ``where`` whose Azure place holds its uploads until the event is set (by the
    backend's ``on_settle`` hook, when a record starts waiting for them), then stores or fails them."""
    log: list[tuple[str, str]] = []
    held = asyncio.Event()
    b = await dispersed(places(where, log, held, fail))
    b.on_settle = held.set
    try:
        yield b, log, held
    finally:
        held.set()
        await b.aclose()


def plain(where: list[str], lost: int | None = None) -> list[Backend]:
    return [b for i, b in enumerate([LocalBackend(where[0]), open_backend(where[1]), open_backend(where[2])])
            if i != lost]


async def test_a_put_returns_at_the_quorum_and_a_commit_waits_for_the_rest(urls: list[str]) -> None:  # noqa: F811
    async with held_place(urls) as (b, log, held):
        assert await asyncio.wait_for(b.put_if_absent(OBJ, os.urandom(3 << 20)), GUARD)  # Azure's is held
        assert not held.is_set() and ("azure", "o/ stored") not in log
        await asyncio.wait_for(b.put_if_absent("l/lease-test", b"beat"), GUARD)  # a lease does not wait
        assert not held.is_set()
        assert await asyncio.wait_for(b.put_if_absent(COMMIT, b"commit"), GUARD)
        stored = log.index(("azure", "o/ stored"))
        assert all(i > stored for i, (_, kind) in enumerate(log) if kind == "c/"), log
        assert await shards_on(b) == [True, True, True]
        assert b.degraded() == []


async def test_a_place_that_fails_after_the_quorum_is_marked_and_repair_fills_it(
    urls: list[str],  # noqa: F811
) -> None:
    data = os.urandom(3 << 20)
    async with held_place(urls, fail=True) as (b, log, _):
        assert await asyncio.wait_for(b.put_if_absent(OBJ, data), GUARD)
        assert await asyncio.wait_for(b.put_if_absent(COMMIT, b"commit"), GUARD)  # 2 of 3: still a majority
        assert log.index(("azure", "o/ failed")) < min(i for i, (_, kind) in enumerate(log) if kind == "c/")
        assert any("place 3" in d for d in b.degraded())  # named, as when a put waited for it
        assert await shards_on(b) == [True, True, False]
    b = await reopen(plain(urls), 3)
    try:
        report = await repair(b)
        assert report.shards_written >= 1 and not report.unrecoverable, report
        assert (await repair(b)).clean
        assert await shards_on(b) == [True, True, True]
    finally:
        await b.aclose()
    for lost in range(3):  # any one place may now be lost: the object and the commit survive
        b = await reopen(plain(urls, lost), 3)
        try:
            assert await b.get(OBJ) == data
            assert await b.get(COMMIT) == b"commit"
        finally:
            await b.aclose()


async def test_a_delete_waits_for_the_uploads_of_its_object(urls: list[str]) -> None:  # noqa: F811
    async with held_place(urls) as (b, _, held):
        assert await asyncio.wait_for(b.put_if_absent(OBJ, b"x" * 100_000), GUARD)
        delete = asyncio.ensure_future(b.delete(OBJ))  # it can only end after the release below
        held.set()
        await asyncio.wait_for(delete, GUARD)
        assert await shards_on(b) == [False, False, False]  # no held shard landed after the delete


async def test_closing_without_a_commit_cancels_the_uploads_past_the_quorum(urls: list[str]) -> None:  # noqa: F811
    log: list[tuple[str, str]] = []
    held = asyncio.Event()  # never set: a close that waited for the held upload would hang (GUARD)
    b = await dispersed(places(urls, log, held))
    assert await asyncio.wait_for(b.put_if_absent(OBJ, b"x" * 100_000), GUARD)
    await asyncio.wait_for(b.aclose(), GUARD)  # no commit names the object: its held upload is dropped
    assert ("azure", "o/ stored") not in log
