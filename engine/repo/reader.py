"""The one place a blob is read back: fetched, opened off the event loop, verified once (CRYPTO.md §4.5).

Every reader of content — ``Vault.open_read`` and :class:`VaultFile` (through the streaming
:mod:`..content.reader`), export, verify, the catalog's page loads and the mount — asks a
:class:`BlobReader` for a blob. For a ref it checks what can be checked before fetching (a known
kind; for a full chunk the name recomputed from the id, §4.1), fetches the object with the length
bound of the ref, opens it **off the event loop**, takes ``stored[off:off+len]`` and recomputes
the keyed id over it, compared in constant time. That is the only id check on the read side:
nothing downstream verifies again, and nothing is handed out unverified.

Where objects are opened: full chunks (kind 1) in the mixer's executor when it runs off the loop
(process or thread; the unmixer does the id check while the chunk sits in the slot), data packs
(kind 4) there too once the mixer is running; otherwise in a worker thread with
:meth:`Sealer.open`, byte for byte the same result — the inline mixer runs in the loop, other
epochs than the mixer's have no mixer, and a pack is opened once and then served from the LRU, so
starting worker processes for it (over a second, measured) would cost far more than it saves:
reading only small files never starts the mixer. Page packs (kind 2) always open in a worker
thread: pages are loaded from inside the write pipeline (the collector's ``tree.put``, the dedup
index's fill), and waiting there for a mixer slot that the pipeline's own sealed chunks hold (they
are released only after the writer stage, which waits on the collector) could deadlock.

Opened packs (kinds 2 and 4) stay in a small LRU so reading many small blobs of one pack fetches
and opens it once (``pack_hits`` and ``pack_misses`` count how often the LRU answered); concurrent
readers of one object share one fetch. A blob still in the open data pack (a :class:`PendingRef`
not yet sealed) is served from the pack writer's memory (``pending``) and verified like any other:
reading never flushes (uploads) the open pack.

A compressed data-pack member (its ref carries ``zlen``) is inflated before the id check, never
past the length its ref declares (:func:`~..format.squeeze.inflate`).

:meth:`BlobReader.read_many` is the same read for a batch of small blobs (export's small files): each
pack from the LRU or fetched once, then every member inflated and checked in one worker-thread hop.
Hashing a small blob in the loop cost little, but getting the GIL back after each hash (the keyed
BLAKE3 releases it) while export's writer threads held it cost three times the hash.

A server that withholds, truncates, swaps or flips an object gets the one :class:`IntegrityError`
(callers add the file path).
"""

from __future__ import annotations

import asyncio
import hmac
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

from ...actors.mixer import Mixer
from ...actors.unmixer import open_chunk
from ..errors import IntegrityError
from ..format.canonical import fail
from ..format.envelope import Sealer
from ..format.pages import BlobRef
from ..format.refs import Blob, PendingRef
from ..format.squeeze import inflate
from ..keys.schedule import KIND_CHUNK, KIND_PAGE_PACK, EpochKeys
from .store import ObjectStore

#: the mixer of the vault (started on first use), or None: open in worker threads
MixerSource = Callable[[], Awaitable[Mixer]]
#: the vault's mixer if it is running already, else None (never starts it)
RunningMixer = Callable[[], Mixer | None]
#: the bytes of a blob still in the open pack, or None when the pack writer no longer holds it
PendingSource = Callable[[PendingRef], bytes | None]

_HASH_INLINE = 65536  # ids of shorter blobs are computed in the loop (microseconds); longer in a thread


class _Buffers:
    """Reused output buffers for opening objects in worker threads: a fresh 4 MiB buffer per object
    costs a page fault per 4 KiB (a third of an export's time) and churns the heap."""

    def __init__(self, size: int, keep: int = 4) -> None:
        self._size = size
        self._keep = keep
        self._free: list[bytearray] = []
        self._lock = threading.Lock()

    def take(self) -> bytearray:
        with self._lock:
            return self._free.pop() if self._free else bytearray(self._size)

    def give(self, buf: bytearray) -> None:
        with self._lock:
            if len(self._free) < self._keep:
                self._free.append(buf)


def _open_stored(sealer: Sealer, kind: int, name: str, data: bytes, buffers: _Buffers) -> bytes:
    """Open an object into fresh bytes (run in a worker thread)."""
    buf = buffers.take()
    try:
        with sealer.open_into(kind, name, data, buf) as stored:
            return bytes(stored)
    finally:
        buffers.give(buf)


