"""File content through the mount: chunk-granular reads with readahead, and the write-back cache.

Reads: a file's chunk refs are snapshotted per inode (a *view*, dropped when the file changes);
each read touches only the chunks it overlaps, clean ones through the chunk cache (filled by the
vault's one blob reader: ``Vault.read_chunk``; a blob still in the vault's open pack is read from
its memory), dirty ones from the spool. A handle that reads sequentially starts fetches of the next
``readahead`` chunks by the fetcher's window rule (``actors.fetcher.ahead``; bounded, owned
by the mount's task group), so a streaming reader finds them in memory.

Writes: bytes go to the file's spool (:mod:`spool`); a chunk a write only partly covers is first
loaded from the vault. Flushing hands dirty chunks to ``Vault.patch`` in batches of at most
``flush_batch`` bytes, which re-mixes only those chunks. A batch that is not the file's last is
patched at the size ``max(end of batch, stored size)``: the chunks it leaves out are then all
stored at that size (the spool invariant), so every intermediate patch is consistent.
When dirty data reaches ``write_cache`` bytes writers wait; a background flusher starts
uploading full dirty chunks at a quarter of that. Nothing is dropped.

Not here: the namespace (``ops``) and commits (``session``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ..engine.content.reader import ahead
from ..engine.errors import IntegrityError, VaultError
from ..engine.format.refs import Blob
from ..engine.vault import Vault
from .chunkcache import ChunkCache
from .inodes import Handle, InodeTable, UnknownInode, vault_path
from .options import MountOptions
from .scratch import make_private, remove_private
from .spool import FileState, Spool, n_chunks, want

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, None]], object]


@dataclass(frozen=True, slots=True)
class View:
    """A file as stored: size, inline content or chunk refs."""

    size: int
    inline: bytes | None
    refs: tuple[Blob, ...]  # a blob still in the vault's open pack is read from its memory


def _key(ref: Blob) -> bytes:
    return ref.epoch.to_bytes(4, "big") + ref.id


class FileContent:
    def __init__(self, vault: Vault, opts: MountOptions, inodes: InodeTable, ns_lock: asyncio.Lock) -> None:
        self.vault = vault
        self.cs = vault.chunk_size
        self.inodes = inodes
        self._ns = ns_lock
        self._opts = opts
        self._scratch = make_private(opts.cache_dir)  # never DIR/chunks itself: only what the mount made
        self.cache = ChunkCache(opts.memory_cache, self._scratch / "chunks", opts.disk_cache)
        vault.meter_cache("chunk", self.cache.counts)  # in the vault's metrics (exporter, `sigmavault stats`)
        self._spool_dir = self._scratch / "spool"
        self.states: dict[int, FileState] = {}
        self.views: dict[int, View] = {}
        self._batch = max(1, opts.flush_batch // self.cs)
        self._limit = max(opts.write_cache, 2 * self.cs)
        self._kick = asyncio.Event()
        self._drained = asyncio.Event()
        self._spawn: Spawn | None = None
        self._prefetching = 0
        self.last_activity = 0.0

    def start(self, spawn: Spawn) -> None:
        """Readahead tasks and the flusher are created through ``spawn`` (the mount's task group)."""
        self._spawn = spawn

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
        ref = v.refs[i]
        return await self.cache.load(_key(ref), lambda: self.vault.read_chunk(ref), streamed=streamed)

    # --- reading ------------------------------------------------------------------------------

    def size(self, ino: int) -> int | None:
        """The local size of a file with pending writes (None: the stored size is current)."""
        fs = self.states.get(ino)
        return fs.size if fs is not None and (fs.pending or fs.orphan) else None

    def mtime(self, ino: int) -> int | None:
        fs = self.states.get(ino)
        return fs.mtime_ns if fs is not None and fs.pending else None

    async def read(self, h: Handle, off: int, size: int) -> bytes:
        fs = self.states.get(h.ino)
        total = fs.size if fs is not None else (await self.view(h.ino)).size
        end = min(off + size, total)
        if off >= end:
            return b""
        seq = h.stream.saw(off, end - off)
        log.debug("read ino=%d off=%d size=%d total=%d state=%s", h.ino, off, size, total, fs is not None)
        cs = self.cs
        out: list[bytes] = []
        first, last = off // cs, (end - 1) // cs
        for i in range(first, last + 1):
            lo, hi = max(off, i * cs) - i * cs, min(end, (i + 1) * cs) - i * cs
            if fs is not None and i in fs.dirty:
                out.append(await fs.spool.pread(i * cs + lo, hi - lo))
            else:
                piece = (await self._clean(h.ino, i, streamed=seq))[lo:hi]
                out.append(piece if len(piece) == hi - lo else piece + bytes(hi - lo - len(piece)))
        if seq:
            self._readahead(h.ino, last + 1)
        return b"".join(out)

    def _readahead(self, ino: int, start: int) -> None:
        v = self.views.get(ino)
        if v is None or v.inline is not None or self._spawn is None:
            return
        fs = self.states.get(ino)
        for i in ahead(start, start, len(v.refs), self._opts.readahead):  # the fetcher's window rule
            if self._prefetching >= 2 * self._opts.readahead:
                return
            ref = v.refs[i]
            if (fs is not None and i in fs.dirty) or _key(ref) in self.cache:
                continue
            self._prefetching += 1
            self._spawn(self._prefetch(ref))

    async def _prefetch(self, ref: Blob) -> None:
        try:
            await self.cache.load(_key(ref), lambda: self.vault.read_chunk(ref), streamed=True)
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

    async def _load(self, fs: FileState, i: int) -> None:
        """Copy stored chunk ``i`` (at the local size's length) into the spool before a partial change."""
        w = want(fs.size, i, self.cs)
        data = (await self._clean(fs.ino, i))[:w]
        if len(data) != w:
            raise IntegrityError(f"chunk {i} of a file being written is missing")
        await fs.spool.pwrite(i * self.cs, data)

    async def _grow(self, fs: FileState, new: int) -> None:
        old = fs.size
        if old % self.cs:
            i = old // self.cs
            if i not in fs.dirty:
                await self._load(fs, i)
            fs.mark(i)
        for i in range(n_chunks(old, self.cs), n_chunks(new, self.cs)):
            fs.mark(i)  # zeros: the spool past the old size is zero
        fs.size = new

    async def write(self, ino: int, off: int, data: bytes) -> int:
        await self._room()
        fs = await self._state(ino)
        cs = self.cs
        end = off + len(data)
        async with fs.lock:
            if end > fs.size:
                await self._grow(fs, end)
            first, last = off // cs, (end - 1) // cs
            for i in range(first, last + 1):
                if i in fs.dirty:
                    continue
                lo, hi = max(off, i * cs) - i * cs, min(end, (i + 1) * cs) - i * cs
                if not (lo == 0 and hi >= want(fs.size, i, cs)):
                    await self._load(fs, i)
            await fs.spool.pwrite(off, data)
            for i in range(first, last + 1):
                fs.mark(i)
            fs.mtime_ns = time.time_ns()
        self._touched(fs)
        return len(data)

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
                if size % cs:
                    i = size // cs
                    if i not in fs.dirty:
                        await self._load(fs, i)
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

    def dirty_bytes(self) -> int:
        return self.cs * sum(len(fs.dirty) for fs in self.states.values() if not fs.orphan)

    @property
    def pending(self) -> bool:
        return any(fs.pending and not fs.orphan for fs in self.states.values())

    @property
    def busy(self) -> bool:
        return any(fs.lock.locked() or fs.flushing.locked() for fs in self.states.values())

    async def _room(self) -> None:
        while self.dirty_bytes() >= self._limit:
            self._kick.set()
            self._drained.clear()
            await self._drained.wait()

    # --- flushing -----------------------------------------------------------------------------

    async def flush(self, ino: int, *, final: bool = True) -> int:
        """Store the file's dirty chunks (``final``: all of them and its size; else only full chunks).

        Returns how many chunks were stored. Raises VaultError (the data stays dirty and is
        retried by the next flush).
        """
        fs = self.states.get(ino)
        if fs is None or fs.orphan:
            return 0
        cs = self.cs
        stored_chunks = 0
        async with fs.flushing:
            while True:
                async with fs.lock:
                    if not fs.pending:
                        break
                    size, stored = fs.size, fs.vault_size
                    order = sorted(fs.dirty)
                    cand = order if final else [i for i in order if (i + 1) * cs <= size]
                    batch = cand[: self._batch]
                    last = final and len(batch) == len(order)
                    if not batch and not last:
                        break
                    versions = {i: fs.dirty[i] for i in batch}
                    chunks = {i: await fs.spool.pread(i * cs, want(size, i, cs)) for i in batch}
                    target = size if last else max((batch[-1] + 1) * cs, stored)
                    mtime = fs.mtime_ns
                async with self._ns:
                    if fs.orphan:
                        return stored_chunks
                    path = vault_path(self.inodes.parts(ino))
                    log.debug("patch ino=%d %r size=%d chunks=%s", ino, path, target, sorted(chunks))
                    await self.vault.patch(path, target, chunks, mtime_ns=mtime)
                    self.views.pop(ino, None)
                async with fs.lock:
                    fs.vault_size = target
                    for i, v in versions.items():
                        if fs.dirty.get(i) == v:
                            del fs.dirty[i]
                stored_chunks += len(batch)
                self._drained.set()
                if last:
                    break
        self.settle(ino)
        return stored_chunks

    def settle(self, ino: int) -> None:
        """Drop the local state of a file that is stored and closed (or unlinked and closed)."""
        fs = self.states.get(ino)
        if fs is None:
            return
        try:
            node = self.inodes.get(ino)
            opens = node.opens
        except UnknownInode:
            opens = 0
        if not fs.pending and not fs.orphan:
            self.inodes.pin(ino, False)
        if opens == 0 and (fs.orphan or not fs.pending) and not fs.lock.locked() and not fs.flushing.locked():
            del self.states[ino]
            fs.close()
            self.forget(ino)

    def unlinked(self, ino: int) -> None:
        fs = self.states.get(ino)
        if fs is not None:
            fs.orphan = True
            self._drained.set()
            self.settle(ino)

    async def flush_all(self) -> None:
        """Flush every file with pending data (before a commit). Raises the first VaultError."""
        first: VaultError | None = None
        for ino in list(self.states):
            try:
                await self.flush(ino)
            except VaultError as exc:
                first = first or exc
            except UnknownInode:  # forgotten meanwhile: nothing left to flush
                continue
        if first is not None:
            raise first

    async def flusher(self) -> None:
        """Background: upload full dirty chunks while the write cache is over a quarter full."""
        while True:
            await self._kick.wait()
            self._kick.clear()
            while self.dirty_bytes() >= max(self._limit // 4, self._batch * self.cs):
                files = [f for f in self.states.values() if not f.orphan and f.dirty]
                if not files:
                    break
                fs = max(files, key=lambda f: len(f.dirty))
                try:
                    if not await self.flush(fs.ino, final=False):  # only a partial chunk left: store it too
                        await self.flush(fs.ino, final=True)
                except (VaultError, UnknownInode) as exc:
                    log.warning("write-back flush failed (will retry): %s", exc)
                    await asyncio.sleep(1)
                self._drained.set()
            self._drained.set()

    def close(self) -> None:
        for fs in self.states.values():
            fs.close()
        self.states.clear()
        self.cache.close()
        remove_private(self._scratch)
