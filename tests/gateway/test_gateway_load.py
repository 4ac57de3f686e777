"""Many concurrent range readers: all complete with the right bytes, and memory stays bounded.

The file is 8 MiB in 1 MiB chunks and 100 clients read ranges of it at once (each range crossing
at least one chunk boundary). Reading the whole range set into memory would take the file size
times the readers (800 MiB); the gateway streams, so the peak of Python allocations (tracemalloc,
server and clients in this process) must stay far below that.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import tracemalloc
from pathlib import Path

from gwtools import MIB, new_vault, serving, session

READERS = 100
SIZE = 8 * MIB


async def test_100_concurrent_range_readers_bounded_memory(tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    vault = await new_vault(tmp_path / "v", chunk_size=MIB)
    await vault.put("big.bin", data)
    await vault.commit()
    rng = random.Random(7)
    spans = []
    for _ in range(READERS):
        start = rng.randrange(0, SIZE - 3 * MIB)
        spans.append((start, start + rng.randrange(MIB + 1, 3 * MIB)))
    expected = [hashlib.sha256(data[a:b]).hexdigest() for a, b in spans]
    del data
    async with vault, serving(vault) as base, session() as s:

        async def read(start: int, end: int) -> tuple[int, str]:
            h = hashlib.sha256()
            async with s.get(f"{base}/big.bin", headers={"Range": f"bytes={start}-{end - 1}"}) as r:
                async for piece in r.content.iter_chunked(64 * 1024):
                    h.update(piece)
                return r.status, h.hexdigest()

        tracemalloc.start()
        try:
            results = await asyncio.wait_for(asyncio.gather(*(read(a, b) for a, b in spans)), 300)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert [st for st, _ in results] == [206] * READERS
    assert [h for _, h in results] == expected
    assert peak < SIZE * READERS // 8, f"peak {peak / MIB:.0f} MiB"  # measured: about 40 MiB
    print(f"peak traced memory with {READERS} readers: {peak / MIB:.1f} MiB")
