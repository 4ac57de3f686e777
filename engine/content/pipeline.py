"""The write pipeline: many files in, file entries out, through bounded actor stages (DESIGN.md §3).

::

    add() ─► chunker ─► coordinate ×2 ─► mixer ×N ─► writer ×U ─► collector ─► tree
              FileJob     Piece            ToSeal     SealedObject   Stored, Placed

Every stage runs in this pipeline's TaskGroup, joined by bounded channels: a slow backend fills
the writer's inbox, which stops the mixer, the coordinate stage and at last the chunker, so memory
is a function of the queue sizes and the mixer's slots, never of file sizes. Closing a channel ends
the stream for the next stage (no sentinels). The first failure cancels every stage and leaves the
pipeline with that one error; nothing reaches the catalog for a file until all of its pieces are
durable (or in a data pack not stored yet, which the commit flushes first).

Full chunks and closed data packs both go mixer → writer; the collector (here, not an actor: it
edits the catalog) records each stored object (the dedup index, the pack's members), each complete
file in the tree, and reports progress. Per-stage counters are available from :meth:`Ingest.stats`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType

from ...actors.chunker import chunker
from ...actors.coordinate import Placement, coordinate
from ...actors.mailbox import ReceiveChannel, SendChannel, open_channel
from ...actors.messages import FileJob, Piece, Placed, SealedObject, Source, Stored, ToSeal
from ...actors.mixer import Mixer
from ...actors.stage import Stage, StageStats
from ...actors.writer import mixing, writer
from ...backends.base import Backend
from ..catalog.tree import File, Meta
from ..errors import first_error
from ..format.pages import BlobRef
from ..format.refs import Blob


@dataclass(slots=True)
class Progress:
    """Totals of one pipeline, updated as files complete (read it from a progress callback)."""

    files_done: int = 0
    bytes_done: int = 0  # plaintext bytes of pieces settled
    uploaded: int = 0  # bytes of new objects written
    deduped: int = 0  # pieces found already stored
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        return self.bytes_done / max(1e-9, time.monotonic() - self.started)


@dataclass(slots=True)
class _Pending:
    parts: list[bytes]
    meta: Meta
    blobs: dict[int, Blob] = field(default_factory=dict)
    inline: bytes | None = None
    size: int = 0
    count: int | None = None  # number of pieces, known once the final one arrives


FileDone = Callable[[list[bytes], File], Awaitable[None]]
ProgressHook = Callable[[Progress, list[bytes] | None], None]
ChunkStored = Callable[[BlobRef, int], None]  # a full chunk's object is stored (its ref, its size)
PackStored = Callable[[str, int], None]  # a data pack's object is stored (its name, its size)


class Ingest:
    """One run of the write pipeline. Use as ``async with``; :meth:`add` files; leaving waits for all."""

    def __init__(self, *, placement: Placement, mixer: Mixer, backend: Backend, stored: ChunkStored,
                 landed: PackStored, file_done: FileDone, uploads: int, mixers: int, depth: int = 2,
                 progress: ProgressHook | None = None) -> None:
        self._placement = placement
        self._mixer = mixer
        self._backend = backend
        self._stored = stored
        self._landed = landed
        self._file_done = file_done
        self._uploads = max(1, uploads)
        self._mixers = max(1, mixers)
        self._depth = depth
        self._hook = progress
        self._files: dict[int, _Pending] = {}
        self._tokens = itertools.count()
        self._stages: list[Stage[FileJob, Piece] | Stage[Piece, ToSeal | Placed]
                           | Stage[ToSeal | Placed, SealedObject | Placed]
                           | Stage[SealedObject | Placed, Stored | Placed] | Stage[Stored | Placed, None]] = []
        self._jobs: SendChannel[FileJob] | None = None
        self._tg: asyncio.TaskGroup | None = None
        self.progress = Progress()

    async def __aenter__(self) -> Ingest:
        d = self._depth
        jobs_send: SendChannel[FileJob]
        jobs_send, jobs_recv = open_channel(256)  # tiny items: deep enough to batch small files
        pieces_send: SendChannel[Piece]
        pieces_recv: ReceiveChannel[Piece]
        pieces_send, pieces_recv = open_channel(d)
        mix_send: SendChannel[ToSeal | Placed]
        mix_recv: ReceiveChannel[ToSeal | Placed]
        mix_send, mix_recv = open_channel(d)
        sealed_send: SendChannel[SealedObject | Placed]
        sealed_recv: ReceiveChannel[SealedObject | Placed]
        sealed_send, sealed_recv = open_channel(self._uploads)
        placed_send: SendChannel[Stored | Placed]
        placed_recv: ReceiveChannel[Stored | Placed]
        placed_send, placed_recv = open_channel(d * 4)
        p = self._placement
        self._stages = [
            Stage("chunker", chunker(p.chunk_size), jobs_recv, pieces_send),
            Stage("coordinate", coordinate(p), pieces_recv, mix_send, concurrency=2),
            Stage("mixer", mixing(self._mixer), mix_recv, sealed_send, concurrency=self._mixers),
            Stage("writer", writer(self._backend), sealed_recv, placed_send, concurrency=self._uploads),
            Stage("collector", self._collect, placed_recv, None),
        ]
        self._jobs = jobs_send
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        for stage in self._stages:
            self._tg.create_task(stage())
        return self

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        assert self._tg is not None and self._jobs is not None
        self._jobs.close()  # end of input: the stages drain and stop in order
        try:
            await self._tg.__aexit__(et, exc, tb)
        except BaseExceptionGroup as eg:
            raise first_error(eg) from None

    async def add(self, parts: list[bytes], source: Source, meta: Meta, size_hint: int = -1) -> None:
        """Queue one file (waits while the pipeline is full). It reaches the tree once all its pieces are stored.

        ``size_hint`` (the size a scan saw) lets the chunker read many small files per thread hop.
        """
        assert self._jobs is not None, "use Ingest as 'async with'"
        token = next(self._tokens)
        self._files[token] = _Pending(parts, meta)
        await self._jobs.send(FileJob(token, source, size_hint))

    def stats(self) -> list[StageStats]:
        return [s.stats() for s in self._stages]

    async def _collect(self, inbox: ReceiveChannel[Stored | Placed], _outbox: SendChannel[None]) -> None:
        prog = self.progress
        async for got in inbox:
            if isinstance(got, Stored):
                prog.uploaded += got.size if got.created else 0
                if got.piece is None:
                    self._landed(got.name, got.size)
                    continue
                assert isinstance(got.piece.blob, BlobRef)
                self._stored(got.piece.blob, got.size)
                item = dataclasses.replace(got.piece, deduped=not got.created)
            else:
                item = got
            f = self._files[item.token]
            f.size += item.size
            prog.bytes_done += item.size
            prog.deduped += int(item.deduped)
            if item.inline is not None:
                f.inline = item.inline
            elif item.blob is not None:
                f.blobs[item.index] = item.blob
            if item.final:
                f.count = item.index + 1 if item.size else item.index
            if f.count is not None and (f.inline is not None or len(f.blobs) == f.count):
                del self._files[item.token]
                blobs = [f.blobs[i] for i in range(len(f.blobs))]
                inline = f.inline if f.inline is not None else (b"" if f.size == 0 else None)
                await self._file_done(f.parts, File(f.meta, f.size, [] if inline is not None else blobs, inline))
                prog.files_done += 1
                if self._hook:
                    self._hook(prog, f.parts)
            elif self._hook and item.size:
                self._hook(prog, None)
