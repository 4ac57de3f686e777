"""An open vault file for reading: ``read``, ``seek``, ``tell`` over the vault's one streaming read route.

``vault.open(path)`` resolves the file once, so every read of one :class:`VaultFile` sees the same
content even if the vault adopts a newer generation meanwhile (a snapshot of that file). Reads
pull from one stream of :meth:`Vault._stream` (the readahead window of ``read_blobs``); a seek
closes the stream and the next read starts a new one at the new position, except a short
forward seek inside the piece already held. Memory is bounded by one blob plus the readahead
window, whatever the file size. Closing (or leaving ``async with``) releases the stream.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncGenerator, Callable
from types import TracebackType

from ..catalog.tree import File
from ..errors import UsageError, VaultError

Stream = Callable[[File, int, int | None], AsyncGenerator[bytes, None]]


class VaultFile:
    """A vault file open for reading (binary). Use ``async with await vault.open(path) as f``."""

    def __init__(self, name: str, node: File, stream: Stream, check_open: Callable[[], None]) -> None:
        self.name = name
        self._node = node
        self._open_stream = stream
        self._check_vault = check_open
        self._pos = 0
        self._stream: AsyncGenerator[bytes, None] | None = None
        self._held = memoryview(b"")  # bytes of the current piece not yet returned, starting at _pos
        self._closed = False

    @property
    def size(self) -> int:
        """The file's size in bytes (as it was when opened)."""
        return self._node.size

    @property
    def closed(self) -> bool:
        return self._closed

    def tell(self) -> int:
        """The current position."""
        return self._pos

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move to ``offset`` relative to the start, the current position or the end; returns the position.

        Seeking past the end is allowed (reads there return ``b""``). Raises UsageError for a
        negative result or an unknown ``whence``.
        """
        self._check()
        if whence == os.SEEK_SET:
            pos = offset
        elif whence == os.SEEK_CUR:
            pos = self._pos + offset
        elif whence == os.SEEK_END:
            pos = self._node.size + offset
        else:
            raise UsageError("whence must be SEEK_SET, SEEK_CUR or SEEK_END")
        if pos < 0:
            raise UsageError("cannot seek before the start of the file")
        if 0 <= pos - self._pos < len(self._held):
            self._held = self._held[pos - self._pos :]  # inside the piece we hold: no new stream
        elif pos != self._pos:
            await self._drop_stream()
        self._pos = pos
        return pos

    async def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes from the current position (all the rest for ``size < 0``); ``b""`` at the end.

        Raises IntegrityError (damaged or missing data, naming the file), UsageError (closed).
        """
        self._check()
        end = self._node.size if size < 0 else min(self._node.size, self._pos + size)
        want = end - self._pos
        if want <= 0:
            return b""
        out = bytearray()
        while len(out) < want:
            if not self._held:
                if self._stream is None:
                    self._stream = self._open_stream(self._node, self._pos + len(out), None)
                try:
                    self._held = memoryview(await anext(self._stream))
                except StopAsyncIteration:
                    break
            take = self._held[: want - len(out)]
            out += take
            self._held = self._held[len(take) :]
        self._pos += len(out)
        return bytes(out)

    async def aclose(self) -> None:
        """Release the stream. Idempotent."""
        if not self._closed:
            self._closed = True
            await self._drop_stream()

    async def __aenter__(self) -> VaultFile:
        return self

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<VaultFile {self.name!r} size={self._node.size} pos={self._pos}{' closed' if self._closed else ''}>"

    def _check(self) -> None:
        if self._closed:
            raise UsageError("the file is closed")
        self._check_vault()

    async def _drop_stream(self) -> None:
        self._held = memoryview(b"")
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(VaultError):  # a stream that already failed has nothing to release
                await stream.aclose()
