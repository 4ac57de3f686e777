"""The library's read side (issue 17): ranged ``open_read``, the file-like ``vault.open``, and a
long-lived Vault that sees other clients' commits (on a timer and on NotFound)."""

from __future__ import annotations

import asyncio
import io
import os
import random
from pathlib import Path

import pytest
from vaulttools import MIB, new_vault, reopen

from sigmavault import NotFound, UsageError


async def test_open_read_takes_an_offset_and_a_length(tmp_path: Path) -> None:
    content = os.urandom(3 * MIB + 1234)
    async with await new_vault(tmp_path / "v") as v:
        await v.put("/f", content)
        await v.put("/small", b"hello world")
        cases = [(0, None), (0, 10), (MIB - 5, 10), (MIB, MIB), (2 * MIB + 7, None), (len(content) - 3, 100),
                 (len(content), None), (len(content) + 5, 5), (123, 0)]
        for off, length in cases:
            want = content[off:] if length is None else content[off : off + length]
            assert b"".join([p async for p in v.open_read("/f", off, length)]) == want, (off, length)
            assert await v.read_bytes("/f", off, length) == want
        assert await v.read_bytes("/small", 6, 3) == b"wor"
        with pytest.raises(UsageError):
            await v.read_bytes("/f", 0, -1)
        with pytest.raises(UsageError):
            await v.read_bytes("/f", -1)


async def test_vault_file_reads_and_seeks_like_a_file(tmp_path: Path) -> None:
    content = os.urandom(3 * MIB + 777)
    async with await new_vault(tmp_path / "v") as v:
        await v.put("/f", content)
        await v.commit()
        model = io.BytesIO(content)
        rnd = random.Random(3)
        async with await v.open("/f") as f:
            assert f.size == len(content) and f.tell() == 0
            for _ in range(60):
                action = rnd.random()
                if action < 0.35:
                    whence = rnd.choice([os.SEEK_SET, os.SEEK_CUR, os.SEEK_END])
                    base = {os.SEEK_SET: 0, os.SEEK_CUR: model.tell(), os.SEEK_END: len(content)}[whence]
                    offset = rnd.randrange(-base, len(content) + 100 - base)
                    assert await f.seek(offset, whence) == model.seek(offset, whence)
                else:
                    n = rnd.choice([0, 1, 17, 4096, MIB - 3, MIB + 5, 2 * MIB])
                    assert await f.read(n) == model.read(n)
                assert f.tell() == model.tell()
            await f.seek(0)
            assert await f.read() == content
            assert await f.read(10) == b""
            with pytest.raises(UsageError):
                await f.seek(-1)
        assert f.closed
        with pytest.raises(UsageError):
            await f.read(1)
        with pytest.raises(NotFound):
            await v.open("/missing")
        with pytest.raises(UsageError):
            await v.open("/")


async def test_an_open_file_keeps_its_content_when_the_path_changes(tmp_path: Path) -> None:
    old, new = os.urandom(2 * MIB + 1), os.urandom(2 * MIB + 2)
    async with await new_vault(tmp_path / "v") as v:
        await v.put("/f", old)
        await v.commit()
        f = await v.open("/f")
        assert await f.read(100) == old[:100]
        await v.put("/f", new)
        await v.commit()
        await f.seek(MIB)  # a new stream after the seek: still the content opened
        assert await f.read() == old[MIB:]
        await f.aclose()
        await f.aclose()  # idempotent
        assert await v.read_bytes("/f") == new


async def test_a_long_lived_vault_sees_other_clients_commits(tmp_path: Path) -> None:
    url = tmp_path / "v"
    async with await new_vault(url) as writer:
        await writer.put("/first", b"1")
    async with await reopen(url) as reader, await reopen(url) as writer:
        assert reader.refresh_interval == 5.0  # the mount's default
        reader.refresh_interval = 3600
        await writer.put("/second", b"2")
        await writer.commit()
        assert [s.name for s in await reader.ls("/")] == ["first"]  # within the interval: unchanged
        reader.refresh_interval = 0.2
        await asyncio.sleep(0.3)
        assert [s.name for s in await reader.ls("/")] == ["first", "second"]  # the timer adopted it
        reader.refresh_interval = 3600
        await writer.put("/third", b"3")
        await writer.commit()
        assert await reader.read_bytes("/third") == b"3"  # not found at first: refreshed, found
        with pytest.raises(NotFound):
            await reader.stat("/never")
        reader.refresh_interval = None  # off: only an explicit refresh() adopts commits
        await writer.put("/fourth", b"4")
        gen = await writer.commit()
        with pytest.raises(NotFound):
            await reader.stat("/fourth")
        assert await reader.refresh() == gen
        assert (await reader.stat("/fourth")).size == 1
