"""The write pipeline: many files in, file entries out, through bounded actor stages (DESIGN.md §3).

::

    add() ─► chunker ─► coordinate ×2 ─► mixer ×N ─► writer ×U ─► collector ─► tree
              FileJob     Piece      │     ToSeal     SealedObject   Stored   ▲
                                     └──────────────────────────────────────┘ Placed (settled)

Every stage runs in this pipeline's TaskGroup, joined by bounded channels: a slow backend fills
the writer's inbox, which stops the mixer, the coordinate stage and at last the chunker, so memory
is a function of the queue sizes and the mixer's slots, never of file sizes. Closing a channel ends
the stream for the next stage (no sentinels). The first failure cancels every stage and leaves the
pipeline with that one error; nothing reaches the catalog for a file until all of its pieces are
durable (or in a data pack not stored yet, which the commit flushes first).

Full chunks and closed data packs both go mixer → writer; the collector (here, not an actor: it
edits the catalog) records each stored object (the dedup index, the pack's members), each complete
file in the tree, and reports progress. Per-stage counters are available from :meth:`Ingest.stats`;
a :class:`StageLedger` (one per vault) sums them over every run, finished and running (metrics).
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
from ..format.refs import Blob, PendingRef
from .signals import FileSignal, Sampler


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


#: items a channel between two stages may hold (their bytes are bounded too: see ``Ingest``)
DEEP = 256

#: data packs closed by one run that may be on their way to the store at once
PACKS_OUT = 1

#: the stages of every pipeline, in order (the names in the stats and the metrics)
STAGES = ("chunker", "coordinate", "mixer", "writer", "collector")


def _weight(item: object) -> int:
    """The bytes an item between two stages counts for in their stats: the data of a piece or of an
    object to seal, a sealed object's size, a stored object's size, an inline piece's bytes."""
    if isinstance(item, Piece | ToSeal):
        return len(item.data)
    if isinstance(item, SealedObject):
        return len(item.obj)  # weighed as it is sent and received: the writer releases it later
    if isinstance(item, Stored):
        return item.size
    return len(item.inline) if isinstance(item, Placed) and item.inline is not None else 0


@dataclass(slots=True)
class StageTotals:
    """One stage's counters summed over a vault's pipeline runs (see :class:`StageStats`); the queue
    depth and ``running`` (copies of pipelines running now) are of the running runs alone."""

    items_in: int = 0
    items_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    queue_depth: int = 0
    queue_high_water: int = 0  # the highest of any run
    blocked_in: float = 0.0
    blocked_out: float = 0.0
    busy: float = 0.0
    running: int = 0

    def add(self, s: StageStats) -> None:
        self.items_in += s.items_in
        self.items_out += s.items_out
        self.bytes_in += s.bytes_in
        self.bytes_out += s.bytes_out
        self.queue_depth += s.queue_depth if s.running else 0
        self.queue_high_water = max(self.queue_high_water, s.queue_high_water)
        self.blocked_in += s.blocked_in
        self.blocked_out += s.blocked_out
        self.busy += s.busy
        self.running += int(s.running)


class StageLedger:
    """The stage counters of one vault's pipelines: the finished runs summed, the running ones read live.

    Only lists and dicts with fixed keys change, so :meth:`totals` may be read from another thread
    (a metrics exporter) while the event loop runs pipelines.
    """

    def __init__(self) -> None:
        self._done: dict[str, StageTotals] = {name: StageTotals() for name in STAGES}
        self._running: list[Ingest] = []
        self.started = 0
        self.failed = 0  # runs that ended with an error (or were cancelled)

    def begin(self, run: Ingest) -> None:
        self.started += 1
        self._running.append(run)

    def end(self, run: Ingest, ok: bool) -> None:
        for s in run.stats():
            self._done[s.name].add(dataclasses.replace(s, running=False))
        self._running.remove(run)
        self.failed += int(not ok)

    @property
    def running(self) -> int:
        return len(self._running)

    def totals(self) -> dict[str, StageTotals]:
        """Per stage (in pipeline order): finished runs plus the running ones now."""
        out = {name: dataclasses.replace(t) for name, t in self._done.items()}
        for run in list(self._running):
            for s in run.stats():
                out[s.name].add(s)
        return out


FileDone = Callable[[list[bytes], File], Awaitable[None]]
ProgressHook = Callable[[Progress, list[bytes] | None], None]
ChunkStored = Callable[[BlobRef, int], None]  # a full chunk's object is stored (its ref, its size)
PackStored = Callable[[str, int], None]  # a data pack's object is stored (its name, its size)


