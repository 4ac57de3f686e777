"""File content in and out: chunk a source into blobs, and stream blobs back as bytes.

Write side: a source (local path, bytes, binary file object or async iterator of bytes) is cut
into fixed ``chunk_size`` pieces; each full chunk gets its keyed id off the event loop, is skipped
when the vault already holds it (local index, then the create-only put reporting "found"), else is
sealed and uploaded as its own content-addressed object, with at most ``concurrency`` chunks in
flight. The tail (or a whole small file) goes into the open data pack; a file of at most
``inline_max`` bytes is returned inline. Memory is bounded by ``concurrency × chunk size``.

Read side: the blobs of a file are fetched with a window of concurrent reads, verified by the
store, and yielded in order.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .cache import Cache
from .errors import LocalIOError, NotFound, UsageError
from .keys import KIND_CHUNK
from .objects import object_len
from .packs import PackWriter, PendingRef
from .pages import BlobRef
from .store import ObjectStore

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO | AsyncIterable[bytes]
BlobLike = BlobRef | PendingRef


@dataclass(slots=True)
class Written:
    size: int
    inline: bytes | None
    blobs: list[BlobLike]
    uploaded: int  # bytes of new objects written
    deduped: int  # chunks found already stored


async def iter_chunks(source: Source, chunk_size: int) -> AsyncIterator[bytes]:
    """Yield the source in pieces of exactly ``chunk_size`` bytes, the last one shorter (maybe none)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        mv = memoryview(source).cast("B")
        for i in range(0, len(mv), chunk_size):
            yield bytes(mv[i : i + chunk_size])
        return
    if isinstance(source, (str, os.PathLike)):
        try:
            f = await asyncio.to_thread(open, os.fspath(source), "rb")
        except FileNotFoundError:
            raise NotFound(f"{os.fspath(source)}: no such file") from None
        except IsADirectoryError:
            raise UsageError(f"{os.fspath(source)} is a directory") from None
        except OSError as exc:
            raise LocalIOError(f"cannot read {os.fspath(source)}: {exc.strerror}") from exc
        try:
            async for piece in iter_chunks(f, chunk_size):
                yield piece
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
    if hasattr(source, "__aiter__"):
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


class ContentWriter:
    """Turns sources into blob lists. Shared by all writers of one vault; pack access is serialized."""

    def __init__(self, store: ObjectStore, data_pack: PackWriter, cache: Cache, inline_max: int,
                 concurrency: int) -> None:
        self._store = store
        self._pack = data_pack
        self._pack_lock = asyncio.Lock()
        self._cache = cache
        self._inline_max = inline_max
        self._concurrency = max(1, concurrency)
        self._full_len = object_len(store.chunk_size, store.chunk_size, store.sealer.pad_floor)

    async def write(self, source: Source) -> Written:
        size = 0
        tasks: list[asyncio.Task[BlobLike]] = []
        inflight: set[asyncio.Task[BlobLike]] = set()
        out = Written(0, None, [], 0, 0)
        chunk_size = self._store.chunk_size
        try:
            async with asyncio.TaskGroup() as tg:
                async for piece in iter_chunks(source, chunk_size):
                    size += len(piece)
                    if len(piece) == chunk_size:
                        while len(inflight) >= self._concurrency:  # backpressure: memory stays bounded
                            _, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                        task = tg.create_task(self._full_chunk(piece, out))
                        inflight.add(task)
                        tasks.append(task)
                    elif size <= self._inline_max:
                        out.inline = piece
                    else:
                        tasks.append(tg.create_task(self._small_blob(piece, out)))
        except BaseExceptionGroup as eg:
            raise _first(eg) from None
        out.size = size
        out.blobs = [t.result() for t in tasks]
        if size == 0:
            out.inline = b""
        return out

    async def write_piece(self, piece: bytes) -> BlobLike:
        """Store one piece of a file: a full chunk as its own object, anything shorter in the data pack."""
        stats = Written(0, None, [], 0, 0)
        if len(piece) == self._store.chunk_size:
            return await self._full_chunk(piece, stats)
        return await self._small_blob(piece, stats)

    async def _full_chunk(self, piece: bytes, out: Written) -> BlobLike:
        keys = self._store.keys
        chunk_id = await asyncio.to_thread(keys.chunk_id_of, piece)
        name = keys.chunk_name(chunk_id)
        ref = BlobRef(self._store.epoch, KIND_CHUNK, chunk_id, name, 0, len(piece), self._full_len)
        if self._cache.find_blob(chunk_id) is not None:
            out.deduped += 1
            return ref
        obj = await asyncio.to_thread(self._store.sealer.seal, KIND_CHUNK, name, piece)
        created = await self._store.put(name, obj)
        if created:
            out.uploaded += len(obj)
        else:
            out.deduped += 1
        self._cache.add_blobs([(chunk_id, ref.epoch, KIND_CHUNK, name, 0, len(piece), len(obj))])
        return ref

    async def _small_blob(self, piece: bytes, out: Written) -> BlobLike:
        keys = self._store.keys
        blob_id = keys.chunk_id_of(piece)
        row = self._cache.find_blob(blob_id)
        if row is not None:
            e, k, o, off, length, ol = row
            out.deduped += 1
            return BlobRef(e, k, blob_id, o, off, length, ol)
        async with self._pack_lock:
            return await self._pack.add(piece, blob_id)

    async def pack_add(self, piece: bytes, blob_id: bytes) -> PendingRef:
        async with self._pack_lock:
            return await self._pack.add(piece, blob_id)

    async def flush(self) -> None:
        async with self._pack_lock:
            await self._pack.flush()


def _first(eg: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first real error of a task group (cancellations are a consequence, not the cause)."""
    for exc in eg.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return eg.exceptions[0]


async def read_blobs(store: ObjectStore, blobs: Sequence[BlobRef], offset: int, window: int) -> AsyncIterator[bytes]:
    """Yield the file content from byte ``offset`` on, with ``window`` blobs fetched ahead."""
    pos = 0
    start = 0
    while start < len(blobs) and pos + blobs[start].length <= offset:
        pos += blobs[start].length
        start += 1
    skip = offset - pos
    pending: deque[asyncio.Task[bytes]] = deque()
    nxt = start
    try:
        while nxt < len(blobs) or pending:
            while nxt < len(blobs) and len(pending) < max(1, window):
                pending.append(asyncio.ensure_future(store.read(blobs[nxt])))
                nxt += 1
            data = await pending.popleft()
            if skip:
                data = data[skip:]
                skip = 0
            if data:
                yield data
    finally:
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


def local_path(p: str | os.PathLike[str]) -> Path:
    return Path(os.fspath(p))
