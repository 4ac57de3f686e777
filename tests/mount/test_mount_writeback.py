"""Writes through the mount's memory slots and write-behind (issue 15): streams of whole chunks stored
ahead, odd offsets and overlaps across chunk boundaries, fsync in the middle, remount; and a write that
needs a damaged stored chunk fails with EIO without storing anything in its place."""

from __future__ import annotations

import asyncio
import errno
import os
import random
from pathlib import Path

import pytest
from mounttools import MIB, PASS, Mounts, needs_fuse

import sigmavault
from sigmavault.engine.format.refs import final_ref

pytestmark = needs_fuse


def test_streams_and_odd_overlapping_writes_read_back_after_remount(mounts: Mounts) -> None:
    rng = random.Random(15)
    model = bytearray()
    m = mounts.mount("mnt", "--memory-cache", "4")  # 2 MiB of slots: spills as well as write-behind
    path = m.mountpoint / "w.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        def write(off: int, data: bytes) -> None:
            nonlocal model
            assert os.pwrite(fd, data, off) == len(data)
            if off > len(model):
                model += bytes(off - len(model))
            model[off : off + len(data)] = data

        for off in range(0, 6 * MIB, MIB // 2):  # a stream: full chunks are stored while it goes on
            write(off, rng.randbytes(MIB // 2))
        write(MIB - 3, rng.randbytes(7))  # straddles chunks 0|1
        write(3 * MIB - 5000, rng.randbytes(MIB + 10_000))  # chunk 2's tail, all of 3, the head of 4
        write(2 * MIB + 100, rng.randbytes(300))  # inside what the previous write just covered
        os.fsync(fd)
        write(6 * MIB + 12_345, rng.randbytes(2 * MIB))  # past the end: a hole, then two chunk boundaries
        write(5 * MIB - 1, b"\xff\xfe")  # the last byte of chunk 4 and the first of 5, both stored ahead
        os.ftruncate(fd, 7 * MIB + 3)
        del model[7 * MIB + 3 :]
        write(7 * MIB, rng.randbytes(MIB // 3))
        assert os.pread(fd, len(model) + 10, 0) == bytes(model)
    finally:
        os.close(fd)
    assert path.read_bytes() == bytes(model)
    assert m.stop() == 0
    again = mounts.mount("mnt")
    assert (again.mountpoint / "w.bin").read_bytes() == bytes(model)
    assert again.stop() == 0


def _second_chunk(url: Path, data: bytes) -> str:
    async def go() -> str:
        async with await sigmavault.open(str(url), passphrase=PASS) as v:
            await v.put("/d.bin", data)
            await v.commit()
            _, _, refs = await v.chunks("/d.bin")
            return final_ref(refs[1]).object_name

    return asyncio.run(go())


def test_a_write_into_a_damaged_chunk_fails_with_eio_and_stores_nothing(mounts: Mounts) -> None:
    data = random.Random(16).randbytes(3 * MIB)
    name = _second_chunk(mounts.vault, data)
    (obj,) = [p for p in (mounts.vault / "o").rglob(name[2:]) if p.is_file()]
    good = obj.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x01
    obj.chmod(0o600)
    obj.write_bytes(bytes(bad))
    m = mounts.mount("mnt")
    fd = os.open(m.mountpoint / "d.bin", os.O_WRONLY)
    try:
        with pytest.raises(OSError) as err:
            os.pwrite(fd, b"x" * 10, MIB + 5)  # a partial write: the chunk must be read (and checked) first
        assert err.value.errno == errno.EIO
        os.pwrite(fd, b"y" * 10, 5)  # the other chunks are fine
        os.fsync(fd)
    finally:
        os.close(fd)
    assert m.stop() == 0
    obj.write_bytes(good)  # the provider repairs the object: nothing else was stored in its place
    again = mounts.mount("mnt")
    assert (again.mountpoint / "d.bin").read_bytes() == data[:5] + b"y" * 10 + data[15:]
    assert again.stop() == 0
