"""The chunker: exact piece boundaries, explicit file ends, and small files read in batches."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from sigmavault.actors import chunker as chunker_mod
from sigmavault.actors.chunker import chunker
from sigmavault.actors.mailbox import open_channel
from sigmavault.actors.messages import FileJob, Piece
from sigmavault.engine.errors import NotFound

CS = 1 << 20


async def run_chunker(jobs: list[FileJob], chunk_id: Callable[[bytes], bytes] | None = None,
                      squeeze: Callable[[bytes], bytes | None] | None = None, inline_max: int = -1) -> list[Piece]:
    jobs_send, jobs_recv = open_channel(1000)
    out_send, out_recv = open_channel(10_000)
    for j in jobs:
        jobs_send.send_nowait(j)
    jobs_send.close()
    await chunker(CS, chunk_id, squeeze, inline_max)(jobs_recv, out_send)
    out_send.close()
    return [p async for p in out_recv]


async def test_pieces_cover_each_file_exactly_and_mark_its_end(tmp_path: Path) -> None:
    sizes = [0, 1, CS - 1, CS, CS + 1, 3 * CS]
    jobs = []
    for i, n in enumerate(sizes):
        (tmp_path / str(i)).write_bytes(os.urandom(n))
        jobs.append(FileJob(i, tmp_path / str(i), n))
    pieces = await run_chunker(jobs)
    for i in range(len(sizes)):
        mine = [p for p in pieces if p.token == i]
        assert [p.index for p in mine] == list(range(len(mine)))
        assert [p.final for p in mine] == [False] * (len(mine) - 1) + [True]
        assert all(len(p.data) == CS for p in mine[:-1]) and len(mine[-1].data) < CS
        assert b"".join(p.data for p in mine) == (tmp_path / str(i)).read_bytes()


async def test_many_small_files_are_read_in_few_thread_hops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hops = 0
    real = asyncio.to_thread

    async def counting(fn, *args):  # type: ignore[no-untyped-def]
        nonlocal hops
        hops += 1
        return await real(fn, *args)

    monkeypatch.setattr(chunker_mod.asyncio, "to_thread", counting)
    jobs = []
    for i in range(300):
        (tmp_path / f"f{i}").write_bytes(os.urandom(100 + i))
        jobs.append(FileJob(i, tmp_path / f"f{i}", 100 + i))
    pieces = await run_chunker(jobs)
    assert len(pieces) == 300 and all(p.final for p in pieces)
    assert hops <= 2  # one batch (512 files at most per hop), not 3 hops per file


async def test_a_file_that_vanished_after_the_scan_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="disappeared"):
        await run_chunker([FileJob(0, tmp_path / "gone", 10)])


async def test_a_small_file_that_grew_since_the_scan_is_streamed_whole(tmp_path: Path) -> None:
    (tmp_path / "grew").write_bytes(os.urandom(2 * CS + 5))  # scanned at 10 bytes
    pieces = await run_chunker([FileJob(0, tmp_path / "grew", 10)])
    assert b"".join(p.data for p in pieces) == (tmp_path / "grew").read_bytes()


async def test_small_files_come_with_their_id_computed_in_the_reading_thread(tmp_path: Path) -> None:
    """Given the id function, every small file read whole (up to SMALL, not empty) carries its id;
    streamed pieces and empty files carry none (the coordinate stage computes those)."""
    def chunk_id(data: bytes) -> bytes:
        return hashlib.sha256(b"k" + data).digest()

    sizes = [0, 1, 5000, chunker_mod.SMALL, chunker_mod.SMALL + 1, CS - 1, CS, CS + 7]
    for i, n in enumerate(sizes):
        (tmp_path / str(i)).write_bytes(os.urandom(n))
    jobs = [FileJob(i, tmp_path / str(i), n) for i, n in enumerate(sizes)]
    pieces = await run_chunker(jobs, chunk_id)
    for p in pieces:
        small = 0 < sizes[p.token] <= chunker_mod.SMALL
        assert p.blob_id == (chunk_id(p.data) if small else None)
    assert all(p.blob_id is None for p in await run_chunker(jobs))  # no id function: no ids


async def test_small_files_past_the_inline_size_come_compressed_by_the_reading_thread(tmp_path: Path) -> None:
    """With a squeeze function, every small file longer than the inline size carries the outcome
    (a frame, or None: store it as it is); inline-sized and streamed files were not tried."""
    loop_thread = threading.get_ident()
    tried_on: set[int] = set()

    def squeeze(data: bytes) -> bytes | None:
        tried_on.add(threading.get_ident())
        z = zlib.compress(data)
        return z if len(z) < len(data) // 2 else None

    files = {0: b"a" * 50, 1: b"b" * 5000, 2: os.urandom(5000), 3: b"c" * (chunker_mod.SMALL + 1)}
    for i, data in files.items():
        (tmp_path / str(i)).write_bytes(data)
    pieces = await run_chunker([FileJob(i, tmp_path / str(i), len(d)) for i, d in files.items()], None, squeeze, 100)
    first = {p.token: p for p in pieces if p.index == 0}
    assert not first[0].squeezed  # inline-sized: stays in its page as it is
    assert first[1].squeezed and first[1].frame == zlib.compress(files[1])
    assert first[2].squeezed and first[2].frame is None  # tried: not worth it
    assert not any(p.squeezed for p in pieces if p.token == 3)  # streamed: the coordinate stage decides
    assert tried_on and loop_thread not in tried_on
