"""What the write pipeline borrows from the vault, and the plan of a patch.

Every byte of file content goes through the write pipeline (:mod:`.pipeline`): whole files, trees,
and the pieces of :meth:`Vault.patch` (a :class:`~...actors.messages.Planned` source).
:class:`ContentWriter` lends its coordinate stage what it needs — keyed ids and names, the dedup
index, the vault's open data pack — and takes back from its collector what was stored;
:func:`plan_patch` decides which pieces a patch keeps. The read side is :mod:`.reader`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping

from ...actors.coordinate import Placement
from ...actors.messages import Source as Source
from ...actors.messages import ToSeal
from ..catalog.tree import File
from ..errors import UsageError
from ..format import squeeze
from ..format.envelope import object_len
from ..format.pages import BlobRef
from ..format.refs import Blob, PendingRef
from ..keys.schedule import KIND_CHUNK
from ..repo.packs import PackWriter
from ..repo.store import ObjectStore
from .index import BlobIndex


class ContentWriter:
    """The write pipeline's view of one vault: ids, names, the index and the shared data pack."""

    def __init__(self, store: ObjectStore, data_pack: PackWriter, index: BlobIndex) -> None:
        self._store = store
        self._pack = data_pack
        self._index = index
        self._full_len = object_len(store.chunk_size, store.chunk_size, store.sealer.pad_floor)

    def placement(self, inline_max: int) -> Placement:
        """What the write pipeline's coordinate stage borrows: ids, names, the index and the pack."""
        store = self._store

        def full_ref(blob_id: bytes) -> BlobRef:
            name = store.keys.chunk_name(blob_id)
            return BlobRef(store.epoch, KIND_CHUNK, blob_id, name, 0, store.chunk_size, self._full_len)

        mode, cs = store.compression, store.chunk_size
        return Placement(cs, inline_max, store.keys.chunk_id_of, full_ref, self._index.known, self._pack_add,
                         None if mode == squeeze.NONE else lambda data: squeeze.squeeze(data, mode, cs))

    async def reseal(self, data: bytes, blob_id: bytes | None = None) -> Blob:
        """Store one blob's bytes again under the current epoch (W2 of a rekey, a rewrite): a full
        chunk as its own object, anything shorter as a member of the open data pack. ``blob_id``: its
        keyed id under the current epoch, if the caller computed it already. Returns the new blob."""
        store = self._store
        if blob_id is None:
            blob_id = await asyncio.to_thread(store.keys.chunk_id_of, data)
        if len(data) < store.chunk_size:
            return await self._pack.put(data, blob_id)
        name = store.keys.chunk_name(blob_id)
        obj = await asyncio.to_thread(store.sealer.seal, KIND_CHUNK, name, data)
        await store.put(name, obj)
        ref = BlobRef(store.epoch, KIND_CHUNK, blob_id, name, 0, store.chunk_size, len(obj))
        self.stored(ref, len(obj))
        return ref

    def stored(self, ref: BlobRef, size: int) -> None:
        """The writer stage stored ``ref``'s object (``size`` bytes)."""
        self._index.stored([ref if ref.object_len == size else dataclasses.replace(ref, object_len=size)])

    def landed(self, name: str, size: int) -> None:
        """The writer stage stored data pack ``name`` (``size`` bytes)."""
        self._pack.landed(name, size)

    def _pack_add(self, piece: bytes, blob_id: bytes, plain_len: int | None) -> tuple[PendingRef, ToSeal | None]:
        member, closed = self._pack.add(piece, blob_id, plain_len)
        if closed is None:
            return member, None
        return member, ToSeal(closed.kind, closed.name, closed.data, closed.pad_floor)

    async def flush(self) -> None:
        """Store the open data pack and any closed one not stored yet (before a commit)."""
        await self._pack.flush()


def plan_patch(old: File | None, size: int, chunks: Mapping[int, bytes | Blob], chunk_size: int,
               where: str) -> list[bytes | Blob]:
    """The pieces of a patched file: what ``chunks`` gives (new bytes, or a blob stored already), else
    the old blob of that index, which must have the length the new size needs. Raises UsageError for
    an inconsistent patch."""
    cs = chunk_size
    old_blobs = [] if old is None or old.inline is not None else old.blobs
    old_inline = old.inline if old is not None and old.inline is not None else None
    pieces: list[bytes | Blob] = []
    for i in range(-(-size // cs)):
        want = min(cs, size - i * cs)
        if i in chunks:
            given = chunks[i]
            if (len(given) if isinstance(given, bytes | bytearray | memoryview) else given.length) != want:
                raise UsageError(f"chunk {i} must be {want} bytes")
            pieces.append(given)
        elif old_inline is not None and i == 0 and len(old_inline) == want:
            pieces.append(old_inline)
        elif i < len(old_blobs) and old_blobs[i].length == want:
            pieces.append(old_blobs[i])
        else:
            raise UsageError(f"chunk {i} of {where} must be supplied")
    return pieces
