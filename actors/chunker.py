"""The chunker: reads sources and cuts them into fixed-size pieces (the only reader of source files).

Each :class:`FileJob` becomes pieces of exactly ``chunk_size`` bytes and a final, shorter one
(possibly empty, so the end of every file is explicit). Reads run in threads; a whole file is
never held in memory — the bounded outbox stops the reading when downstream is busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable
from typing import BinaryIO

from ..engine.errors import LocalIOError, NotFound, UsageError
from .mailbox import ReceiveChannel, SendChannel
from .messages import FileJob, Piece


async def iter_chunks(source: object, chunk_size: int) -> AsyncGenerator[bytes, None]:
    """Yield the source in pieces of exactly ``chunk_size`` bytes, the last one shorter (maybe none)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        mv = memoryview(source).cast("B")
        for i in range(0, len(mv), chunk_size):
            yield bytes(mv[i : i + chunk_size])
        return
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            f = await asyncio.to_thread(open, path, "rb")
        except FileNotFoundError:
            raise NotFound(f"{path}: no such file") from None
        except IsADirectoryError:
            raise UsageError(f"{path} is a directory") from None
        except OSError as exc:
            raise LocalIOError(f"cannot read {path}: {exc.strerror}") from exc
        try:
            async with contextlib.aclosing(iter_chunks(f, chunk_size)) as pieces:
                async for piece in pieces:
                    yield piece
        except OSError as exc:
            raise LocalIOError(f"cannot read {path}: {exc.strerror}") from exc
        finally:
            f.close()
        return
    if hasattr(source, "read"):
        fobj: BinaryIO = source  # type: ignore[assignment]
        while True:
            piece = await asyncio.to_thread(_read_full, fobj, chunk_size)
            if piece:
                yield piece
            if len(piece) < chunk_size:
                return
    if isinstance(source, AsyncIterable):
        buf = bytearray()
        async for data in source:
            buf += data
            while len(buf) >= chunk_size:
                yield bytes(buf[:chunk_size])
                del buf[:chunk_size]
        if buf:
            yield bytes(buf)
        return
    raise UsageError(f"unsupported source type {type(source).__name__}")


def _read_full(f: BinaryIO, n: int) -> bytes:
    """Read exactly ``n`` bytes unless the stream ends first (pipes return short reads)."""
    parts = []
    want = n
    while want:
        piece = f.read(want)
        if not piece:
            break
        parts.append(piece)
        want -= len(piece)
    return b"".join(parts)


def chunker(chunk_size: int) -> Callable[[ReceiveChannel[FileJob], SendChannel[Piece]], Awaitable[None]]:
    """The stage: ``FileJob`` in, ``Piece`` out."""

    async def run(inbox: ReceiveChannel[FileJob], outbox: SendChannel[Piece]) -> None:
        async for job in inbox:
            index = 0
            held: bytes | None = None  # one piece of lookahead, to mark the last one final
            async with contextlib.aclosing(iter_chunks(job.source, chunk_size)) as pieces:
                async for piece in pieces:  # closed (file handle too) at once if a send fails
                    if held is not None:
                        await outbox.send(Piece(job.token, index, False, held))
                        index += 1
                    held = piece
            if held is not None and len(held) < chunk_size:
                await outbox.send(Piece(job.token, index, True, held))
            else:
                if held is not None:
                    await outbox.send(Piece(job.token, index, False, held))
                    index += 1
                await outbox.send(Piece(job.token, index, True, b""))

    return run
