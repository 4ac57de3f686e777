"""The unmixer: opens fetched full-chunk objects in the mixer's executor and verifies their ids.

It is the full-chunk step of the one blob reader (``engine/repo/reader.py``), which calls it for
every full chunk when the mixer runs off the event loop; nothing else verifies a chunk's id.

A full chunk is opened into a mixer slot (no fresh 4 MiB buffer per chunk), its keyed id is
recomputed over the stored bytes and compared in constant time with the id in the catalog
(CRYPTO.md §4.1 step 5), and only then are the bytes copied out and the slot released. Any
mismatch is the one :class:`IntegrityError`. A cancelled call waits for the hashing thread to let go
of the slot before the slot is released.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable

from ..engine.format.canonical import fail
from ..engine.keys.schedule import KIND_CHUNK
from .mixer import Mixer


async def open_chunk(mixer: Mixer, name: str, data: bytes, expected_len: int, blob_id: bytes, length: int,
                     chunk_id: Callable[[memoryview], bytes]) -> bytes:
    with await mixer.open_view(KIND_CHUNK, name, data, expected_len=expected_len) as stored:
        view = stored.view
        if len(view) != length:
            fail("stored length")
        hashing = asyncio.ensure_future(asyncio.to_thread(chunk_id, view))
        try:
            actual = await asyncio.shield(hashing)
        except asyncio.CancelledError:
            await asyncio.wait([hashing])  # the thread still reads the slot: only then may it be released
            raise
        if not hmac.compare_digest(actual, blob_id):
            fail("chunk id")
        return bytes(view)
