"""Sealed objects in a backend: write them, and read blobs back through authenticated refs.

The store is where the engine meets a backend. It seals and opens objects with the epoch keys
(``objects.Sealer``), reads a blob through a blob ref exactly as CRYPTO.md §4.5 says (object name
checked against the id for full chunks, object length from the ref, stored slice, keyed id
recomputed and compared in constant time), and keeps a small LRU of opened packs so reading many
small blobs of one pack fetches it once.

It never trusts the server: a missing object, a wrong length or a failed tag all become an
:class:`IntegrityError` naming the object (callers add the file path).
"""

from __future__ import annotations

import asyncio
import hmac
from collections import OrderedDict

from ..backends.base import Backend, get_bounded
from .canonical import fail
from .errors import IntegrityError, NotFound
from .keys import KIND_CHUNK, KIND_DATA_PACK, KIND_PAGE_PACK, EpochKeys
from .objects import Sealer, object_len
from .pages import BlobRef


class ObjectStore:
    """Seals, writes, fetches and opens objects of one vault."""

    def __init__(self, backend: Backend, keys: dict[int, EpochKeys], epoch: int, chunk_size: int,
                 pad_floor: int, pack_cache: int = 8) -> None:
        self.backend = backend
        self.epoch = epoch
        self.keys = keys[epoch]
        self.chunk_size = chunk_size
        self._sealers = {e: Sealer(k, chunk_size, pad_floor) for e, k in keys.items()}
        self.sealer = self._sealers[epoch]
        self._packs: OrderedDict[str, memoryview] = OrderedDict()
        self._pack_cache = pack_cache
        self._inflight: dict[str, asyncio.Future[memoryview]] = {}
        #: no object of kinds 1, 2, 4 is longer: a sealed message is at most ``8 + chunk_size``
        self.max_object = object_len(chunk_size, chunk_size, pad_floor)

    def sealer_for(self, epoch: int) -> Sealer:
        try:
            return self._sealers[epoch]
        except KeyError:
            fail("epoch not allowed")

    async def fetch(self, name: str, expected_len: int | None = None) -> bytes:
        """Object ``name``, read with a bound (its expected length, else the largest object size)."""
        limit = self.max_object if expected_len is None else min(expected_len, self.max_object)
        try:
            data = await get_bounded(self.backend, name, limit)
        except NotFound:
            raise IntegrityError(f"object {name} is missing from the storage") from None
        if expected_len is not None and len(data) != expected_len:
            raise IntegrityError(f"object {name} has the wrong length (truncated or replaced)")
        return data

    async def _open_whole(self, ref: BlobRef) -> memoryview:
        """Open the object holding ``ref`` (cached for packs; concurrent readers share one fetch)."""
        key = f"{ref.kind}:{ref.epoch}:{ref.object_name}"
        hit = self._packs.get(key)
        if hit is not None:
            self._packs.move_to_end(key)
            return hit
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[memoryview] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            data = await self.fetch(ref.object_name, ref.object_len)
            stored = self.sealer_for(ref.epoch).open(ref.kind, ref.object_name, data)
            if ref.kind != KIND_CHUNK:
                self._packs[key] = stored
                while len(self._packs) > self._pack_cache:
                    self._packs.popitem(last=False)
            fut.set_result(stored)
            return stored
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: waiters (if any) get it through shield
            raise
        finally:
            del self._inflight[key]

    def check_ref(self, ref: BlobRef) -> EpochKeys:
        """The keys of ``ref``'s epoch, after checking what can be checked before fetching: a known
        kind, and for a full chunk the content-addressed name recomputed from its id (§4.1)."""
        keys = self.sealer_for(ref.epoch).keys
        if ref.kind == KIND_CHUNK:
            if not hmac.compare_digest(keys.chunk_name(ref.id).encode(), ref.object_name.encode()) or ref.off != 0:
                fail("chunk name")
        elif ref.kind not in (KIND_DATA_PACK, KIND_PAGE_PACK):
            fail("kind")
        return keys

    async def read(self, ref: BlobRef) -> bytes:
        """The blob's bytes, verified against its keyed id. Raises IntegrityError."""
        keys = self.check_ref(ref)
        stored = await self._open_whole(ref)
        if ref.off + ref.length > len(stored) or (ref.kind == KIND_CHUNK and ref.length != len(stored)):
            fail("blob range")
        blob = bytes(stored[ref.off : ref.off + ref.length])
        if ref.kind == KIND_PAGE_PACK:
            expect = keys.page_id_of(blob)
        elif len(blob) > 65536:
            expect = await asyncio.to_thread(keys.chunk_id_of, blob)  # blake3 releases the GIL
        else:
            expect = keys.chunk_id_of(blob)
        if not hmac.compare_digest(expect, ref.id):
            fail("blob id")
        return blob

    async def open_object(self, ref: BlobRef) -> None:
        """Download and authenticate the whole object holding ``ref`` (kept for the blob reads that
        follow). Raises IntegrityError."""
        self.check_ref(ref)
        await self._open_whole(ref)

    def fresh(self) -> ObjectStore:
        """A store over the same backend and keys with nothing cached: every read downloads anew."""
        keys = {e: s.keys for e, s in self._sealers.items()}
        return ObjectStore(self.backend, keys, self.epoch, self.chunk_size, self.sealer.pad_floor, self._pack_cache)

    async def put(self, name: str, obj: bytes | bytearray | memoryview) -> bool:
        return await self.backend.put_if_absent(name, obj)
