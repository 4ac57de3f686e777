"""The local state of one file being written through the mount: its dirty chunks, and the spool they spill to.

A :class:`FileState` overlays the stored file (size ``vault_size``) with a local size and a set
of dirty chunks. A dirty chunk's current bytes are in a memory slot (``mem``, see
:mod:`.writeback`), or in a blob stored ahead of the flush (``stored``, when its version is the
chunk's current one), or else in a spool file: chunk ``i`` at offset ``i·chunk_size``.
The spool is an anonymous file in the cache folder (``O_TMPFILE``, or created and unlinked at
once), so it disappears with the process and nothing else can open it. Its bytes are encrypted
like the chunk cache's spill, under a key that lives only in this process's memory: AES-256-XTS
per 64 KiB sector (the disk-encryption mode: random access, no stored nonces), tweaked by a random
per-spool value and the sector number, so a laptop's disk never holds written plaintext (issue 10
item 9). A sector whose stored bytes are all zero is a hole and reads as zeros. Everything beyond
the local size in the spool is zero (shrinking truncates it), so chunks that a growth adds are
dirty zeros without a write (a hole, until a write gives them a slot).

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

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..engine.errors import LocalIOError, NoSpace
from ..engine.format.refs import Blob

_versions = itertools.count(1)


def want(size: int, index: int, chunk_size: int) -> int:
    """The length chunk ``index`` has in a file of ``size`` bytes (0 past the end)."""
    return max(0, min(chunk_size, size - index * chunk_size))


def n_chunks(size: int, chunk_size: int) -> int:
    return -(-size // chunk_size)


SECTOR = 1 << 16  # 64 KiB: few cipher setups per write (4 KiB units ran at a quarter of the speed)
_HOLE = bytes(SECTOR)


class Spool:
    """A private, nameless, encrypted scratch file. Created lazily on the first write."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._fd: int | None = None
        key = os.urandom(64)
        while key[:32] == key[32:]:  # XTS refuses equal halves (never, in practice)
            key = os.urandom(64)
        self._aes = algorithms.AES(key)
        self._tweak = int.from_bytes(os.urandom(8), "little") << 64

    def _crypt(self, sector: int, data: bytes | bytearray, encrypt: bool) -> bytes:
        cipher = Cipher(self._aes, modes.XTS((self._tweak | sector).to_bytes(16, "little")))
        ctx = cipher.encryptor() if encrypt else cipher.decryptor()
        return ctx.update(data) + ctx.finalize()

    def _read_sectors(self, first: int, count: int) -> bytearray:
        """Plaintext of ``count`` sectors from ``first`` (holes and the region past the end: zeros)."""
        assert self._fd is not None
        raw = os.pread(self._fd, count * SECTOR, first * SECTOR)
        out = bytearray(count * SECTOR)
        for k in range(len(raw) // SECTOR):
            ct = raw[k * SECTOR : (k + 1) * SECTOR]
            if ct != _HOLE:
                out[k * SECTOR : (k + 1) * SECTOR] = self._crypt(first + k, ct, encrypt=False)
        return out

    def _write_sectors(self, first: int, plain: bytearray) -> None:
        assert self._fd is not None
        out = bytearray(len(plain))
        for k in range(len(plain) // SECTOR):
            out[k * SECTOR : (k + 1) * SECTOR] = self._crypt(first + k, plain[k * SECTOR : (k + 1) * SECTOR], True)
        view = memoryview(out)
        off = first * SECTOR
        while view:
            n = os.pwrite(self._fd, view, off)
            view = view[n:]
            off += n

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
        if not len(data):
            return
        self._open()
        first, last = off // SECTOR, (off + len(data) - 1) // SECTOR
        count = last - first + 1
        try:
            if off % SECTOR or (off + len(data)) % SECTOR:  # partly covered edge sectors: read them first
                plain = bytearray(count * SECTOR)
                plain[:SECTOR] = self._read_sectors(first, 1)
                if count > 1:
                    plain[-SECTOR:] = self._read_sectors(last, 1)
            else:
                plain = bytearray(count * SECTOR)
            start = off - first * SECTOR
            plain[start : start + len(data)] = data
            self._write_sectors(first, plain)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise NoSpace("cannot spool written data: the cache disk is full") from exc
            raise LocalIOError(f"cannot spool written data: {exc.strerror}") from exc

    async def pread(self, off: int, n: int) -> bytes:
        """``n`` bytes at ``off``; a hole or the region past the end reads as zeros."""
        if self._fd is None or n <= 0:
            return bytes(max(0, n))
        return await asyncio.to_thread(self._pread, off, n)

    def _pread(self, off: int, n: int) -> bytes:
        first, last = off // SECTOR, (off + n - 1) // SECTOR
        plain = self._read_sectors(first, last - first + 1)
        start = off - first * SECTOR
        return bytes(plain[start : start + n])

    async def truncate(self, size: int) -> None:
        if self._fd is not None:
            await asyncio.to_thread(self._truncate, size)

    def _truncate(self, size: int) -> None:
        """Cut at ``size``: whole sectors beyond go, the tail of a partial last sector becomes zeros."""
        assert self._fd is not None
        last, keep = divmod(size, SECTOR)
        os.ftruncate(self._fd, -(-size // SECTOR) * SECTOR)
        if keep:
            plain = self._read_sectors(last, 1)
            plain[keep:] = bytes(SECTOR - keep)
            self._write_sectors(last, plain)

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


@dataclass(slots=True, eq=False)
class Slot:
    """A dirty chunk's bytes at ``n``, its length at the file's local size: ``buf[:n]`` (``buf[n:]`` is
    zero), or, for a chunk written so far only by appends from its start, the writes' own buffers
    ``parts`` (``filled`` bytes, zeros from there to ``n``), joined once when the chunk is stored."""

    buf: bytearray
    n: int
    lent: bool = False  # being stored (an upload or a patch): copied before any change
    parts: list[bytes] | None = None
    filled: int = 0  # the bytes in ``parts``

    @property
    def held(self) -> int:
        """Bytes of memory it holds."""
        return len(self.buf) if self.parts is None else self.filled

    def data(self) -> bytes:
        if self.parts is None:
            return bytes(memoryview(self.buf)[: self.n])
        joined = b"".join(self.parts)
        return joined + bytes(self.n - self.filled) if self.n > self.filled else joined

    def read(self, lo: int, hi: int) -> bytes:
        return bytes(self.buf[lo:hi]) if self.parts is None else self.data()[lo:hi]


@dataclass(slots=True, eq=False)
class FileState:
    ino: int
    size: int  # the local size (what readers see)
    vault_size: int  # the size of the stored file after the last flush
    spool: Spool
    dirty: dict[int, int] = field(default_factory=dict)  # chunk index -> version
    mem: dict[int, Slot] = field(default_factory=dict)  # chunk index -> its bytes in memory
    # index -> (version, blob stored ahead); only ever of the chunk's current version: a change drops it
    stored: dict[int, tuple[int, Blob]] = field(default_factory=dict)
    uploading: int = 0  # chunks of this file the write-behind is storing now
    draining: bool = False  # a final flush runs: no new write-behind (it takes every chunk itself)
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
        self.stored.pop(index, None)

    def blob(self, index: int) -> Blob | None:
        """The blob stored ahead for dirty chunk ``index`` if it holds the chunk's current bytes."""
        got = self.stored.get(index)
        return got[1] if got is not None and got[0] == self.dirty.get(index) else None

    def close(self) -> None:
        self.spool.close()
