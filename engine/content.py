"""Single pieces in (the patch path of the mount) and file content out (the read path).

Whole files and trees are written by the actor pipeline (:mod:`.pipeline`); this module stores one
piece at a time for :meth:`Vault.patch` — a full chunk sealed and uploaded create-only unless the
index knows it, anything shorter appended to the open data pack — and owns the shared data-pack
lock. The read side streams a file's blobs through the fetcher's readahead window and the unmixer,
each blob verified by its keyed id, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
from collections.abc import AsyncGenerator, AsyncIterable, Sequence
from typing import BinaryIO

from ..actors.fetcher import ordered
from ..actors.mixer import Mixer
from ..actors.unmixer import open_chunk
from .errors import IntegrityError
from .index import BlobIndex
from .keys import KIND_CHUNK
from .objects import object_len
from .packs import PackWriter, PendingRef
from .pages import BlobRef
from .store import ObjectStore

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO | AsyncIterable[bytes]
BlobLike = BlobRef | PendingRef


class ContentWriter:
    """Turns sources into blob lists. Shared by all writers of one vault; pack access is serialized."""

    def __init__(self, store: ObjectStore, data_pack: PackWriter, index: BlobIndex) -> None:
        self._store = store
        self._pack = data_pack
        self._pack_lock = asyncio.Lock()
        self._index = index
        self._full_len = object_len(store.chunk_size, store.chunk_size, store.sealer.pad_floor)

    async def write_piece(self, piece: bytes) -> BlobLike:
        """Store one piece of a file: a full chunk as its own object, anything shorter in the data pack."""
        if len(piece) == self._store.chunk_size:
            return await self._full_chunk(piece)
        return await self._small_blob(piece)

    async def _full_chunk(self, piece: bytes) -> BlobLike:
        keys = self._store.keys
        chunk_id = await asyncio.to_thread(keys.chunk_id_of, piece)
        name = keys.chunk_name(chunk_id)
        ref = BlobRef(self._store.epoch, KIND_CHUNK, chunk_id, name, 0, len(piece), self._full_len)
        if await self._index.known(chunk_id) is not None:
            return ref
        obj = await asyncio.to_thread(self._store.sealer.seal, KIND_CHUNK, name, piece)
        await self._store.put(name, obj)
        self._index.stored([ref])
        return ref

    async def _small_blob(self, piece: bytes) -> BlobLike:
        keys = self._store.keys
        blob_id = keys.chunk_id_of(piece)
        found = await self._index.known(blob_id)
        return found if found is not None else await self.pack_add(piece, blob_id)

    async def pack_add(self, piece: bytes, blob_id: bytes) -> PendingRef:
        async with self._pack_lock:
            return await self._pack.add(piece, blob_id)

    async def flush(self) -> None:
        async with self._pack_lock:
            await self._pack.flush()


async def read_blobs(store: ObjectStore, blobs: Sequence[BlobRef], offset: int, window: int,
                     mixer: Mixer | None = None) -> AsyncGenerator[bytes, None]:
    """Yield the file content from byte ``offset`` on, with ``window`` blobs fetched and opened ahead.

    Full chunks are opened by the unmixer in the mixer's executor when a mixer is given; pack
    members go through the store (which caches opened packs). Every blob is verified by its id.
    """
    pos = 0
    start = 0
    while start < len(blobs) and pos + blobs[start].length <= offset:
        pos += blobs[start].length
        start += 1
    skip = offset - pos

    async def fetch(ref: BlobRef) -> bytes:
        if mixer is None or ref.kind != KIND_CHUNK:
            return await store.read(ref)
        keys = store.sealer_for(ref.epoch).keys
        if not hmac.compare_digest(keys.chunk_name(ref.id).encode(), ref.object_name.encode()):
            raise IntegrityError(IntegrityError.GENERIC)
        data = await store.fetch(ref.object_name, ref.object_len)
        return await open_chunk(mixer, ref.object_name, data, len(data), ref.id, ref.length, keys.chunk_id_of)

    async with contextlib.aclosing(ordered(blobs[start:], fetch, window)) as results:
        async for data in results:
            if skip:
                data = data[skip:]
                skip = 0
            if data:
                yield data
