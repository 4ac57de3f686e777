"""Open packs: small blobs appended back to back, sealed into objects of the full-chunk size (CRYPTO.md §3.3a).

A writer keeps one open pack per kind (data 0x04, pages 0x02). A blob that would not fit seals the
open pack padded to exactly ``8 + chunk_size`` — the size of a full chunk object, so the provider
cannot tell them apart — and starts a new one. ``flush()`` seals an unfinished pack PADMÉ-padded
(4 KiB floor) when a commit needs it durable.

A blob's ref names its pack at once (pack names are ``PRF(K_obj-name, kind ‖ random pack_id)``),
but its total object length ``ol`` is known only when the pack is sealed: ``add`` returns a
:class:`PendingRef` that is completed then. Page refs (kind 2) carry no ``ol`` and are final at once.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from ..format.framing import FRAME_HEADER
from ..format.pages import BlobRef
from ..keys.schedule import KIND_PAGE_PACK
from .store import ObjectStore


class PendingRef:
    """A blob in a pack that may not be sealed yet; ``ref()`` works once it is."""

    __slots__ = ("_ol", "epoch", "id", "kind", "length", "object_name", "off")

    def __init__(self, epoch: int, kind: int, blob_id: bytes, object_name: str, off: int, length: int) -> None:
        self.epoch, self.kind, self.id, self.object_name = epoch, kind, blob_id, object_name
        self.off, self.length = off, length
        self._ol: int | None = None

    @property
    def done(self) -> bool:
        return self._ol is not None or self.kind == KIND_PAGE_PACK

    def ref(self) -> BlobRef:
        if not self.done:
            raise RuntimeError("pack not sealed yet")
        ol = None if self.kind == KIND_PAGE_PACK else self._ol
        return BlobRef(self.epoch, self.kind, self.id, self.object_name, self.off, self.length, ol)


BlobLike = BlobRef | PendingRef


def final_ref(b: BlobLike) -> BlobRef:
    """The blob ref of a blob, whether it was final all along or waited for its pack to be sealed."""
    return b.ref() if isinstance(b, PendingRef) else b


OnSealed = Callable[[list[BlobRef]], None]


class PackWriter:
    """The open pack of one kind. Not shared between tasks without the owner's lock."""

    def __init__(self, store: ObjectStore, kind: int, on_sealed: OnSealed | None = None) -> None:
        self._store = store
        self._kind = kind
        self._on_sealed = on_sealed
        self._buf = bytearray()
        self._name: str | None = None
        self._members: list[PendingRef] = []
        self.objects_written = 0

    @property
    def pending(self) -> bool:
        return bool(self._members)

    async def add(self, blob: bytes | bytearray | memoryview, blob_id: bytes) -> PendingRef:
        size = self._store.chunk_size
        if len(blob) >= size:
            raise ValueError("a full chunk is its own object, not a pack member")
        if len(self._buf) + len(blob) > size:
            await self._seal(full=True)
        if self._name is None:
            self._name = self._store.keys.pack_name(self._kind, secrets.token_bytes(32))
        member = PendingRef(self._store.epoch, self._kind, blob_id, self._name, len(self._buf), len(blob))
        self._buf += blob
        self._members.append(member)
        return member

    async def flush(self) -> None:
        """Seal and write the open pack (PADMÉ-padded) if it holds anything."""
        if self._members:
            await self._seal(full=False)

    async def _seal(self, full: bool) -> None:
        assert self._name is not None
        floor = FRAME_HEADER + self._store.chunk_size if full else None
        obj = self._store.sealer.seal(self._kind, self._name, self._buf, pad_floor=floor)
        await self._store.put(self._name, obj)
        for m in self._members:
            m._ol = len(obj)
        if self._on_sealed is not None:
            self._on_sealed([m.ref() for m in self._members])
        self.objects_written += 1
        self._buf = bytearray()
        self._name = None
        self._members = []

    def member_bytes(self, member: PendingRef) -> bytes | None:
        """The bytes of ``member`` while this open pack holds them (until its object is stored and the
        member is ``done``), else None. Lets readers serve unsealed blobs without a flush."""
        if member.object_name != self._name or member.off + member.length > len(self._buf):
            return None
        return bytes(self._buf[member.off : member.off + member.length])
