"""The local state of one file being written through the mount: its dirty chunks, spooled to disk.

A :class:`FileState` overlays the stored file (size ``vault_size``) with a local size and a set
of dirty chunks whose current bytes live in a spool file: chunk ``i`` at offset ``i·chunk_size``.
The spool is an anonymous file in the cache folder (``O_TMPFILE``, or created and unlinked at
once), so it disappears with the process and nothing else can open it. Everything beyond the local
size in the spool is zero (shrinking truncates it), so chunks that a growth adds are dirty zeros
without a write.

The invariant the flush relies on (``content.FileContent.flush``): every chunk below the local
size that is not dirty is stored in the vault with exactly the length it has at the local size.
Each dirty chunk carries a version number, bumped on every change, so a flush that ran while the
chunk changed again leaves it dirty.

Disk I/O runs in threads; an ``asyncio.Lock`` serializes the changes of one file.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.errors import LocalIOError

_versions = itertools.count(1)


def want(size: int, index: int, chunk_size: int) -> int:
    """The length chunk ``index`` has in a file of ``size`` bytes (0 past the end)."""
    return max(0, min(chunk_size, size - index * chunk_size))


def n_chunks(size: int, chunk_size: int) -> int:
    return -(-size // chunk_size)


class Spool:
    """A private, nameless scratch file. Created lazily on the first write."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            self._folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                self._fd = os.open(self._folder, os.O_TMPFILE | os.O_RDWR, 0o600)
            except OSError:
                fd, name = tempfile.mkstemp(dir=self._folder)
                os.unlink(name)
                self._fd = fd
        return self._fd

    async def pwrite(self, off: int, data: bytes | memoryview) -> None:
        await asyncio.to_thread(self._pwrite, off, data)

    def _pwrite(self, off: int, data: bytes | memoryview) -> None:
        fd = self._open()
        view = memoryview(data)
        try:
            while view:
                n = os.pwrite(fd, view, off)
                view = view[n:]
                off += n
        except OSError as exc:
            what = "the cache disk is full" if exc.errno == errno.ENOSPC else exc.strerror
            raise LocalIOError(f"cannot spool written data: {what}") from exc

    async def pread(self, off: int, n: int) -> bytes:
        """``n`` bytes at ``off``; a hole or the region past the end reads as zeros."""
        if self._fd is None or n <= 0:
            return bytes(max(0, n))
        data = await asyncio.to_thread(os.pread, self._fd, n, off)
        return data if len(data) == n else data + bytes(n - len(data))

    async def truncate(self, size: int) -> None:
        if self._fd is not None:
            await asyncio.to_thread(os.ftruncate, self._fd, size)

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


@dataclass(slots=True, eq=False)
class FileState:
    ino: int
    size: int  # the local size (what readers see)
    vault_size: int  # the size of the stored file after the last flush
    spool: Spool
    dirty: dict[int, int] = field(default_factory=dict)  # chunk index -> version
    mtime_ns: int | None = None  # set by writes and utimens while data is pending
    orphan: bool = False  # unlinked while open: never flushed, dropped at the last close
    stale: bool = False  # other clients' commits were adopted: re-read the stored size when clean
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    flushing: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def pending(self) -> bool:
        """True while the vault does not hold this file's current content."""
        return bool(self.dirty) or self.size != self.vault_size

    def mark(self, index: int) -> None:
        self.dirty[index] = next(_versions)

    def close(self) -> None:
        self.spool.close()
