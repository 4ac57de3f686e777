"""Sealed objects in a backend: the epoch sealers, bounded fetches, create-only puts, ref checks.

The store is where the engine meets a backend. It holds the sealers of the vault's epochs
(``envelope.Sealer``), fetches an object with a length bound (the ref's ``ol``, else the largest
object size), writes objects create-only, and checks a blob ref before anything is fetched (known
kind; a full chunk's name recomputed from its id, CRYPTO.md §4.1). Reading a blob back — open,
slice, verify the keyed id — is :class:`~.reader.BlobReader`'s job, the one place that does it.

It never trusts the server: a missing object or a wrong length becomes an :class:`IntegrityError`
naming the object (callers add the file path).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable

from ...backends.base import Backend, get_bounded
from ..errors import IntegrityError, NotFound, ObjectMissing
from ..format.canonical import fail
from ..format.envelope import Sealer, object_len
from ..format.pages import BlobRef
from ..format.refs import PendingRef
from ..keys.schedule import KIND_CHUNK, KIND_DATA_PACK, KIND_PAGE_PACK, EpochKeys
from ..keys.secret import Secret


class ObjectStore:
    """The sealers, bounded fetches, create-only puts and ref checks of one vault."""

    def __init__(self, backend: Backend, keys: dict[int, EpochKeys], epoch: int, chunk_size: int,
                 pad_floor: int, pack_cache: int = 8,
                 writers: Callable[[], Iterable[tuple[bytes, Secret]]] | None = None,
                 compression: str = "none") -> None:
        self.backend = backend
        #: the vault parameter ``compression`` (:mod:`..format.squeeze`): how new blobs are stored
        self.compression = compression
        #: write-only clients' id keys by writer id (the keyring's, tombstones included): ingested drops
        #: (writer id, id key) of the keyring's write-only clients as of now (the history's), asked
        #: only when an ingested drop's key set is first needed
        self.writers: Callable[[], Iterable[tuple[bytes, Secret]]] = writers or tuple
        self._drop_sealers: dict[tuple[bytes, int, bytes], Sealer] = {}
        self.epoch = epoch
        self.keys = keys[epoch]
        self.chunk_size = chunk_size
        self._sealers = {e: Sealer(k, chunk_size, pad_floor) for e, k in keys.items()}
        self.sealer = self._sealers[epoch]
        #: how many opened packs a :class:`~.reader.BlobReader` over this store keeps
        self.pack_cache = pack_cache
        #: no object of kinds 1, 2, 4 is longer: a sealed message is at most ``8 + chunk_size``
        self.max_object = object_len(chunk_size, chunk_size, pad_floor)

    def add_epoch(self, keys: EpochKeys) -> Sealer:
        """Read objects of ``keys``' epoch too (a newer keystore read or written): its sealer."""
        sealer = self._sealers.get(keys.epoch)
        if sealer is None:
            sealer = self._sealers[keys.epoch] = Sealer(keys, self.chunk_size, self.sealer.pad_floor)
        return sealer

    def use_epoch(self, epoch: int) -> None:
        """Seal new objects under ``epoch`` from now on (added before; W2 of a rekey)."""
        self.sealer = self.sealer_for(epoch)
        self.epoch = epoch
        self.keys = self.sealer.keys

    def sealer_for(self, epoch: int) -> Sealer:
        try:
            return self._sealers[epoch]
        except KeyError:
            fail("epoch not allowed")

    def sealer_of(self, ref: BlobRef | PendingRef) -> Sealer:
        """The sealer that opens ``ref``'s object: an epoch's for this store's own names (``o/``, or a
        drop's own ``d/<writer>/o/`` when this store writes a drop), a drop's for an ingested drop's
        object (its ref carries the drop key; the writer must be one the keyring knows)."""
        if isinstance(ref, PendingRef) or ref.object_name.startswith(self.keys.prefix):
            if isinstance(ref, BlobRef) and ref.drop_key is not None:
                fail("drop key on an own object")
            return self.sealer_for(ref.epoch)
        writer, dk = ref.writer, ref.drop_key
        if writer is None or dk is None:
            fail("object outside the vault's names")
        key = (writer, ref.epoch, dk)
        sealer = self._drop_sealers.get(key)
        if sealer is None:  # a writer stays in the keyring (removed: a tombstone), so a made sealer stays good
            wk = dict(self.writers()).get(writer)
            if wk is None:
                fail("object of an unknown writer")
            own = self.sealer_for(ref.epoch).keys
            keys = EpochKeys.for_drop(own.vault_id, ref.epoch, own.prf_name, writer, wk, Secret(dk, "drop key"))
            sealer = self._drop_sealers[key] = Sealer(keys, self.chunk_size, self.sealer.pad_floor)
        return sealer

    async def fetch(self, name: str, expected_len: int | None = None) -> bytes:
        """Object ``name``, read with a bound (its expected length, else the largest object size)."""
        limit = self.max_object if expected_len is None else min(expected_len, self.max_object)
        try:
            data = await get_bounded(self.backend, name, limit)
        except NotFound:
            raise ObjectMissing(f"object {name} is missing from the storage") from None
        if expected_len is not None and len(data) != expected_len:
            raise IntegrityError(f"object {name} has the wrong length (truncated or replaced)")
        return data

    def check_ref(self, ref: BlobRef) -> EpochKeys:
        """The keys of ``ref``'s epoch, after checking what can be checked before fetching: a known
        kind, and for a full chunk the content-addressed name recomputed from its id (§4.1)."""
        keys = self.sealer_of(ref).keys
        if ref.kind == KIND_CHUNK:
            if not hmac.compare_digest(keys.chunk_name(ref.id).encode(), ref.object_name.encode()) or ref.off != 0:
                fail("chunk name")
        elif ref.kind not in (KIND_DATA_PACK, KIND_PAGE_PACK):
            fail("kind")
        return keys

    def fresh(self) -> ObjectStore:
        """A store over the same backend and keys with nothing cached: every read downloads anew."""
        keys = {e: s.keys for e, s in self._sealers.items()}
        return ObjectStore(self.backend, keys, self.epoch, self.chunk_size, self.sealer.pad_floor, self.pack_cache,
                           self.writers, self.compression)

    async def put(self, name: str, obj: bytes | bytearray | memoryview) -> bool:
        return await self.backend.put_if_absent(name, obj)