def _open_chunk(sealer: Sealer, name: str, data: bytes, length: int, blob_id: bytes,
                chunk_id: Callable[[memoryview], bytes], buffers: _Buffers) -> bytes:
    """Open a full chunk, check its length and keyed id, return its bytes (run in a worker thread)."""
    buf = buffers.take()
    try:
        with sealer.open_into(KIND_CHUNK, name, data, buf) as stored:
            if len(stored) != length:
                fail("stored length")
            if not hmac.compare_digest(chunk_id(stored), blob_id):
                fail("chunk id")
            return bytes(stored)
    finally:
        buffers.give(buf)


def _check_id(keys: EpochKeys, kind: int, blob_id: bytes, data: bytes) -> None:
    id_of = keys.page_id_of if kind == KIND_PAGE_PACK else keys.chunk_id_of
    if not hmac.compare_digest(id_of(data), blob_id):
        fail("blob id")


#: a pack member to open off the loop: its ref, the keys of its epoch, its stored bytes
Member = tuple[BlobRef, EpochKeys, bytes]


def _open_members(members: list[Member], chunk_size: int) -> list[bytes | IntegrityError]:
    """Inflate and check each member (run in a worker thread); a failed one gets its error in place."""
    out: list[bytes | IntegrityError] = []
    for ref, keys, stored in members:
        try:
            data = stored if ref.zlen is None else inflate(stored, ref.length, chunk_size)
            _check_id(keys, ref.kind, ref.id, data)
            out.append(data)
        except IntegrityError as exc:
            out.append(exc)
    return out


