"""Open packs: small blobs appended back to back, sealed into objects of the full-chunk size (CRYPTO.md §3.3a).

A vault keeps one open pack per kind (data 0x04, pages 0x02). A blob that would not fit *closes*
the open pack — to be sealed padded to exactly ``8 + chunk_size``, the size of a full chunk object,
so the provider cannot tell them apart — and starts a new one. ``add`` only appends (no I/O, no
await): it returns the member's :class:`PendingRef` and the pack it closed, if any, which the caller
seals and stores — the write pipeline sends it through its mixer and writer stages like a chunk;
:meth:`PackWriter.put` (catalog pages) stores it at once. Whoever stores a pack reports it with
:meth:`landed`, which completes its members' refs and tells ``on_landed`` (the dedup index).

``flush()`` (before a commit) seals the unfinished open pack PADMÉ-padded (4 KiB floor) and stores
it together with every closed pack not landed yet — one a pipeline is still uploading, or one whose
pipeline failed — so a commit never waits on a pipeline and never loses a member; uploads are
create-only, so a pack stored twice is stored once. Until a pack has landed its members' bytes are
served from memory (:meth:`member_bytes`).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..format.framing import FRAME_HEADER
from ..format.pages import BlobRef
from ..format.refs import PendingRef
from .store import ObjectStore

OnLanded = Callable[[list[BlobRef]], None]
#: seals ``(kind, name, stored, pad_floor)`` into an object, off the event loop
SealFn = Callable[[int, str, bytes, int | None], Awaitable[bytes]]


@dataclass(slots=True)
class ClosedPack:
    """A pack that takes no more members: seal ``data`` as object ``name`` with ``pad_floor``."""

    kind: int
    name: str
    data: bytes | bytearray  # the pack's own buffer, handed over (never written again)
    pad_floor: int | None  # None: the vault's floor (a flushed, unfinished pack)
    members: list[PendingRef] = field(default_factory=list)


class PackWriter:
    """The open pack of one kind, and the closed packs of that kind not stored yet."""

    def __init__(self, store: ObjectStore, kind: int, seal: SealFn, on_landed: OnLanded | None = None) -> None:
        self._store = store
        self._kind = kind
        self._seal = seal
        self._on_landed = on_landed
        self._buf = bytearray()
        self._name: str | None = None
        self._members: list[PendingRef] = []
        self._closed: dict[str, ClosedPack] = {}
        self.objects_written = 0

    @property
    def pending(self) -> bool:
        """Members wait in the open pack or in a closed one not stored yet."""
        return bool(self._members or self._closed)

    def add(self, blob: bytes | bytearray | memoryview, blob_id: bytes,
            plain_len: int | None = None) -> tuple[PendingRef, ClosedPack | None]:
        """Append ``blob``; returns its ref and the pack this closed (the caller stores it), if any.

        With ``plain_len``, ``blob`` is the zstd frame of a blob of that many plaintext bytes (its
        ref then carries both lengths)."""
        size = self._store.chunk_size
        if len(blob) >= size:
            raise ValueError("a full chunk is its own object, not a pack member")
        closed = self._close(FRAME_HEADER + size) if len(self._buf) + len(blob) > size else None
        if self._name is None:
            self._name = self._store.keys.pack_name(self._kind, secrets.token_bytes(32))
        member = PendingRef(self._store.epoch, self._kind, blob_id, self._name, len(self._buf),
                            len(blob) if plain_len is None else plain_len, None if plain_len is None else len(blob))
        self._buf += blob
        self._members.append(member)
        return member, closed

    async def put(self, blob: bytes | bytearray | memoryview, blob_id: bytes) -> PendingRef:
        """Append ``blob`` and store at once the pack that closed, if any."""
        member, closed = self.add(blob, blob_id)
        if closed is not None:
            await self.store(closed)
        return member

    async def flush(self) -> None:
        """Store the open pack (PADMÉ-padded) and every closed pack not stored yet."""
        if self._members:
            self._close(None)
        for pack in list(self._closed.values()):
            await self.store(pack)

    async def store(self, pack: ClosedPack) -> None:
        """Seal ``pack`` and upload it create-only (its name is random: "found" means stored before)."""
        obj = await self._seal(pack.kind, pack.name, bytes(pack.data), pack.pad_floor)
        await self._store.put(pack.name, obj)
        self.landed(pack.name, len(obj))

    def landed(self, name: str, object_len: int) -> None:
        """Pack ``name`` is stored (as ``object_len`` bytes): its members' refs are final."""
        pack = self._closed.pop(name, None)
        if pack is None:
            return  # stored twice (a flush and its pipeline): the first landing did it all
        for m in pack.members:
            m.landed(object_len)
        self.objects_written += 1
        if self._on_landed is not None:
            self._on_landed([m.ref() for m in pack.members])

    def _close(self, pad_floor: int | None) -> ClosedPack:
        assert self._name is not None
        pack = ClosedPack(self._kind, self._name, self._buf, pad_floor, self._members)  # no copy of 4 MiB
        self._closed[pack.name] = pack
        self._buf = bytearray()
        self._name = None
        self._members = []
        return pack

    def member_bytes(self, member: PendingRef) -> bytes | None:
        """The stored bytes of ``member`` (a compressed one's zstd frame) while they are in memory (its
        pack open, or closed and not stored yet), else None. Lets readers serve blobs of unstored
        packs without a flush."""
        if member.object_name == self._name:
            buf: bytes | bytearray = self._buf
        elif (pack := self._closed.get(member.object_name)) is not None:
            buf = pack.data
        else:
            return None
        end = member.off + member.stored_len
        if end > len(buf):
            return None
        return bytes(buf[member.off : end])
