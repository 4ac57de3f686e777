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


async def _opened(vault: sigmavault.Vault, inodes: InodeTable, name: str, data: bytes) -> int:
    """Store ``data`` as ``name``; its inode number, held open."""
    await vault.put(name, data)
    ino = inodes.ino_for((name.encode(),))
    inodes.opened(ino)
    return ino


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
    ino = await _opened(vault, inodes, "f.bin", bytes(model))
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
    await _holds(vault, tmp_path, bytes(model), seed)


async def _holds(vault: sigmavault.Vault, tmp: Path, model: bytes, seed: int) -> None:
    """The vault holds ``model`` as f.bin, and still does after a commit and a reopen."""
    assert await vault.read_bytes("f.bin") == model, f"seed={seed}"
    await vault.commit()
    await vault.aclose()
    again = await sigmavault.open(str(tmp / "v"), passphrase=PASS)
    assert await again.read_bytes("f.bin") == model, f"seed={seed}"
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


async def _random_model_run(tmp: Path, seed: int, *, uploader: bool, **kw: int) -> None:
    """Random writes (chunk-aligned streams, odd offsets and overlaps across chunk boundaries), truncates
    and flushes, with the write-behind on or off, checked against a model during, after a flush and
    after reopening the vault."""
    vault, content, inodes, _ = await setup(tmp, **kw)
    tasks: set[asyncio.Future[None]] = set()
    if uploader:
        content.start(lambda coro: tasks.add(asyncio.ensure_future(coro)))
    rng = random.Random(seed)
    model = bytearray(rng.randbytes(3 * MIB + 11))
    ino = await _opened(vault, inodes, "f.bin", bytes(model))
    for step in range(150):
        r = rng.random()
        if r < 0.3:  # a stream of whole chunks from a chunk boundary: the write-behind's case
            off = rng.randrange(6) * MIB
            buf = rng.randbytes(rng.choice([MIB, 2 * MIB, 3 * MIB]))
            for k in range(0, len(buf), MIB // 4):
                await content.write(ino, off + k, buf[k : k + MIB // 4])
        elif r < 0.65:  # odd offsets, often straddling a chunk boundary
            off = rng.choice([rng.randrange(8 * MIB), rng.randrange(1, 7) * MIB - rng.randrange(1, 5000)])
            buf = rng.randbytes(rng.choice([1, 4097, MIB - 1, MIB + 3]))
            await content.write(ino, off, buf)
        elif r < 0.8:
            size = rng.choice([0, rng.randrange(8 * MIB), 2 * MIB, 2 * MIB + 17])
            await content.truncate(ino, size)
            model = model[:size] + bytes(max(0, size - len(model)))
            continue
        else:
            await content.flush(ino, final=rng.random() < 0.5)
            continue
        if off > len(model):
            model += bytes(off - len(model))
        model[off : off + len(buf)] = buf
        assert content.slots.used <= content.slots.limit, f"seed={seed} step={step}"
        fs = content.states[ino]  # a blob stored ahead is only ever of the chunk's current version
        assert all(fs.dirty.get(i) == v for i, (v, _) in fs.stored.items()), f"seed={seed} step={step}"
        pos = rng.randrange(len(model) + 1)
        got = await content.read(Handle(ino, False), pos, 2 * MIB + 5)
        assert bytes(got) == bytes(model[pos : pos + 2 * MIB + 5]), f"seed={seed} step={step}"
    await content.flush(ino)
    await asyncio.gather(*tasks)
    await _holds(vault, tmp, bytes(model), seed)


async def test_write_behind_and_spills_keep_the_file_consistent(tmp_path: Path) -> None:
    """A memory budget of two chunks: slots spill to the spool, full chunks are stored ahead."""
    await _random_model_run(tmp_path, random.randrange(1 << 30), uploader=True, memory_cache=2 * MIB,
                            flush_batch=2 * MIB)


async def test_slots_without_write_behind_spill_and_keep_the_file_consistent(tmp_path: Path) -> None:
    await _random_model_run(tmp_path, random.randrange(1 << 30), uploader=False, memory_cache=2 * MIB,
                            flush_batch=2 * MIB)


async def test_a_streamed_file_is_stored_ahead_and_linked_by_one_flush(tmp_path: Path) -> None:
    """Full chunks are stored while the writer goes on; the flush then links them without their content,
    and memory never holds more than the budget."""
    vault, content, inodes, _ = await setup(tmp_path, memory_cache=4 * MIB)
    tasks: set[asyncio.Future[None]] = set()
    content.start(lambda coro: tasks.add(asyncio.ensure_future(coro)))
    ino = await _opened(vault, inodes, "s.bin", b"")
    data = random.Random(4).randbytes(12 * MIB + 5)
    peak = 0
    for off in range(0, len(data), 256 * 1024):
        await content.write(ino, off, data[off : off + 256 * 1024])
        peak = max(peak, content.slots.used)
    await asyncio.gather(*tasks)
    fs = content.states[ino]
    assert len(fs.stored) == 12  # every full chunk stored ahead; the partial last one waits in memory
    assert set(fs.mem) == {12}
    assert peak <= content.slots.limit
    patched: list[dict[int, object]] = []
    real = vault.patch

    async def spy(path, size, chunks, **kw):  # type: ignore[no-untyped-def]
        patched.append(dict(chunks))
        return await real(path, size, chunks, **kw)

    vault.patch = spy  # type: ignore[method-assign]
    await content.flush(ino)
    assert len(patched) == 1 and sum(isinstance(c, bytes) for c in patched[0].values()) == 1
    assert await vault.read_bytes("s.bin") == data
    assert content.slots.used == 0
    await vault.aclose()


async def test_a_failed_write_behind_leaves_the_data_dirty_for_the_flush(tmp_path: Path) -> None:
    """The write-behind's pipeline fails (an injected backend error): nothing is lost, the chunks stay
    in memory and the flush stores them."""
    vault, content, inodes, _ = await setup(tmp_path, memory_cache=64 * MIB)
    tasks: set[asyncio.Future[None]] = set()
    content.start(lambda coro: tasks.add(asyncio.ensure_future(coro)))
    ino = await _opened(vault, inodes, "e.bin", b"")
    real = vault.ingest
    failures = 0

    def failing(*a, **kw):  # type: ignore[no-untyped-def]
        nonlocal failures
        if kw.get("on_file") is not None:
            failures += 1
            raise sigmavault.VaultError("injected: the object store is down")
        return real(*a, **kw)

    vault.ingest = failing  # type: ignore[method-assign]
    data = random.Random(5).randbytes(3 * MIB)
    for off in range(0, len(data), MIB):
        await content.write(ino, off, data[off : off + MIB])
    await asyncio.gather(*tasks)
    assert failures >= 1
    fs = content.states[ino]
    assert not fs.stored and set(fs.mem) == {0, 1, 2} and not any(s.lent for s in fs.mem.values())
    assert await content.read(Handle(ino, False), 0, len(data)) == data
    await content.flush(ino)
    assert await vault.read_bytes("e.bin") == data
    await vault.aclose()
