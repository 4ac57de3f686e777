"""The mount's cache of clean (already stored) chunks: bounded memory, with an encrypted spill to disk.

Keys are ``epoch (4 bytes) ‖ keyed chunk id`` so equal content is cached once and a chunk can
never be served for another file's content (ids are content hashes checked by the engine).
Memory holds at most ``memory_limit`` bytes in LRU order, less what ``reserved()`` says others
hold (the mount's dirty chunks and its readahead fetches: they all share the one memory setting).
An entry evicted from memory is written to the spill folder unless it was only streamed through
(sequential reads do not pollute the disk); the spill folder holds at most ``disk_limit`` bytes,
also LRU.

Spill file layout (one file per chunk, named by the key in hex, mode 0600)::

    nonce (12) ‖ AES-256-GCM(ephemeral key, nonce, chunk, aad = key)

The key lives only in this process's memory, so a spill file left behind by a crash is noise.
Concurrent loads of one key share one fetch. Disk I/O runs in threads.

:meth:`ChunkCache.counts` is what the vault's metrics report as the ``chunk`` cache: hits (from
memory or the spill), misses (fetched), the bytes held in memory and on disk, and evictions
(entries that left the cache for room: pushed out of memory without a spill, or off the disk).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..engine.metrics import CacheCounts

log = logging.getLogger(__name__)


class ChunkCache:
    def __init__(self, memory_limit: int, spill_dir: Path | None, disk_limit: int,
                 reserved: Callable[[], int] = lambda: 0) -> None:
        self._reserved = reserved
        self._mem: OrderedDict[bytes, tuple[bytes, bool]] = OrderedDict()  # key -> (data, streamed)
        self._mem_bytes = 0
        self._memory_limit = memory_limit
        self._disk: OrderedDict[bytes, int] = OrderedDict()
        self._disk_bytes = 0
        self._disk_limit = disk_limit if spill_dir is not None else 0
        self._dir = spill_dir
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))
        self._inflight: dict[bytes, asyncio.Future[bytes]] = {}
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self._made_dir = False
        if spill_dir is not None:
            try:
                spill_dir.mkdir(parents=True, mode=0o700)
                self._made_dir = True  # only a folder this cache made is removed at close
            except FileExistsError:
                pass

    def __contains__(self, key: bytes) -> bool:
        return key in self._mem or key in self._inflight

    def _path(self, key: bytes) -> Path:
        assert self._dir is not None
        return self._dir / key.hex()

    async def load(self, key: bytes, fetch: Callable[[], Awaitable[bytes]], *, streamed: bool = False) -> bytes:
        """The chunk for ``key``: from memory, the spill, a fetch already running, or ``fetch()``.

        Errors of ``fetch`` propagate to every waiter and nothing is cached. Cancelling one
        waiter does not cancel a fetch others share.
        """
        hit = self._mem.get(key)
        if hit is not None:
            self._mem.move_to_end(key)
            if not streamed and hit[1]:
                self._mem[key] = (hit[0], False)
            self.hits += 1
            return hit[0]
        running = self._inflight.get(key)
        if running is not None:
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if running.cancelled() and task is not None and not task.cancelling():
                    return await self.load(key, fetch, streamed=streamed)  # the sharer was cancelled, not us
                raise
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            data = await self._from_disk(key)
            if data is None:
                self.misses += 1
                data = await fetch()
            else:
                self.hits += 1
            await self._keep(key, data, streamed)
            fut.set_result(data)
            return data
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: waiters get it through shield
            raise
        finally:
            del self._inflight[key]

    async def _from_disk(self, key: bytes) -> bytes | None:
        if key not in self._disk:
            return None
        self._disk.move_to_end(key)
        path = self._path(key)
        try:
            blob = await asyncio.to_thread(path.read_bytes)
            return self._aead.decrypt(blob[:12], blob[12:], key)
        except (OSError, InvalidTag):
            self._drop_disk(key)
            return None

    async def _keep(self, key: bytes, data: bytes, streamed: bool) -> None:
        self._mem[key] = (data, streamed)
        self._mem_bytes += len(data)
        await self.trim(keep=1)

    async def trim(self, keep: int = 0) -> None:
        """Evict least recently used entries (spilling those read more than once) down to the limit,
        keeping at least ``keep`` of them."""
        spill: list[tuple[bytes, bytes]] = []
        while self._mem_bytes > self._memory_limit - self._reserved() and len(self._mem) > keep:
            old, (old_data, old_streamed) = self._mem.popitem(last=False)
            self._mem_bytes -= len(old_data)
            if not old_streamed and self._disk_limit >= len(old_data) and old not in self._disk:
                spill.append((old, old_data))
            elif old not in self._disk:
                self.evictions += 1
        for old, old_data in spill:
            await self._spill(old, old_data)

    async def _spill(self, key: bytes, data: bytes) -> None:
        nonce = os.urandom(12)
        blob = nonce + self._aead.encrypt(nonce, data, key)
        try:
            await asyncio.to_thread(_write_private, self._path(key), blob)
        except OSError as exc:
            log.warning("chunk cache: cannot spill to disk: %s", exc.strerror)
            self.evictions += 1
            return
        self._disk[key] = len(blob)
        self._disk_bytes += len(blob)
        while self._disk_bytes > self._disk_limit and self._disk:
            self._drop_disk(next(iter(self._disk)))
            self.evictions += 1

    def _drop_disk(self, key: bytes) -> None:
        size = self._disk.pop(key, None)
        if size is not None:
            self._disk_bytes -= size
            with contextlib.suppress(OSError):
                self._path(key).unlink()

    def counts(self) -> CacheCounts:
        """The metrics' view (read from any thread: plain ints)."""
        return CacheCounts(self.hits, self.misses, self._mem_bytes + self._disk_bytes, self.evictions)

    @property
    def memory_bytes(self) -> int:
        return self._mem_bytes

    @property
    def disk_bytes(self) -> int:
        return self._disk_bytes

    def close(self) -> None:
        self._mem.clear()
        self._mem_bytes = 0
        if self._dir is not None and self._made_dir:
            shutil.rmtree(self._dir, ignore_errors=True)
        else:
            for key in list(self._disk):
                self._drop_disk(key)
        self._disk.clear()
        self._disk_bytes = 0


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
