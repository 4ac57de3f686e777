"""File content through the mount: chunk-granular reads with readahead, and the write-back cache.

Reads: a file's chunk refs are snapshotted per inode (a *view*, dropped when the file changes);
each read touches only the chunks it overlaps, clean ones through the chunk cache (filled by the
vault's one blob reader: ``Vault.read_chunk``, which authenticates every byte; a blob still in the
vault's open pack is read from its memory), dirty ones from their memory slot, the blob stored
ahead for them, or the spool. A handle that reads sequentially starts fetches of the next chunks
by the fetcher's window rule (``actors.fetcher.ahead``; as many as ``readahead`` and a third of the
memory setting allow, owned by the mount's task group), so a streaming reader finds them in memory.
A read that falls in one clean chunk answers with a view of the cached chunk (no copy).

Writes: bytes go to the chunk's memory slot (:mod:`.writeback`); a chunk a write only partly
covers is first loaded (from the vault, the spool or its stored-ahead blob). A write that reaches
the end of a full chunk hands it to the write-behind, which stores it while the writer goes on.
Slots over the memory budget spill to the encrypted spool (:mod:`.spool`). Flushing hands dirty
chunks to ``Vault.patch``: a chunk stored ahead as its blob (no content), the others as bytes in
batches of at most ``flush_batch`` bytes, which re-mixes only those chunks. A batch that is not the
file's last is patched at the size ``max(end of batch, stored size)``: the chunks it leaves out are
then all stored at that size (the spool invariant), so every intermediate patch is consistent.
When dirty data reaches ``write_cache`` bytes writers wait; a background flusher starts storing
full dirty chunks at a quarter of that. Nothing is dropped.

Not here: the namespace (``ops``) and commits (``session``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from ..engine.content.reader import ahead
from ..engine.errors import IntegrityError, VaultError
from ..engine.format.refs import Blob
from ..engine.vault import Vault
from .chunkcache import ChunkCache
from .flushing import Flushing
from .inodes import Handle, InodeTable, UnknownInode, vault_path
from .options import MountOptions
from .scratch import make_private, remove_private
from .spool import FileState, Slot, Spool, n_chunks, want
from .writeback import Slots, Spawn, Uploader

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class View:
    """A file as stored: size, inline content or chunk refs."""

    size: int
    inline: bytes | None
    refs: tuple[Blob, ...]  # a blob still in the vault's open pack is read from its memory


def _key(ref: Blob) -> bytes:
    return ref.epoch.to_bytes(4, "big") + ref.id


class FileContent(Flushing):
    def __init__(self, vault: Vault, opts: MountOptions, inodes: InodeTable, ns_lock: asyncio.Lock) -> None:
        self.vault = vault
        self.cs = vault.chunk_size
        self.inodes = inodes
        self._ns = ns_lock
        self._opts = opts
        self._scratch = make_private(opts.cache_dir)  # never DIR/chunks itself: only what the mount made
        self.slots = Slots(max(opts.memory_cache // 2, 2 * self.cs), self.cs)  # dirty chunks in memory
        self.cache = ChunkCache(opts.memory_cache, self._scratch / "chunks", opts.disk_cache,
                                reserved=lambda: self.slots.used + 2 * self.cs * self._prefetching)
        # chunks read ahead: a fetch holds about two chunks (the object and its plaintext) until it lands in
        # the cache, so the cache, the current chunk and a full window of fetches fit in the memory setting
        self._ahead = max(1, min(opts.readahead, opts.memory_cache // (3 * self.cs)))
        vault.meter_cache("chunk", self.cache.counts)  # in the vault's metrics (exporter, `sigmavault stats`)
        self._spool_dir = self._scratch / "spool"
        self.states: dict[int, FileState] = {}
        self.views: dict[int, View] = {}
        self._batch = max(1, opts.flush_batch // self.cs)
        self._limit = max(opts.write_cache, 2 * self.cs)
        self._kick = asyncio.Event()
        self._drained = asyncio.Event()
        self._spawn: Spawn | None = None
        self._uploader: Uploader | None = None
        self._prefetching = 0
        self.last_activity = 0.0

    def start(self, spawn: Spawn) -> None:
        """Readahead and write-behind tasks are created through ``spawn`` (the mount's task group)."""
        self._spawn = spawn
        self._uploader = Uploader(self.vault, spawn, self._uploaded)

    # --- views and clean chunks ---------------------------------------------------------------

    async def view(self, ino: int) -> View:
        v = self.views.get(ino)
        if v is None:
            size, inline, refs = await self.vault.chunks(vault_path(self.inodes.parts(ino)))
            v = self.views[ino] = View(size, inline, tuple(refs))
        return v

    def invalidate(self) -> None:
        """Other clients' commits were adopted: every linked file may have changed."""
        self.views = {i: v for i, v in self.views.items() if i in self.states and self.states[i].orphan}
        for fs in self.states.values():
            fs.stale = not fs.orphan

    def forget(self, ino: int) -> None:
        try:
            self.inodes.get(ino)
        except UnknownInode:
            self.views.pop(ino, None)

    async def _clean(self, ino: int, i: int, *, streamed: bool = False) -> bytes:
        v = await self.view(ino)
        if v.inline is not None:
            return v.inline[i * self.cs : (i + 1) * self.cs]
        if i >= len(v.refs):
            return b""
        return await self._fetch(v.refs[i], streamed=streamed)

    async def _fetch(self, ref: Blob, *, streamed: bool = False) -> bytes:
        return await self.cache.load(_key(ref), lambda: self.vault.read_chunk(ref), streamed=streamed)

    # --- reading ------------------------------------------------------------------------------

    def size(self, ino: int) -> int | None:
        """The local size of a file with pending writes (None: the stored size is current)."""
        fs = self.states.get(ino)
        return fs.size if fs is not None and (fs.pending or fs.orphan) else None

    def mtime(self, ino: int) -> int | None:
        fs = self.states.get(ino)
        return fs.mtime_ns if fs is not None and fs.pending else None

    async def read(self, h: Handle, off: int, size: int) -> bytes | memoryview:
        fs = self.states.get(h.ino)
        total = fs.size if fs is not None else (await self.view(h.ino)).size
        end = min(off + size, total)
        if off >= end:
            return b""
        seq = h.stream.saw(off, end - off)
        cs = self.cs
        out: list[bytes | memoryview] = []
        first, last = off // cs, (end - 1) // cs
        for i in range(first, last + 1):
            lo, hi = max(off, i * cs) - i * cs, min(end, (i + 1) * cs) - i * cs
            if fs is not None and i in fs.dirty:
                out.append(await self._dirty(fs, i, lo, hi))
            else:
                piece = memoryview(await self._clean(h.ino, i, streamed=seq))[lo:hi]
                out.append(piece if len(piece) == hi - lo else bytes(piece) + bytes(hi - lo - len(piece)))
        if seq:
            self._readahead(h.ino, last + 1)
        return out[0] if len(out) == 1 else b"".join(out)

    async def _dirty(self, fs: FileState, i: int, lo: int, hi: int) -> bytes:
        slot = fs.mem.get(i)
        if slot is not None:
            return slot.read(lo, hi)
        blob = fs.blob(i)
        if blob is not None:
            return (await self._fetch(blob))[lo:hi]
        return await fs.spool.pread(i * self.cs + lo, hi - lo)

    def _readahead(self, ino: int, start: int) -> None:
        v = self.views.get(ino)
        if v is None or v.inline is not None or self._spawn is None:
            return
        fs = self.states.get(ino)
        for i in ahead(start, start, len(v.refs), self._ahead):  # the fetcher's window rule
            if self._prefetching >= self._ahead:
                return
            ref = v.refs[i]
            if (fs is not None and i in fs.dirty) or _key(ref) in self.cache:
                continue
            self._prefetching += 1
            self._spawn(self._prefetch(ref))

    async def _prefetch(self, ref: Blob) -> None:
        try:
            await self._fetch(ref, streamed=True)
        except (VaultError, OSError) as exc:  # the reader that needs it will fetch again and report
            log.debug("readahead failed: %s", exc)
        finally:
            self._prefetching -= 1

    # --- writing ------------------------------------------------------------------------------

    async def _state(self, ino: int) -> FileState:
        fs = self.states.get(ino)
        if fs is None:
            v = await self.view(ino)
            fs = self.states.get(ino)  # another task may have made it meanwhile
            if fs is None:
                fs = self.states[ino] = FileState(ino, v.size, v.size, Spool(self._spool_dir))
        if fs.stale:
            async with fs.lock:
                if fs.stale and not fs.pending:
                    self.views.pop(ino, None)
                    fs.size = fs.vault_size = (await self.view(ino)).size
                fs.stale = False
        return fs

    async def _current(self, fs: FileState, i: int) -> bytes:
        """Chunk ``i``'s bytes at the local size (a dirty hole: zeros). Raises IntegrityError."""
        n = want(fs.size, i, self.cs)
        if i in fs.dirty:
            slot = fs.mem.get(i)
            if slot is not None:
                return slot.data()
            blob = fs.blob(i)
            data = await (self._fetch(blob) if blob is not None else fs.spool.pread(i * self.cs, n))
        else:
            data = await self._clean(fs.ino, i)
        if len(data) != n:
            raise IntegrityError(f"chunk {i} of a file being written is missing")
        return data

    async def _slot(self, fs: FileState, i: int) -> Slot:
        """Chunk ``i`` in a memory slot that may be changed in place (loaded first when it has none)."""
        if i in fs.mem:
            return self.slots.solid(fs, i)
        return self.slots.fill(fs, i, await self._current(fs, i), want(fs.size, i, self.cs))

    async def _grow(self, fs: FileState, new: int) -> None:
        old = fs.size
        if old % self.cs:
            i = old // self.cs
            if i in fs.mem or i not in fs.dirty or fs.blob(i) is not None:  # spooled: zeros past the size already
                if i not in fs.mem:
                    await self._slot(fs, i)
                self.slots.resize(fs, i, want(new, i, self.cs))
            fs.mark(i)
        for i in range(n_chunks(old, self.cs), n_chunks(new, self.cs)):
            fs.mark(i)  # zeros: a hole until written
        fs.size = new

    async def write(self, ino: int, off: int, data: bytes) -> int:
        await self._room()
        fs = await self._state(ino)
        cs = self.cs
        end = off + len(data)
        src = memoryview(data)
        async with fs.lock:
            if end > fs.size:
                await self._grow(fs, end)
            for i in range(off // cs, (end - 1) // cs + 1):
                lo, hi = max(off, i * cs) - i * cs, min(end, (i + 1) * cs) - i * cs
                n = want(fs.size, i, cs)
                part = src[i * cs + lo - off : i * cs + hi - off]
                slot = fs.mem.get(i)
                appending = slot is not None and slot.parts is not None and lo == slot.filled
                if appending or (slot is None and not lo and hi >= n):  # keep the write's buffer (immutable)
                    kept = data if type(data) is bytes and len(part) == len(data) else bytes(part)
                    if appending:
                        self.slots.append(fs, i, kept)
                        slot = fs.mem[i]
                    else:  # the whole chunk is new: nothing to load
                        slot = self.slots.start(fs, i, n, kept)
                else:
                    slot = await self._slot(fs, i)
                    slot.buf[lo:hi] = part
                fs.mark(i)
                if hi == cs and self._uploader is not None and not fs.orphan and not fs.draining:
                    self._uploader.add(fs, i, slot)  # a full chunk the writer is done with: store it now
            fs.mtime_ns = time.time_ns()
        self._touched(fs)
        await self._fit()
        return len(data)

    def _uploaded(self, fs: FileState, i: int, version: int, slot: Slot, blob: Blob | None) -> None:
        """The write-behind ended for chunk ``i`` (``blob``: stored; None: failed, it stays in memory)."""
        if blob is not None and fs.dirty.get(i) == version and self.states.get(fs.ino) is fs:
            fs.stored[i] = (version, blob)
            self.slots.drop(fs, i, slot)
        self._drained.set()

    async def _fit(self) -> None:
        """Keep the dirty chunks in memory within their budget: wait for uploads, else spill to the spool."""
        while self.slots.used > self.slots.limit:
            if self._uploader is not None and self._uploader.busy:
                self._uploader.progress.clear()
                await self._uploader.progress.wait()
                continue
            victim = self.slots.oldest()
            if victim is None:
                break
            await self._spill(*victim)
        await self.cache.trim()

    async def _spill(self, fs: FileState, i: int) -> None:
        async with fs.lock:
            slot = fs.mem.get(i)
            if slot is None or slot.lent:
                return
            await fs.spool.pwrite(i * self.cs, slot.data())
            self.slots.drop(fs, i, slot)

    async def truncate(self, ino: int, size: int) -> None:
        fs = await self._state(ino)
        cs = self.cs
        log.debug("truncate ino=%d size=%d from=%d stored=%d", ino, size, fs.size, fs.vault_size)
        async with fs.lock:
            if size > fs.size:
                await self._grow(fs, size)
            elif size < fs.size:
                for i in [i for i in fs.dirty if i >= n_chunks(size, cs)]:
                    del fs.dirty[i]
                    fs.stored.pop(i, None)
                    self.slots.drop(fs, i)
                if size % cs:
                    i = size // cs
                    if i in fs.mem or i not in fs.dirty or fs.blob(i) is not None:
                        if i not in fs.mem:
                            await self._slot(fs, i)
                        self.slots.resize(fs, i, want(size, i, cs))
                    fs.mark(i)
                await fs.spool.truncate(size)
                fs.size = size
            else:
                return
            fs.mtime_ns = time.time_ns()
        self._touched(fs)

    def set_mtime(self, ino: int, mtime_ns: int) -> None:
        fs = self.states.get(ino)
        if fs is not None and fs.pending:
            fs.mtime_ns = mtime_ns

    def _touched(self, fs: FileState) -> None:
        self.last_activity = time.monotonic()
        if fs.pending and not fs.orphan:
            self.inodes.pin(fs.ino, True)
        if self.dirty_bytes() >= self._limit // 4:
            self._kick.set()

    @property
    def pending(self) -> bool:
        return any(fs.pending and not fs.orphan for fs in self.states.values())

    @property
    def busy(self) -> bool:
        return (self._uploader is not None and self._uploader.busy) \
            or any(fs.lock.locked() or fs.flushing.locked() for fs in self.states.values())

    async def _room(self) -> None:
        while self.dirty_bytes() >= self._limit:
            self._kick.set()
            self._drained.clear()
            await self._drained.wait()

    # --- flushing -----------------------------------------------------------------------------

    def close(self) -> None:
        for fs in self.states.values():
            self.slots.drop_file(fs)
            fs.close()
        self.states.clear()
        self.cache.close()
        remove_private(self._scratch)
