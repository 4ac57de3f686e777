"""A vault file as a blocking, seekable :class:`io.RawIOBase` (what ``SyncVault.open(path)`` returns).

:class:`SyncFile` serves ``readinto`` with ranged reads of the async :class:`VaultFile` run on the
vault's private loop, so it plugs into everything that takes a binary file: ``io.BufferedReader``,
``shutil.copyfileobj``, ``zipfile.ZipFile``, ``tarfile``. It keeps its own position (``seek`` and
``tell`` cost no call into the loop); each read asks for exactly the bytes the caller's buffer holds,
so memory is that buffer plus the engine's one chunk and readahead, whatever the file size. Like the
async file it keeps reading the content the file had when it was opened.

Errors: the data's own are the vault's classes (IntegrityError naming the file, UsageError once the
vault is closed); misuse of the file object follows :mod:`io`, because the code that takes file
objects expects it: ValueError for a closed file or an unknown ``whence``, OSError (EINVAL) for a
seek before the start.
"""

from __future__ import annotations

import errno
import io
import os
from typing import TYPE_CHECKING

from ._syncloop import LoopThread
from .engine.content.vaultfile import VaultFile
from .engine.errors import UsageError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

_READALL_STEP = 1 << 20  # readall() asks the loop for this much per call (the result is in memory anyway)


async def _read_at(f: VaultFile, pos: int, size: int) -> bytes:
    await f.seek(pos)  # free when already there: the stream continues
    return await f.read(size)


class SyncFile(io.RawIOBase):
    """A vault file open for blocking binary reads (see the module doc). Close it, or use ``with``."""

    def __init__(self, loop: LoopThread, file: VaultFile) -> None:
        super().__init__()
        self._lt = loop
        self._file = file
        self._pos = 0

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<SyncFile {self._file.name!r} size={self._file.size} pos={self._pos}{state}>"

    @property
    def name(self) -> str:
        """The file's path in the vault."""
        return self._file.name

    @property
    def mode(self) -> str:
        return "rb"

    @property
    def size(self) -> int:
        """The file's size in bytes (as it was when opened)."""
        return self._file.size

    def _check(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def readable(self) -> bool:
        self._check()
        return True

    def seekable(self) -> bool:
        self._check()
        return True

    def writable(self) -> bool:
        self._check()
        return False

    def tell(self) -> int:
        self._check()
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move to ``offset`` from the start, the current position or the end; past the end is allowed."""
        self._check()
        if whence == os.SEEK_SET:
            pos = offset
        elif whence == os.SEEK_CUR:
            pos = self._pos + offset
        elif whence == os.SEEK_END:
            pos = self._file.size + offset
        else:
            raise ValueError(f"invalid whence ({whence}, should be {os.SEEK_SET}, {os.SEEK_CUR} or {os.SEEK_END})")
        if pos < 0:
            raise OSError(errno.EINVAL, f"negative seek position {pos}")
        self._pos = pos
        return pos

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Fill ``buffer`` from the current position; the bytes read, 0 at the end of the file."""
        self._check()
        with memoryview(buffer) as view, view.cast("B") as out:
            want = min(len(out), self._file.size - self._pos)
            if want <= 0:
                return 0
            data = self._lt.run(_read_at(self._file, self._pos, want))
            out[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def readall(self) -> bytes:
        """The rest of the file, read in steps of 1 MiB (``read()`` and ``read(-1)`` land here)."""
        self._check()
        out = bytearray()
        while self._pos < self._file.size:
            data = self._lt.run(_read_at(self._file, self._pos, _READALL_STEP))
            if not data:
                break
            out += data
            self._pos += len(data)
        return bytes(out)

    def close(self) -> None:
        """Release the engine's stream (on the loop); idempotent, and quiet once the vault is closed."""
        if self.closed:
            return
        try:
            if self._lt.running and not self._lt.in_loop_thread():
                self._lt.run(self._file.aclose())
            # else: the loop is gone (its shutdown closed the stream) or we are on it (garbage collection)
        except UsageError:
            if self._lt.running:
                raise  # else the vault closed meanwhile, and with it the stream
        finally:
            super().close()