class BlobReader:
    """Reads blobs of one vault through their refs: fetch, open off the loop, verify the keyed id once."""

    def __init__(self, store: ObjectStore, *, mixer: MixerSource | None = None, running: RunningMixer | None = None,
                 pending: PendingSource | None = None, pack_cache: int | None = None) -> None:
        self.store = store
        self._mixer = mixer
        self._running = running
        self._pending = pending
        self._pack_cache = store.pack_cache if pack_cache is None else pack_cache
        self._packs: OrderedDict[str, bytes] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[bytes]] = {}
        self._buffers = _Buffers(store.max_object)
        #: reads of a pack blob served from the LRU, and those that had to fetch the pack (metrics)
        self.pack_hits = self.pack_misses = 0

    @property
    def chunk_size(self) -> int:
        return self.store.chunk_size

    def fresh(self) -> BlobReader:
        """A reader over a fresh store (nothing cached, no open pack): every read downloads anew."""
        return BlobReader(self.store.fresh(), mixer=self._mixer, running=self._running, pack_cache=self._pack_cache)

    async def read(self, blob: Blob) -> bytes:
        """The blob's bytes, verified against its keyed id. Raises IntegrityError."""
        if isinstance(blob, PendingRef):
            if not blob.done:
                return await self._from_open_pack(blob)
            blob = blob.ref()
        keys = self.store.check_ref(blob)
        if blob.kind == KIND_CHUNK:
            return await self._shared(self._key(blob), lambda: self._open_chunk(blob, keys))
        stored = await self._pack(blob)
        end = blob.off + blob.stored_len
        if end > len(stored):
            fail("blob range")
        data = await self._inflated(blob, stored[blob.off : end])
        await self._verify(keys, blob.kind, blob.id, data)
        return data

    async def read_many(self, blobs: Sequence[Blob]) -> list[bytes | IntegrityError]:
        """:meth:`read` of each blob, for many small ones at once: the pack members are inflated and
        checked in one worker-thread hop; full chunks and members of the open pack are read one by
        one. A blob that fails its checks gets its IntegrityError in its place (the caller names the
        file); a backend error raises."""
        out: list[bytes | IntegrityError | None] = [None] * len(blobs)
        where: list[int] = []
        members: list[Member] = []
        for i, blob in enumerate(blobs):
            if isinstance(blob, PendingRef) and blob.done:
                blob = blob.ref()
            try:
                if isinstance(blob, PendingRef) or blob.kind == KIND_CHUNK:
                    out[i] = await self.read(blob)
                    continue
                keys = self.store.check_ref(blob)
                stored = await self._pack(blob)
                end = blob.off + blob.stored_len
                if end > len(stored):
                    fail("blob range")
            except IntegrityError as exc:
                out[i] = exc
                continue
            where.append(i)
            members.append((blob, keys, stored[blob.off : end]))
        if members:
            opened = await asyncio.to_thread(_open_members, members, self.store.chunk_size)
            for i, got in zip(where, opened, strict=True):
                out[i] = got
        done = [got for got in out if got is not None]
        assert len(done) == len(blobs)
        return done

    async def open_object(self, ref: BlobRef) -> None:
        """Download and authenticate the whole object holding ``ref`` (a pack is kept for the blob
        reads that follow; a full chunk is read and verified). Raises IntegrityError."""
        keys = self.store.check_ref(ref)
        if ref.kind == KIND_CHUNK:
            await self._shared(self._key(ref), lambda: self._open_chunk(ref, keys))
        else:
            await self._pack(ref)

    # --- inside -------------------------------------------------------------------------------

    async def _from_open_pack(self, member: PendingRef) -> bytes:
        data = self._pending(member) if self._pending is not None else None
        if data is None:  # the pack writer keeps a member's bytes until its pack is stored (done)
            raise RuntimeError("a pack member is neither in the open pack nor stored")
        if len(data) != member.stored_len:
            fail("blob range")
        data = await self._inflated(member, data)
        await self._verify(self.store.sealer_of(member).keys, member.kind, member.id, data)
        return data

    async def _inflated(self, blob: Blob, data: bytes) -> bytes:
        """A compressed member's plaintext, inflated at most to its declared length (a bigger frame —
        a bomb a key holder wrote — is an IntegrityError); any other blob's bytes as they are."""
        if blob.zlen is None:
            return data
        if blob.length <= _HASH_INLINE:
            return inflate(data, blob.length, self.store.chunk_size)
        return await asyncio.to_thread(inflate, data, blob.length, self.store.chunk_size)

    @staticmethod
    def _key(ref: BlobRef) -> str:
        return f"{ref.kind}:{ref.epoch}:{ref.object_name}"

    async def _executor(self, ref: BlobRef) -> Mixer | None:
        """The mixer if it may open ``ref``'s object off the loop (it holds only the current epoch's
        keys of the vault's own objects), else None (worker thread)."""
        kind = ref.kind
        if self._mixer is None or ref.epoch != self.store.epoch or kind == KIND_PAGE_PACK or ref.drop_key is not None:
            return None
        if kind == KIND_CHUNK:
            mixer: Mixer | None = await self._mixer()
        else:  # a pack: the mixer if it runs already, never started for it
            mixer = self._running() if self._running is not None else None
        return None if mixer is None or mixer.kind == "inline" else mixer

    async def _open_chunk(self, ref: BlobRef, keys: EpochKeys) -> bytes:
        data = await self.store.fetch(ref.object_name, ref.object_len)
        mixer = await self._executor(ref)
        if mixer is not None:
            return await open_chunk(mixer, ref.object_name, data, len(data), ref.id, ref.length, keys.chunk_id_of)
        sealer = self.store.sealer_of(ref)
        return await asyncio.to_thread(_open_chunk, sealer, ref.object_name, data, ref.length, ref.id,
                                       keys.chunk_id_of, self._buffers)

    async def _pack(self, ref: BlobRef) -> bytes:
        """The stored bytes of the pack holding ``ref``: from the LRU, a shared fetch, or fetched and opened."""
        key = self._key(ref)
        hit = self._packs.get(key)
        if hit is not None:
            self._packs.move_to_end(key)
            self.pack_hits += 1
            return hit
        self.pack_misses += 1  # fetched and opened here, or waiting for a concurrent reader's fetch
        return await self._shared(key, lambda: self._open_pack(ref, key))

    async def _open_pack(self, ref: BlobRef, key: str) -> bytes:
        data = await self.store.fetch(ref.object_name, ref.object_len)
        mixer = await self._executor(ref)
        if mixer is not None:
            stored = await mixer.open(ref.kind, ref.object_name, data)
        else:
            sealer = self.store.sealer_of(ref)
            stored = await asyncio.to_thread(_open_stored, sealer, ref.kind, ref.object_name, data, self._buffers)
        self._packs[key] = stored
        while len(self._packs) > self._pack_cache:
            self._packs.popitem(last=False)
        return stored

    async def _shared(self, key: str, work: Callable[[], Awaitable[bytes]]) -> bytes:
        """``work()``, shared by concurrent callers asking for the same object."""
        pending = self._inflight.get(key)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if pending.cancelled() and task is not None and not task.cancelling():
                    return await self._shared(key, work)  # the sharer was cancelled, not us: start anew
                raise
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            result = await work()
            fut.set_result(result)
            return result
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                fut.cancel()
            else:
                fut.set_exception(exc)
                fut.exception()  # mark retrieved: waiters (if any) get it through shield
            raise
        finally:
            del self._inflight[key]

    @staticmethod
    async def _verify(keys: EpochKeys, kind: int, blob_id: bytes, data: bytes) -> None:
        if len(data) > _HASH_INLINE:
            await asyncio.to_thread(_check_id, keys, kind, blob_id, data)
        else:
            _check_id(keys, kind, blob_id, data)
