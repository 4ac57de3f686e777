"""The file objects :meth:`VaultFileSystem.open` returns: a random-access reader and a streaming writer.

:class:`VaultReadFile` resolves the file once (``vault.open``), so every read sees the content the
file had when it was opened. fsspec's block cache sits on top: ``read``/``readinto``/``seek`` fetch
whole blocks (by default one vault chunk) through the vault's read route and keep at most
``maxblocks`` of them (4 by default), so memory stays bounded however large the file is; reading
on from where the last block ended continues the same verified stream with its readahead.

:class:`VaultWriteFile` streams: each block written is handed over an ``asyncio.Queue`` (two
blocks deep) to a ``vault.put`` running as a task on the filesystem's event loop, which chunks,
encrypts and uploads while the caller keeps writing. A full queue makes ``write`` wait, so memory
stays at a few blocks and nothing is spooled to disk. Closing waits for the put (the file is then
in the vault, committed when the filesystem's commit mode is ``"close"``); leaving a ``with``
block by an exception, or :meth:`VaultWriteFile.discard`, cancels the put and the vault is left
as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

from fsspec.asyn import sync
from fsspec.spec import AbstractBufferedFile

from .. import VaultError
from .errors import translated

if TYPE_CHECKING:
    from .. import Vault
    from ..engine.content.vaultfile import VaultFile

QUEUE_BLOCKS = 2  # blocks waiting between the writer and the vault's pipeline
DEFAULT_MAXBLOCKS = 4  # blocks the reader's cache keeps
_END = None


class Host(Protocol):
    """What the files need of their filesystem (:class:`~.core.VaultFileSystem`)."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    async def _vault(self) -> Vault: ...

    async def _changed(self) -> None: ...


class VaultReadFile(AbstractBufferedFile):  # type: ignore[misc]
    """A vault file open for reading (``"rb"``): seekable, served by ranged reads with a bounded block cache."""

    def __init__(self, fs: Host, path: str, source: VaultFile, *, block_size: int,
                 cache_type: str = "blockcache", cache_options: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        self._source = source
        options = dict(cache_options or {})
        if cache_type == "blockcache":
            options.setdefault("maxblocks", DEFAULT_MAXBLOCKS)
        super().__init__(fs, path, mode="rb", block_size=block_size, cache_type=cache_type,
                         cache_options=options, size=source.size, **kwargs)

    @property
    def details(self) -> dict[str, Any]:
        return {"name": self.path, "size": self._source.size, "type": "file"}

    @details.setter
    def details(self, value: dict[str, Any]) -> None:
        pass

    def _fetch_range(self, start: int, end: int) -> bytes:
        return sync(self.fs.loop, self._fetch, start, end)  # type: ignore[no-any-return]

    async def _fetch(self, start: int, end: int) -> bytes:
        with translated():
            if self._source.tell() != start:
                await self._source.seek(start)
            return await self._source.read(max(0, end - start))

    def close(self) -> None:
        if not self.closed:
            try:
                running = _running_loop()
                if running is not None and running is self.fs.loop:  # from the loop itself (a collected file)
                    running.create_task(self._source.aclose())
                else:
                    sync(self.fs.loop, self._source.aclose)
            finally:
                super().close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at exit the loop may be gone: nothing left to release
            self.close()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class VaultWriteFile(AbstractBufferedFile):  # type: ignore[misc]
    """A vault file open for writing (``"wb"``/``"xb"``): its bytes stream into ``vault.put`` as they come."""

    def __init__(self, fs: Host, path: str, mode: str, *, block_size: int, **kwargs: Any) -> None:
        super().__init__(fs, path, mode=mode, block_size=block_size, **kwargs)
        self._queue: asyncio.Queue[bytes | None] | None = None
        self._task: asyncio.Task[None] | None = None

    # --- fsspec's upload hooks, called from the caller's thread --------------------------------

    def _initiate_upload(self) -> None:
        sync(self.fs.loop, self._start)

    def _upload_chunk(self, final: bool = False) -> bool:
        data = self.buffer.getvalue()
        try:
            if data:
                sync(self.fs.loop, self._send, data)
            if final:
                sync(self.fs.loop, self._finish)
        except BaseException:
            self._cancel()
            raise
        return True

    def discard(self) -> None:
        """Abandon the file: the put is cancelled and the vault keeps what the path held before."""
        self._cancel()
        self.closed = True

    def __exit__(self, et: type[BaseException] | None, *rest: Any) -> None:
        if et is not None and not self.closed:
            self.discard()
        else:
            self.close()

    def __del__(self) -> None:
        """A write file dropped without ``close`` is not stored: never half a file in the vault."""
        if not self.closed:
            self.closed = True
            task = self._task
            if task is not None and not task.done():
                task.get_loop().call_soon_threadsafe(task.cancel)

    # --- on the filesystem's event loop ---------------------------------------------------------

    async def _start(self) -> None:
        vault = await self.fs._vault()
        self._queue = asyncio.Queue(QUEUE_BLOCKS)
        queue = self._queue

        async def pieces() -> AsyncIterator[bytes]:
            while (piece := await queue.get()) is not _END:
                yield piece

        async def put() -> None:
            with translated():
                await vault.put(self.path, pieces())

        self._task = asyncio.ensure_future(put())

    async def _send(self, item: bytes | None) -> None:
        """Hand one block (or the end) to the put; waits while the queue is full; raises what the put raised."""
        assert self._queue is not None and self._task is not None
        if self._task.done():
            self._task.result()
            raise VaultError(f"{self.path}: the write ended early")
        putter = asyncio.ensure_future(self._queue.put(item))
        done, _ = await asyncio.wait({putter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if putter not in done:
            putter.cancel()
            self._task.result()
            raise VaultError(f"{self.path}: the write ended early")

    async def _finish(self) -> None:
        await self._send(_END)
        assert self._task is not None
        await self._task
        await self.fs._changed()

    def _cancel(self) -> None:
        task = self._task
        if task is not None and not task.done():
            async def stop() -> None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            sync(self.fs.loop, stop)
