"""The chunker: reads sources and cuts them into fixed-size pieces (the only reader of source files).

Each :class:`FileJob` becomes pieces of exactly ``chunk_size`` bytes and a final, shorter one
(possibly empty, so the end of every file is explicit). Reads run in threads; a whole file is
never held in memory — the bounded outbox stops the reading when downstream is busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable
from typing import BinaryIO

from ..engine.errors import LocalIOError, NotFound, UsageError, VaultError
from .mailbox import EndOfChannel, ReceiveChannel, SendChannel
from .messages import FileJob, Piece, Planned, Source


def _source_error(path: str, exc: OSError) -> VaultError:
    if isinstance(exc, FileNotFoundError):
        return NotFound(f"{path}: no such file (it may have disappeared since it was listed)")
    if isinstance(exc, IsADirectoryError):
        return UsageError(f"{path} is a directory")
    return LocalIOError(f"cannot read {path}: {exc.strerror}")


async def iter_chunks(source: Source, chunk_size: int) -> AsyncGenerator[bytes, None]:
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
        except OSError as exc:
            raise _source_error(path, exc) from exc
        try:
            async with contextlib.aclosing(iter_chunks(f, chunk_size)) as pieces:
                async for piece in pieces:
                    yield piece
        except OSError as exc:
            raise _source_error(path, exc) from exc
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


SMALL = 256 << 10  # path sources up to this size (as scanned) are read whole, many per thread hop
BATCH_BYTES = 8 << 20
BATCH_FILES = 512


def _is_small(job: FileJob) -> bool:
    return 0 <= job.size_hint <= SMALL and isinstance(job.source, (str, os.PathLike))


#: what the reading thread makes of a small file: its bytes, keyed id, whether compressing was tried, the frame
_Read = tuple[bytes, bytes | None, bool, bytes | None]
Squeeze = Callable[[bytes], bytes | None]


def _read_whole(path: str) -> bytes:
    """At most SMALL + 1 bytes of ``path`` (more means it grew past SMALL since the scan)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, SMALL + 1)
        # a short read before the end (FUSE, NFS): read on until the end or past SMALL
        while len(data) <= SMALL and (more := os.read(fd, SMALL + 1 - len(data))):
            data += more
        return data
    finally:
        os.close(fd)


def _read_small(paths: list[object], chunk_id: Callable[[bytes], bytes] | None = None,
                squeeze: Squeeze | None = None, inline_max: int = -1) -> list[_Read | BaseException | None]:
    """Read whole small files in one thread hop; ``None`` for a file that grew past SMALL since the scan.

    With ``chunk_id``, each file shorter than a chunk is hashed here, and with ``squeeze`` each one
    longer than ``inline_max`` is compressed here too: not on the event loop (keyed BLAKE3 and zstd
    release the GIL, so this thread's work overlaps the loop's). Compressing a file that turns out to
    be stored already is wasted; a new one would be compressed anyway.
    """
    out: list[_Read | BaseException | None] = []
    for p in paths:
        path = os.fspath(p)  # type: ignore[call-overload]
        try:
            data = _read_whole(path)
        except OSError as exc:
            out.append(_source_error(path, exc))
            continue
        if len(data) > SMALL:
            out.append(None)
            continue
        squeezed = squeeze is not None and bool(data) and len(data) > inline_max
        out.append((data, chunk_id(data) if chunk_id is not None and data else None, squeezed,
                    squeeze(data) if squeezed and squeeze is not None else None))
    return out


def chunker(chunk_size: int, chunk_id: Callable[[bytes], bytes] | None = None, squeeze: Squeeze | None = None,
            inline_max: int = -1) -> Callable[[ReceiveChannel[FileJob], SendChannel[Piece]], Awaitable[None]]:
    """The stage: ``FileJob`` in, ``Piece`` out.

    Small files named by path are read whole, up to BATCH_FILES / BATCH_BYTES of them per thread
    hop (a thread hop per open, read and close made 10,000 small files cost seconds); everything
    else streams chunk by chunk. With ``chunk_id`` (the keyed id function the engine lends), the
    reading thread also computes the id of every small file shorter than a chunk and the piece
    carries it: the event loop no longer hashes them (nor waits to get the GIL back after each hash).
    With ``squeeze`` (compression on), the reading thread also compresses every small file longer
    than ``inline_max`` (a shorter one stays inline in its page) and the piece carries the frame.
    """

    async def emit(job: FileJob, source: Source, outbox: SendChannel[Piece], read: _Read | None = None) -> None:
        if isinstance(source, Planned):
            await planned(job.token, source, outbox)
            return
        if isinstance(source, bytes) and len(source) < chunk_size:  # a small file read whole: one piece
            _, blob_id, squeezed, frame = read or (source, None, False, None)
            await outbox.send(Piece(job.token, 0, True, source, blob_id=blob_id, squeezed=squeezed, frame=frame))
            return
        index = 0
        held: bytes | None = None  # one piece of lookahead, to mark the last one final
        async with contextlib.aclosing(iter_chunks(source, chunk_size)) as pieces:
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

    async def planned(token: int, source: Planned, outbox: SendChannel[Piece]) -> None:
        last = len(source.pieces) - 1
        if last < 0:
            await outbox.send(Piece(token, 0, True, b""))
        for i, p in enumerate(source.pieces):
            if (len(p) if isinstance(p, bytes) else p.length) != chunk_size and i != last:
                raise UsageError("every planned piece but the last is a full chunk")
            if isinstance(p, bytes):
                await outbox.send(Piece(token, i, i == last, p))
            else:
                await outbox.send(Piece(token, i, i == last, b"", kept=p))

    async def run(inbox: ReceiveChannel[FileJob], outbox: SendChannel[Piece]) -> None:
        waiting: deque[FileJob] = deque()
        while True:
            if not waiting:
                try:
                    waiting.append(await inbox.receive())
                except EndOfChannel:
                    return
            job = waiting.popleft()
            if not _is_small(job):
                await emit(job, job.source, outbox)
                continue
            batch, total = [job], job.size_hint
            while len(batch) < BATCH_FILES and total < BATCH_BYTES:
                try:
                    nxt = inbox.receive_nowait()
                except (asyncio.QueueEmpty, EndOfChannel):
                    break
                if not _is_small(nxt):
                    waiting.append(nxt)
                    break
                batch.append(nxt)
                total += nxt.size_hint
            contents = await asyncio.to_thread(_read_small, [j.source for j in batch], chunk_id, squeeze, inline_max)
            for j, got in zip(batch, contents, strict=True):
                if isinstance(got, BaseException):
                    raise got
                if got is None:
                    await emit(j, j.source, outbox)
                else:
                    await emit(j, got[0], outbox, got)

    return run
