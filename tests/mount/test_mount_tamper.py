"""A provider that flips a byte is noticed through the mount too (issue 11): a read of a damaged full
chunk or of a member of a damaged data pack fails with EIO, and the untouched files still read."""

from __future__ import annotations

import asyncio
import errno
import random
from pathlib import Path

import pytest
from mounttools import MIB, PASS, Mounts, needs_fuse

import sigmavault
from sigmavault.engine.format.refs import final_ref

BIG = random.Random(11).randbytes(2 * MIB + 1000)
SMALL = random.Random(12).randbytes(30_000)
OTHER = random.Random(13).randbytes(MIB)  # a full chunk alone: no pack member


def _fill(url: Path) -> dict[str, str]:
    """Store the files; returns the object name of big.bin's second chunk and of small.bin's pack."""

    async def go() -> dict[str, str]:
        async with await sigmavault.open(str(url), passphrase=PASS) as v:
            await v.put("/big.bin", BIG)
            await v.put("/small.bin", SMALL)
            await v.put("/other.bin", OTHER)
            await v.commit()
            _, _, big = await v.chunks("/big.bin")
            _, _, small = await v.chunks("/small.bin")
            return {"chunk": final_ref(big[1]).object_name, "pack": final_ref(small[0]).object_name}

    return asyncio.run(go())


def _flip(root: Path, name: str) -> None:
    (path,) = [p for p in (root / "o").rglob(name[2:]) if p.is_file()]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o600)
    path.write_bytes(bytes(data))


@needs_fuse
@pytest.mark.parametrize("target", ["chunk", "pack"])
def test_a_flipped_byte_reads_as_eio_through_the_mount(mounts: Mounts, target: str) -> None:
    names = _fill(mounts.vault)
    _flip(mounts.vault, names[target])
    m = mounts.mount("mnt")
    damaged = m.mountpoint / ("big.bin" if target == "chunk" else "small.bin")
    with pytest.raises(OSError) as err, open(damaged, "rb") as f:
        f.seek(MIB if target == "chunk" else 0)
        f.read(4096)
    assert err.value.errno == errno.EIO
    assert (m.mountpoint / "other.bin").read_bytes() == OTHER
    if target == "chunk":
        assert (m.mountpoint / "small.bin").read_bytes() == SMALL
    else:
        with open(m.mountpoint / "big.bin", "rb") as f:
            assert f.read(2 * MIB) == BIG[: 2 * MIB]
    assert m.stop() == 0
