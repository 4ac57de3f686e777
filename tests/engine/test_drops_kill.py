"""kill -9 in the middle of a drop and in the middle of an ingest: nothing half-done is taken in,
nothing is taken in twice, and the next run of each completes.

The process kills itself (SIGKILL, no clean-up) when it reaches the chosen point: the n-th object
a writer stores, just before or just after its drop record lands, or just before or just after
the owner's ingesting commit lands. The points are exact: each run dies at the same place.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from vaulttools import PASS, new_vault, reopen

import sigmavault
from sigmavault import Vault, WriterCredential

_LAUNCHER = r"""
import asyncio, os, signal, sys
import sigmavault
from sigmavault.backends.local import LocalBackend

url, mode, point, secret = sys.argv[1:5]
original = LocalBackend.put_if_absent
objects = 0


def die(here):
    if here == point:
        os.kill(os.getpid(), signal.SIGKILL)


async def put(self, name, data):
    global objects
    if name.startswith("d/") and "/o/" in name:
        objects += 1
        die(f"object:{objects}")
    record = name.startswith("d/") and len(name) == 51  # d/<writer>/<seq>: not an object, marker or lease beat
    if record or name.startswith("c/"):
        die("before-record" if record else "before-commit")
    landed = await original(self, name, data)
    if record or name.startswith("c/"):
        die("after-record" if record else "after-commit")
    return landed

LocalBackend.put_if_absent = put


async def main():
    if mode == "drop":
        async with await sigmavault.open(url, writer_credential=secret) as w:
            for i in range(6):
                await w.put(f"/web-1/f{i}", bytes([i]) * (1 << 20))  # a full chunk each: one object each
            await w.commit()
    else:
        async with await sigmavault.open(url, passphrase=secret) as v:
            await v.commit()

asyncio.run(main())
"""


def run_killed(url: Path, mode: str, point: str, secret: str) -> None:
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, str(url), mode, point, secret], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, (point, proc.returncode, proc.stderr)


async def setup(tmp_path: Path) -> tuple[Path, Path, WriterCredential]:
    root = tmp_path / "v"
    async with await new_vault(root) as v:
        cred = await v.keys.add_writer("web-1", "/web-1")
    path = tmp_path / "web-1.cred"
    path.write_bytes(cred.to_bytes())
    return root, path, cred


async def full_drop(root: Path, cred: WriterCredential) -> int:
    async with await sigmavault.open(str(root), writer_credential=cred) as w:
        for i in range(6):
            await w.put(f"/web-1/f{i}", bytes([i]) * (1 << 20))
        return await w.commit()


async def ingested(v: Vault) -> list[int]:
    """Every drop seq taken in, over the whole chain (each must appear once)."""
    out = []
    for g in range(v.generation + 1):
        drops = (await v._history.commit_at(g)).audit.drops
        out += [] if drops is None else [i.seq for i in drops.ingested]
    return out


async def check_files(v: Vault) -> None:
    assert sorted(s.name for s in await v.ls("/web-1")) == [f"f{i}" for i in range(6)]
    for i in range(6):
        assert await v.read_bytes(f"/web-1/f{i}") == bytes([i]) * (1 << 20)


@pytest.mark.parametrize("point", ["object:3", "before-record", "after-record"])
async def test_a_writer_killed_mid_drop_leaves_nothing_half_taken_in(tmp_path: Path, point: str) -> None:
    root, path, cred = await setup(tmp_path)
    await asyncio.to_thread(run_killed, root, "drop", point, str(path))
    async with await reopen(root) as v:
        await v.commit()
        if point == "after-record":  # the record landed: the drop is whole, and it is taken in
            assert await ingested(v) == [1]
            await check_files(v)
        else:
            assert await ingested(v) == []
            assert not [s async for s in _names(v)]
    assert await full_drop(root, cred) == (2 if point == "after-record" else 1)
    async with await reopen(root) as v:
        await v.commit()
        assert await ingested(v) == ([1, 2] if point == "after-record" else [1])
        await check_files(v)
        report = await v.verify(full=True)
        assert report.ok, report


async def _names(v: Vault):  # type: ignore[no-untyped-def]
    try:
        for s in await v.ls("/web-1"):
            yield s.name
    except sigmavault.NotFound:
        return


@pytest.mark.parametrize("point", ["before-commit", "after-commit"])
async def test_an_owner_killed_mid_ingest_takes_the_drop_in_exactly_once(tmp_path: Path, point: str) -> None:
    root, _path, cred = await setup(tmp_path)
    assert await full_drop(root, cred) == 1
    await asyncio.to_thread(run_killed, root, "ingest", point, PASS)
    async with await reopen(root) as v:
        await v.commit()
        assert await ingested(v) == [1]
        await check_files(v)
        report = await v.verify(full=True)
        assert report.ok, report
        assert os.path.isdir(root / "d" / cred.writer_id.hex())
