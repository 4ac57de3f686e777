"""A vault with compression through the library (issue 15): compressed chunks read back from the open
pack before any commit, ranged reads across compressed chunks, a patch that keeps compressed chunks
and replaces one, and a reopened vault (a fresh device: nothing cached) reads it all."""

from __future__ import annotations

import os
from pathlib import Path

from vaulttools import object_files

import sigmavault

MIB = 1 << 20
PASS = "compression test passphrase"


def text(n: int, salt: bytes = b"") -> bytes:
    return b"".join(salt + b"%07d all work and no play makes a dull vault\n" % i for i in range(n // 40 + 1))[:n]


async def read(v: sigmavault.Vault, path: str, offset: int = 0, length: int | None = None) -> bytes:
    return b"".join([p async for p in v.open_read(path, offset, length)])


async def test_compressed_chunks_read_back_before_and_after_commit_and_after_a_patch(
        tmp_path: Path, isolated_home: Path) -> None:
    url = str(tmp_path / "v")
    data = text(3 * MIB + 12_345)
    async with await sigmavault.create(url, passphrase=PASS, kdf="minimum", chunk_size=MIB,
                                       compression="auto") as v:
        await v.put("/t.txt", data)
        assert await read(v, "/t.txt") == data  # from the open pack: nothing stored yet
        assert await read(v, "/t.txt", MIB - 10, 2 * MIB + 20) == data[MIB - 10 : 3 * MIB + 10]
        await v.commit()
        assert all(p.stat().st_size <= MIB + 4200 for p in object_files(tmp_path / "v"))
        new = text(MIB, b"x")
        await v.patch("/t.txt", len(data), {1: new})
        await v.put("/r.bin", noise := os.urandom(MIB + 7))
    want = data[:MIB] + new + data[2 * MIB :]
    async with await sigmavault.open(url, passphrase=PASS) as v:
        assert await read(v, "/t.txt") == want
        assert await read(v, "/t.txt", 2 * MIB - 3, 6) == want[2 * MIB - 3 : 2 * MIB + 3]
        assert await read(v, "/r.bin") == noise
    stored = sum(p.stat().st_size for p in object_files(tmp_path / "v"))
    assert stored < MIB + 7 + 5 * 4200 + 400_000  # the random file as it is; the text in a few packs
