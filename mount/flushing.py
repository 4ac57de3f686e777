"""Flushing the mount's dirty file content into the vault: the flush half of :class:`~.files.FileContent`.

A flush hands a file's dirty chunks to ``Vault.patch`` in batches (see :mod:`.files` for the
batch rule and why every intermediate patch is consistent): a chunk stored ahead by the
write-behind goes as its blob, the others as bytes from their memory slot or the spool. A final
flush first lets the write-behind finish the file's chunks (and starts none meanwhile), so it
links them instead of storing them twice. Also here: dropping the state of settled files, the
flush before a commit, and the background flusher that keeps the write cache from filling up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..engine.errors import VaultError
from ..engine.format.refs import Blob
from ..engine.vault import Vault
from .inodes import InodeTable, UnknownInode, vault_path
from .spool import FileState, want
from .writeback import Slots, Uploader

log = logging.getLogger(__name__)


class Flushing:
    """Mixin: what :class:`~.files.FileContent` has that the flush needs, and the flush itself."""

    vault: Vault
    cs: int
    inodes: InodeTable
    states: dict[int, FileState]
    views: dict[int, Any]
    slots: Slots
    _ns: asyncio.Lock
    _batch: int
    _limit: int
    _kick: asyncio.Event
    _drained: asyncio.Event
    _uploader: Uploader | None

    def forget(self, ino: int) -> None:
        raise NotImplementedError

    def dirty_bytes(self) -> int:
        """Bytes of dirty chunks held here (in memory or the spool; not those stored ahead)."""
        return self.cs * sum(len(fs.dirty) - len(fs.stored) for fs in self.states.values() if not fs.orphan)

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
            fs.draining = final  # no new write-behind for it: this flush takes every chunk
            try:
                while final and fs.uploading and self._uploader is not None:
                    self._uploader.progress.clear()
                    await self._uploader.progress.wait()
                while True:
                    async with fs.lock:
                        if not fs.pending:
                            break
                        size, stored = fs.size, fs.vault_size
                        order = sorted(fs.dirty)
                        batch = self._batch_of(fs, order, final)
                        last = final and len(batch) == len(order)
                        if not batch and not last:
                            break
                        versions = {i: fs.dirty[i] for i in batch}
                        chunks = {i: await self._stored_form(fs, i, size) for i in batch}
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
                            if fs.dirty.get(i) == v:  # unchanged meanwhile: now clean
                                del fs.dirty[i]
                                fs.stored.pop(i, None)
                                self.slots.drop(fs, i)
                    stored_chunks += len(batch)
                    self._drained.set()
                    if last:
                        break
            finally:
                fs.draining = False
        self.settle(ino)
        return stored_chunks

    def _batch_of(self, fs: FileState, order: list[int], final: bool) -> list[int]:
        """The next patch's chunks: a prefix of the dirty ones (sorted), at most ``flush_batch`` bytes of
        them with content (blobs stored ahead cost nothing); not ``final``: only chunks below the
        local size's last partial one, and none from the first that the write-behind is storing."""
        batch: list[int] = []
        content = 0
        for i in order:
            slot = fs.mem.get(i)
            if not final and ((i + 1) * self.cs > fs.size or (slot is not None and slot.lent)):
                break
            if fs.blob(i) is None:
                if content == self._batch:
                    break
                content += 1
            batch.append(i)
        return batch

    async def _stored_form(self, fs: FileState, i: int, size: int) -> bytes | Blob:
        """What a patch needs for dirty chunk ``i``: its blob stored ahead, else its bytes."""
        blob = fs.blob(i)
        if blob is not None:
            return blob
        slot = fs.mem.get(i)
        return slot.data() if slot is not None else await fs.spool.pread(i * self.cs, want(size, i, self.cs))

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
            self.slots.drop_file(fs)
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
