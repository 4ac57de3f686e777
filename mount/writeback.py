"""Dirty chunks in memory, and the write-behind that stores full ones while a writer streams on.

A write lands in a chunk-sized *slot* (one copy out of the FUSE buffer), not in the spool: a
streaming writer fills a slot, and the moment a write reaches the end of a full chunk that chunk
is handed to the :class:`Uploader`, which seals and stores it through the vault's write pipeline
(``Vault.ingest`` with ``on_file``: the chunk's blob comes back, the catalog is not touched) while
the writer fills the next slot. The flush that follows (``fsync``, close, the commit timer) then
links the stored blobs into the file with one ``Vault.patch`` that carries no content for them.
Slots that do not fill (random writes, a file's partial last chunk) stay in memory until a flush
takes them, or until memory runs short: then the least recently written one is *spilled* to the
encrypted spool (:mod:`.spool`), which is where everything went before.

Memory: :class:`Slots` counts the capacity of every slot (a slot lent to an upload or a patch
included) against its limit, and writers wait once it is over: for uploads to finish when some
are running, else after spilling. The chunk cache gives the slots its room (its limit is the
memory setting minus what the slots hold), so dirty and clean chunks together stay within it.

Durability: an upload run's blobs are believed only once the whole run ended without an error (a
chunk deduplicated against another still uploading in the same run is reported before that upload
ends). A failed run leaves its chunks dirty in memory; the next flush stores them (and reports the
error if it persists). A slot lent to an upload or a patch is never changed: a write to it copies it
first, so what is being stored is what was written when it was handed over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ..engine.catalog.tree import File, Meta
from ..engine.edits import Planned
from ..engine.errors import VaultError
from ..engine.format.refs import Blob
from ..engine.vault import Vault
from .spool import FileState, Slot

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, None]], object]

BIG = 128 << 10  # a write at least this large into a fresh slot gets the whole chunk's capacity at once


class Slots:
    """Every file's in-memory dirty chunks: their bytes and the order they were last written."""

    def __init__(self, limit: int, chunk_size: int) -> None:
        self.limit = limit
        self.cs = chunk_size
        self.used = 0
        self._lru: OrderedDict[tuple[FileState, int], None] = OrderedDict()
        self.freed = asyncio.Event()

    def new(self, fs: FileState, i: int, n: int, hint: int) -> Slot:
        """A zero slot of length ``n`` for chunk ``i`` (room for the whole chunk when ``hint`` is big)."""
        cap = self.cs if hint >= BIG or n >= self.cs else n
        return self._set(fs, i, Slot(bytearray(cap), n))

    def start(self, fs: FileState, i: int, n: int, first: bytes) -> Slot:
        """A slot of length ``n`` whose bytes so far are ``first`` (kept as it is, not copied)."""
        return self._set(fs, i, Slot(bytearray(), n, parts=[first], filled=len(first)))

    def append(self, fs: FileState, i: int, more: bytes) -> None:
        """Add ``more`` at the end of chunk ``i``'s appended bytes (its slot has ``parts``)."""
        slot = self.unlend(fs, i)
        assert slot.parts is not None
        slot.parts.append(more)
        slot.filled += len(more)
        self.used += len(more)

    def fill(self, fs: FileState, i: int, data: bytes, n: int) -> Slot:
        """A slot holding ``data`` (the chunk's current bytes) at length ``n`` (zeros past ``data``)."""
        buf = bytearray(max(n, len(data)))
        buf[: len(data)] = data
        return self._set(fs, i, Slot(buf, n))

    def unlend(self, fs: FileState, i: int) -> Slot:
        """Chunk ``i``'s slot, copied first if it is lent (the copy replaces it; appended parts are shared)."""
        slot = fs.mem[i]
        if slot.lent:
            if slot.parts is not None:
                slot = self._set(fs, i, Slot(bytearray(), slot.n, parts=list(slot.parts), filled=slot.filled))
            else:
                slot = self._set(fs, i, Slot(bytearray(slot.buf), slot.n))
        return slot

    def solid(self, fs: FileState, i: int) -> Slot:
        """Chunk ``i``'s slot as one buffer that may be changed in place."""
        slot = self.unlend(fs, i)
        if slot.parts is not None:
            buf = bytearray(self.cs if slot.n >= self.cs or slot.filled >= BIG else max(slot.n, slot.filled))
            at = 0
            for part in slot.parts:
                buf[at : at + len(part)] = part
                at += len(part)
            self.used += len(buf) - slot.filled
            slot.buf, slot.parts, slot.filled = buf, None, 0
        return slot

    def resize(self, fs: FileState, i: int, n: int) -> None:
        """Chunk ``i``'s slot at length ``n``: zeros added past the old length, or the tail dropped."""
        slot = self.unlend(fs, i)
        if slot.parts is not None:
            if n >= slot.filled:
                slot.n = n
                return
            slot = self.solid(fs, i)
        if n > len(slot.buf):
            grown = bytearray(max(n, min(self.cs, 2 * len(slot.buf))))
            grown[: slot.n] = memoryview(slot.buf)[: slot.n]
            self.used += len(grown) - len(slot.buf)
            slot.buf = grown
        elif n < slot.n:
            slot.buf[n : slot.n] = bytes(slot.n - n)
        slot.n = n

    def _set(self, fs: FileState, i: int, slot: Slot) -> Slot:
        old = fs.mem.get(i)
        self.used += slot.held - (old.held if old is not None else 0)
        fs.mem[i] = slot
        self.touch(fs, i)
        return slot

    def touch(self, fs: FileState, i: int) -> None:
        key = (fs, i)
        self._lru[key] = None
        self._lru.move_to_end(key)

    def drop(self, fs: FileState, i: int, slot: Slot | None = None) -> None:
        """Forget chunk ``i``'s slot (only if it is still ``slot``, when given)."""
        old = fs.mem.get(i)
        if old is None or (slot is not None and old is not slot):
            return
        del fs.mem[i]
        self.used -= old.held
        self._lru.pop((fs, i), None)
        self.freed.set()

    def drop_file(self, fs: FileState) -> None:
        for i in list(fs.mem):
            self.drop(fs, i)

    def oldest(self) -> tuple[FileState, int] | None:
        """The least recently written slot not lent (the one to spill), or None."""
        for fs, i in self._lru:
            slot = fs.mem.get(i)
            if slot is not None and not slot.lent:
                return fs, i
        return None