class Ingest:
    """One run of the write pipeline. Use as ``async with``; :meth:`add` files; leaving waits for all."""

    def __init__(self, *, placement: Placement, mixer: Mixer, backend: Backend, stored: ChunkStored,
                 landed: PackStored, file_done: FileDone, uploads: int, mixers: int, depth: int = 2,
                 progress: ProgressHook | None = None, ledger: StageLedger | None = None,
                 sample: bool = False) -> None:
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
        self._ledger = ledger
        self._files: dict[int, _Pending] = {}
        self._tokens = itertools.count()
        self._stages: list[Stage[FileJob, Piece] | Stage[Piece, ToSeal | Placed]
                           | Stage[ToSeal | Placed, SealedObject | Placed]
                           | Stage[SealedObject | Placed, Stored | Placed] | Stage[Stored | Placed, None]] = []
        self._jobs: SendChannel[FileJob] | None = None
        self._packs_out = 0  # data packs closed by this run and not stored yet
        self._pack_waiters: list[asyncio.Future[None]] = []
        self._settled: SendChannel[Placed] | None = None  # the coordinate stage's way round mixer and writer
        self._tg: asyncio.TaskGroup | None = None
        self.progress = Progress()
        #: with ``sample``: each completed file's content signals (the guard's), by path, as the chunker's
        #: pieces pass (no extra read); filled just before ``file_done`` is called for the file, its
        #: entropy in batches (all of them once the pipeline has ended)
        self._sampler = Sampler() if sample else None
        self.signals: dict[bytes, FileSignal] | None = {} if sample else None

    async def __aenter__(self) -> Ingest:
        d = self._depth
        jobs_send: SendChannel[FileJob]
        jobs_send, jobs_recv = open_channel(256)  # tiny items: deep enough to batch small files
        # Channels are bounded by items and by bytes: small pieces queue deep (a stage takes turns
        # with the next once per burst, not once per piece), while the data held stays that of
        # ``depth`` full chunks per channel.
        p = dataclasses.replace(self._placement, pack=self._counted(self._placement.pack), pack_room=self._pack_room)
        deep, held = DEEP, d * p.chunk_size
        pieces_send: SendChannel[Piece]
        pieces_recv: ReceiveChannel[Piece]
        pieces_send, pieces_recv = open_channel(deep, _weight, max_bytes=held)
        mix_send: SendChannel[ToSeal | Placed]
        mix_recv: ReceiveChannel[ToSeal | Placed]
        mix_send, mix_recv = open_channel(deep, _weight, max_bytes=held)
        sealed_send: SendChannel[SealedObject | Placed]
        sealed_recv: ReceiveChannel[SealedObject | Placed]
        sealed_send, sealed_recv = open_channel(deep, _weight, max_bytes=(self._uploads + 1) * p.chunk_size)
        placed_send: SendChannel[Stored | Placed]
        placed_recv: ReceiveChannel[Stored | Placed]
        placed_send, placed_recv = open_channel(deep, _weight)
        chunk, coord, mix, write, collect = STAGES
        settled: SendChannel[Placed] = placed_send.clone()  # type: ignore[assignment]  # a Placed is a Stored | Placed
        self._settled = settled
        self._stages = [
            Stage(chunk, self._tapped(chunker(p.chunk_size, p.chunk_id, p.squeeze, p.inline_max)), jobs_recv,
                  pieces_send),
            Stage(coord, self._closing(coordinate(p, settled), settled, copies=2), pieces_recv, mix_send,
                  concurrency=2),
            Stage(mix, mixing(self._mixer), mix_recv, sealed_send, concurrency=self._mixers),
            Stage(write, writer(self._backend), sealed_recv, placed_send, concurrency=self._uploads),
            Stage(collect, self._collect, placed_recv, None),
        ]
        self._jobs = jobs_send
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        for stage in self._stages:
            self._tg.create_task(stage())
        if self._ledger is not None:
            self._ledger.begin(self)
        return self

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        assert self._tg is not None and self._jobs is not None
        self._jobs.close()  # end of input: the stages drain and stop in order
        ok = False
        try:
            await self._tg.__aexit__(et, exc, tb)
            ok = et is None
        except BaseExceptionGroup as eg:
            raise first_error(eg) from None
        finally:
            if self._settled is not None:
                self._settled.close()  # in case the coordinate stage never ran
            if self._sampler is not None:
                self._sampler.settle()  # the entropies of the last files (the rest settled in batches)
            if self._ledger is not None:
                self._ledger.end(self, ok)

    async def add(self, parts: list[bytes], source: Source, meta: Meta, size_hint: int = -1) -> None:
        """Queue one file (waits while the pipeline is full). It reaches the tree once all its pieces are stored.

        ``size_hint`` (the size a scan saw) lets the chunker read many small files per thread hop.
        """
        assert self._jobs is not None, "use Ingest as 'async with'"
        token = next(self._tokens)
        self._files[token] = _Pending(parts, meta)
        await self._jobs.send(FileJob(token, source, size_hint))

    def _counted(self, pack: Callable[[bytes, bytes, int | None], tuple[PendingRef, ToSeal | None]]
                 ) -> Callable[[bytes, bytes, int | None], tuple[PendingRef, ToSeal | None]]:
        """The placement's ``pack``, counting the packs it closes (the collector counts them landed)."""

        def counted(data: bytes, blob_id: bytes, plain_len: int | None) -> tuple[PendingRef, ToSeal | None]:
            member, closed = pack(data, blob_id, plain_len)
            self._packs_out += closed is not None
            return member, closed

        return counted

    async def _pack_room(self) -> None:
        """Wait while more than :data:`PACKS_OUT` packs this run closed are not stored (each coordinate
        copy closes at most one more before it waits here): the coordinate stage, no longer paced by
        settled pieces going through the mixer, would otherwise close pack after pack (4 MiB each,
        held until stored) ahead of the mixer and the writer."""
        while self._packs_out > PACKS_OUT:
            fut = asyncio.get_running_loop().create_future()
            self._pack_waiters.append(fut)
            await fut

    @staticmethod
    def _closing(run: Callable[[ReceiveChannel[Piece], SendChannel[ToSeal | Placed]], Awaitable[None]],
                 extra: SendChannel[Placed], copies: int
                 ) -> Callable[[ReceiveChannel[Piece], SendChannel[ToSeal | Placed]], Awaitable[None]]:
        """``run`` as ``copies`` copies that share a second outbox, closed when the last copy stops."""
        left = [copies]

        async def closing(inbox: ReceiveChannel[Piece], outbox: SendChannel[ToSeal | Placed]) -> None:
            try:
                await run(inbox, outbox)
            finally:
                left[0] -= 1
                if not left[0]:
                    extra.close()

        return closing

    def _tapped(self, run: Callable[[ReceiveChannel[FileJob], SendChannel[Piece]], Awaitable[None]]
                ) -> Callable[[ReceiveChannel[FileJob], SendChannel[Piece]], Awaitable[None]]:
        """The chunker, its pieces sampled on their way out when sampling (the bytes are in memory there)."""
        if self._sampler is None:
            return run
        sampler: Sampler = self._sampler

        class Tap:
            def __init__(self, outbox: SendChannel[Piece]) -> None:
                self.outbox = outbox

            async def send(self, piece: Piece) -> None:
                sampler.piece(piece.token, piece.index, piece.data)
                await self.outbox.send(piece)

        async def tapped(inbox: ReceiveChannel[FileJob], outbox: SendChannel[Piece]) -> None:
            await run(inbox, Tap(outbox))  # type: ignore[arg-type]  # the chunker only sends

        return tapped

    def stats(self) -> list[StageStats]:
        return [s.stats() for s in self._stages]

    async def _collect(self, inbox: ReceiveChannel[Stored | Placed], _outbox: SendChannel[None]) -> None:
        prog = self.progress
        async for got in inbox:
            if isinstance(got, Stored):
                prog.uploaded += got.size if got.created else 0
                if got.piece is None:
                    self._landed(got.name, got.size)
                    self._packs_out -= 1
                    while self._pack_waiters:
                        if not (fut := self._pack_waiters.pop()).done():
                            fut.set_result(None)
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
                if self._sampler is not None and self.signals is not None:
                    self.signals[b"/".join(f.parts)] = self._sampler.defer(item.token)
                blobs = [f.blobs[i] for i in range(len(f.blobs))]
                inline = f.inline if f.inline is not None else (b"" if f.size == 0 else None)
                await self._file_done(f.parts, File(f.meta, f.size, [] if inline is not None else blobs, inline))
                prog.files_done += 1
                if self._hook:
                    self._hook(prog, f.parts)
            elif self._hook and item.size:
                self._hook(prog, None)
