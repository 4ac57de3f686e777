"""The mount's content layer without FUSE: chunk-granular reads, readahead, and write-back flush batches."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import sigmavault
from sigmavault.mount.files import FileContent
from sigmavault.mount.inodes import Handle, InodeTable
from sigmavault.mount.options import MountOptions

MIB = 1 << 20
PASS = "content test"


async def setup(tmp: Path, **kw: int) -> tuple[sigmavault.Vault, FileContent, InodeTable, list[int]]:
    vault = await sigmavault.create(str(tmp / "v"), passphrase=PASS, kdf="minimum", chunk_size=MIB)
    inodes = InodeTable()
    opts = MountOptions(cache_dir=tmp / "cache", **kw)  # type: ignore[arg-type]
    content = FileContent(vault, opts, inodes, asyncio.Lock())
    calls: list[int] = []
    real = vault.read_chunk

    async def counting(ref):  # type: ignore[no-untyped-def]
        calls.append(ref.length)
        return await real(ref)

    vault.read_chunk = counting  # type: ignore[method-assign]
    return vault, content, inodes, calls


async def test_random_read_fetches_only_the_chunk_it_needs(tmp_path: Path) -> None:
    vault, content, inodes, calls = await setup(tmp_path)
    data = random.Random(1).randbytes(20 * MIB + 333)
    await vault.put("big.bin", data)
    ino = inodes.ino_for((b"big.bin",))
    h = Handle(ino, False)
    h.stream.next_off = 12345  # not at the start: a random reader
    got = await content.read(h, 7 * MIB + 100, 4096)
    assert got == data[7 * MIB + 100 : 7 * MIB + 4196]
    assert calls == [MIB]  # one chunk fetched, no readahead
    got = await content.read(Handle(ino, False), 20 * MIB, 4096)  # the tail blob
    assert got == data[20 * MIB :]
    await vault.aclose()


async def test_sequential_reader_gets_readahead(tmp_path: Path) -> None:
    vault, content, inodes, calls = await setup(tmp_path, readahead=4)
    data = random.Random(2).randbytes(12 * MIB)
    await vault.put("seq.bin", data)
    ino = inodes.ino_for((b"seq.bin",))
    tasks: set[asyncio.Task[None]] = set()
    content.start(lambda coro: tasks.add(asyncio.ensure_future(coro)))
    h = Handle(ino, False)
    out = bytearray()
    while len(out) < len(data):
        out += await content.read(h, len(out), 128 * 1024)
        if len(out) == 2 * MIB:
            await asyncio.gather(*tasks)
            assert len(calls) >= 5  # chunks 0-1 read, 2-5 fetched ahead
    assert bytes(out) == data
    await asyncio.gather(*tasks)
    assert len(calls) == 12  # each chunk fetched exactly once
    await vault.aclose()


async def test_write_back_batches_keep_the_file_consistent(tmp_path: Path) -> None:
    """Random writes/truncates with tiny flush batches and flushes at random points match a model."""
    vault, content, inodes, _ = await setup(tmp_path, flush_batch=2 * MIB)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    model = bytearray(rng.randbytes(5 * MIB + 7))
    await vault.put("f.bin", bytes(model))
    ino = inodes.ino_for((b"f.bin",))
    inodes.opened(ino)
    for step in range(200):
        r = rng.random()
        if r < 0.6:
            off = rng.randrange(9 * MIB)
            buf = rng.randbytes(rng.choice([1, 5000, MIB, 3 * MIB + 1]))
            await content.write(ino, off, buf)
            if off > len(model):
                model += bytes(off - len(model))
            model[off : off + len(buf)] = buf
        elif r < 0.75:
            size = rng.choice([0, rng.randrange(9 * MIB), 3 * MIB])
            await content.truncate(ino, size)
            model = model[:size] + bytes(max(0, size - len(model)))
        else:
            await content.flush(ino, final=rng.random() < 0.4)
        off = rng.randrange(len(model) + 1)
        got = await content.read(Handle(ino, False), off, 300_000)
        assert got == bytes(model[off : off + 300_000]), f"seed={seed} step={step}"
    await content.flush(ino)
    assert await vault.read_bytes("f.bin") == bytes(model), f"seed={seed}"
    await vault.commit()
    await vault.aclose()
    again = await sigmavault.open(str(tmp_path / "v"), passphrase=PASS)
    assert await again.read_bytes("f.bin") == bytes(model), f"seed={seed}"
    await again.aclose()


async def test_writers_wait_when_the_write_cache_is_full(tmp_path: Path) -> None:
    vault, content, inodes, _ = await setup(tmp_path, write_cache=4 * MIB, flush_batch=MIB)
    await vault.patch("w.bin", 0, {})
    ino = inodes.ino_for((b"w.bin",))
    inodes.opened(ino)
    flusher = asyncio.ensure_future(content.flusher())
    peak = 0
    data = random.Random(3).randbytes(24 * MIB)
    for off in range(0, len(data), 256 * 1024):
        await content.write(ino, off, data[off : off + 256 * 1024])
        peak = max(peak, content.dirty_bytes())
    assert peak <= 4 * MIB + MIB
    await content.flush(ino)
    flusher.cancel()
    assert await vault.read_bytes("w.bin") == data
    await vault.aclose()