@dataclass(slots=True, eq=False)
class _Job:
    fs: FileState
    index: int
    version: int
    slot: Slot


Done = Callable[[FileState, int, int, Slot, Blob | None], None]


class Uploader:
    """Stores full chunks ahead of the flush (see the module doc): up to ``runs`` pipeline runs at once,
    each of at most ``per_run`` chunks, spawned when work arrives and ended when none is left."""

    _META = Meta(0o600, 0, 0, 0, 0)

    def __init__(self, vault: Vault, spawn: Spawn, done: Done, runs: int = 4, per_run: int = 4) -> None:
        self._vault = vault
        self._spawn = spawn
        self._done = done
        self._runs = runs
        self._per_run = per_run
        self._queue: deque[_Job] = deque()
        self._running = 0
        self._paused_until = 0.0
        self.progress = asyncio.Event()  # set whenever a run ends (uploads finished or failed)

    @property
    def busy(self) -> bool:
        return bool(self._queue) or self._running > 0

    def add(self, fs: FileState, i: int, slot: Slot) -> bool:
        """Queue chunk ``i`` (full, its current bytes in ``slot``). False after a recent failure."""
        if time.monotonic() < self._paused_until:
            return False
        slot.lent = True
        fs.uploading += 1
        self._queue.append(_Job(fs, i, fs.dirty[i], slot))
        if self._running < self._runs:
            self._running += 1
            self._spawn(self._run())
        return True

    async def _run(self) -> None:
        try:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(self._per_run, len(self._queue)))]
                await self._store(batch)
        finally:
            self._running -= 1
            self.progress.set()

    async def _store(self, batch: list[_Job]) -> None:
        got: dict[int, Blob] = {}

        async def on_file(parts: list[bytes], node: File) -> None:
            got[int(parts[0])] = node.blobs[0]

        live = [(k, job) for k, job in enumerate(batch)
                if not job.fs.orphan and job.fs.dirty.get(job.index) == job.version]
        ok = False
        try:
            if live:
                async with self._vault.ingest(on_file=on_file) as ing:
                    for k, job in live:  # one copy (or a join of the writes' buffers): pieces are bytes
                        await ing.add([b"%d" % k], Planned((job.slot.data(),)), self._META)
            ok = True
        except (VaultError, OSError) as exc:
            log.warning("write-behind upload failed (the next flush stores the data): %s", exc)
            self._paused_until = time.monotonic() + 1.0
        finally:
            for k, job in enumerate(batch):
                job.fs.uploading -= 1
                job.slot.lent = False
                self._done(job.fs, job.index, job.version, job.slot, got.get(k) if ok else None)
            self.progress.set()
