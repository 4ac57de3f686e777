"""File content in and out, below the catalog: pieces, the data pack, and streaming reads.

Whole files and trees are written by the actor pipeline (:mod:`.pipeline`); :class:`ContentWriter`
lends it what its coordinate and writer stages need (ids, names, the dedup index, the data pack)
and itself stores the pieces of :meth:`Vault.patch` — a full chunk sealed and uploaded create-only
unless the index knows it, anything shorter appended to the open data pack — owning the shared
data-pack lock; :func:`plan_patch` decides which pieces a patch keeps. The read side is
:mod:`.reader`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterable, Mapping
from typing import BinaryIO

from ...actors.coordinate import Placement
from ..catalog.tree import File
from ..errors import UsageError
from ..format.envelope import object_len
from ..format.pages import BlobRef
from ..keys.schedule import KIND_CHUNK
from ..repo.packs import BlobLike, PackWriter, PendingRef
from ..repo.store import ObjectStore
from .index import BlobIndex
from .pipeline import first_error

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO | AsyncIterable[bytes]


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

    async def write_pieces(self, pieces: list[bytes | BlobLike], concurrency: int) -> list[BlobLike]:
        """Store the new pieces (bytes) of a patch concurrently, keep the others; results in order."""
        limit = asyncio.Semaphore(concurrency)

        async def one(p: bytes | BlobLike) -> BlobLike:
            if not isinstance(p, bytes):
                return p
            async with limit:
                return await self.write_piece(p)

        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(one(p)) for p in pieces]
        except BaseExceptionGroup as eg:
            raise first_error(eg) from None
        return [t.result() for t in tasks]

    def placement(self, inline_max: int) -> Placement:
        """What the write pipeline's coordinate stage borrows: ids, names, the index and the pack."""
        store, cs = self._store, self._store.chunk_size

        def full_ref(blob_id: bytes) -> tuple[BlobRef, str]:
            name = store.keys.chunk_name(blob_id)
            return BlobRef(store.epoch, KIND_CHUNK, blob_id, name, 0, cs, self._full_len), name

        return Placement(cs, inline_max, store.keys.chunk_id_of, full_ref, self._index.known, self.pack_add)

    def stored(self, ref: BlobRef, size: int) -> None:
        """The writer stage stored ``ref``'s object (``size`` bytes)."""
        self._index.stored([ref if ref.object_len == size else dataclasses.replace(ref, object_len=size)])

    async def pack_add(self, piece: bytes, blob_id: bytes) -> PendingRef:
        async with self._pack_lock:
            return await self._pack.add(piece, blob_id)

    async def flush(self) -> None:
        async with self._pack_lock:
            await self._pack.flush()


def plan_patch(old: File | None, size: int, chunks: Mapping[int, bytes], chunk_size: int,
               where: str) -> list[bytes | BlobLike]:
    """The pieces of a patched file: new bytes where ``chunks`` gives them, else the old blob of that
    index, which must have the length the new size needs. Raises UsageError for an inconsistent patch."""
    cs = chunk_size
    old_blobs = [] if old is None or old.inline is not None else old.blobs
    old_inline = old.inline if old is not None and old.inline is not None else None
    pieces: list[bytes | BlobLike] = []
    for i in range(-(-size // cs)):
        want = min(cs, size - i * cs)
        if i in chunks:
            if len(chunks[i]) != want:
                raise UsageError(f"chunk {i} must be {want} bytes")
            pieces.append(chunks[i])
        elif old_inline is not None and i == 0 and len(old_inline) == want:
            pieces.append(old_inline)
        elif i < len(old_blobs) and old_blobs[i].length == want:
            pieces.append(old_blobs[i])
        else:
            raise UsageError(f"chunk {i} of {where} must be supplied")
    return pieces
