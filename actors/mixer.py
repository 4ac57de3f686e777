"""The mixer: seals stored bytes into objects (kinds 1, 2, 4) and opens them back, off the event loop.

Sealing gives exactly what :meth:`engine.objects.Sealer.seal` gives (CRYPTO.md §3.2–3.3)::

    object = hdr (6) ‖ c2sp-chunked seal(K_kind, ctx, u8 1 ‖ u8 0 ‖ u16 0 ‖ u32 n ‖ stored ‖ 0x00 × pad)

but into reused buffers: allocating a fresh 4 MiB output per call costs more than the AES-GCM.
The mixer owns two arenas, *in* and *out*, of ``slots`` slots of ``slot_size =
object_len(chunk_size)`` bytes. A call takes a free slot (waiting while every slot is busy, so
``slots`` is the in-flight limit), frames the stored bytes into its in-slot (or copies the object
to open), and the executor writes the object (or the stored bytes) to the start of the out-slot.
``seal`` returns a :class:`Sealed` whose ``view`` is that out-slot: hand the view to the writer
and ``release()`` it once the upload is done, or ``take()`` a copy. ``open`` copies out and
releases at once; ``open_view`` leaves that to the caller.

Executors (the ``kind`` setting; ``bench/mixer.py`` measures them, the default is the fastest):

* ``"process"``: ``workers`` spawned processes over shared-memory arenas (:mod:`.mixpool`): only
  ~100-byte descriptors cross the pipes; the names are unlinked as soon as the workers attached,
  so no ``/dev/shm`` entry outlives start-up; a worker's death fails every pending and later call
  with :class:`MixerError` at once instead of hanging.
* ``"thread"``: a private thread pool over bytearray arenas. AES-GCM holds the GIL, so this
  only keeps the event loop responsive.
* ``"inline"``: in the event loop thread, for small objects and for tests.

Keys in workers: ``Secret`` refuses pickling on purpose, and the spawn start method pickles a
process's arguments, so a worker is started knowing no key. Right after start the parent writes
the two raw subkeys the mixer needs (``data-enc`` for kinds 1 and 4, ``page-enc`` for kind 2;
never the root key or the id and name keys) with ``send_bytes`` on that worker's private
socketpair: no pickling, no file, and no ``/dev/shm`` name, which any process of the same user
could open while it exists. ``fork`` is not used: it would copy the whole parent (root key,
plaintext buffers, the event loop, locks held by other threads) into every worker, and the
inherited pipe ends would hide a worker's death.

Cancellation: a call cancelled while its job runs returns at once; its slot is released when the
executor reports the job finished, never earlier, because a worker may still be writing into it.
``aclose()`` is idempotent, fails pending calls, stops the workers (killing stragglers, and all of
them when cancelled itself) and unmaps the arenas. The mixer hashes nothing (chunk ids are keyed
BLAKE3 in threads, elsewhere) and does no I/O besides its own pipes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Literal

from ..engine.format.canonical import fail
from ..engine.format.envelope import object_len
from ..engine.format.framing import FRAME_HEADER, frame_header, framed_len
from ..engine.keys.schedule import KIND_CHUNK, KIND_DATA_PACK, KIND_PAGE_PACK, EpochKeys
from ..engine.keys.secret import Secret
from .mixpool import OPEN, SEAL, Crypto, MixerError, Params, Pool

__all__ = ["MIX_KINDS", "ExecutorKind", "Mixer", "MixerError", "Sealed"]

ExecutorKind = Literal["process", "thread", "inline"]
MIX_KINDS = (KIND_CHUNK, KIND_PAGE_PACK, KIND_DATA_PACK)


class Sealed:
    """Bytes in a mixer out-slot (a sealed object, or opened stored bytes); valid until ``release()``."""

    __slots__ = ("_release", "_view")

    def __init__(self, view: memoryview, release: Callable[[], None]) -> None:
        self._view: memoryview | None = view
        self._release = release

    @property
    def view(self) -> memoryview:
        """The bytes, without a copy. Raises ValueError after ``release()``."""
        if self._view is None:
            raise ValueError("the mixer slot was released")
        return self._view

    def __len__(self) -> int:
        return len(self.view)

    def release(self) -> None:
        """Give the slot back (idempotent). Views sliced from ``view`` must not be used afterwards."""
        if self._view is not None:
            view, self._view = self._view, None
            try:
                view.release()
            finally:
                self._release()

    def take(self) -> bytes:
        """Copy the bytes out and release the slot."""
        data = bytes(self.view)
        self.release()
        return data

    def __enter__(self) -> Sealed:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


class Mixer:
    """Seals and opens objects of one vault epoch on an executor of the chosen kind.

    Use ``async with Mixer.for_epoch(keys, chunk_size, kind="inline") as mx:``. Safe to call from many tasks of
    one event loop at once; at most ``slots`` calls are in flight, the others wait for a slot.
    """

    def __init__(
        self,
        vault_id: bytes,
        epoch: int,
        data_enc: Secret,
        page_enc: Secret,
        chunk_size: int,
        pad_floor: int = 4096,
        *,
        kind: ExecutorKind,  # no default here: the engine's Tuning holds the one (engine/local/settings.py)
        workers: int = 2,
        slots: int = 8,
    ) -> None:
        if kind not in ("process", "thread", "inline"):
            raise ValueError(f"unknown executor kind {kind!r}")
        if workers < 1 or slots < 1 or chunk_size < 1:
            raise ValueError("workers, slots and chunk_size must be >= 1")
        self.kind: ExecutorKind = kind
        self.chunk_size = chunk_size
        self.pad_floor = pad_floor
        self.slot_size = object_len(chunk_size, chunk_size, pad_floor)
        self.slots = slots
        self._workers = workers
        self._params = Params(vault_id, epoch, slots, self.slot_size)
        self._keys = (data_enc, page_enc)
        self._zeros = bytes(self.slot_size)
        self._free = list(range(slots))
        self._waiters: deque[asyncio.Future[int]] = deque()
        self._pool: Pool | None = None
        self._live: set[Sealed] = set()  # results not yet released
        self._threads: ThreadPoolExecutor | None = None
        self._crypto: Crypto | None = None
        self._in = self._out = memoryview(b"")
        self._started = False
        self._closed = False

    @classmethod
    def for_epoch(
        cls, keys: EpochKeys, chunk_size: int, pad_floor: int = 4096, *, kind: ExecutorKind,
        workers: int = 2, slots: int = 8,
    ) -> Mixer:
        """A mixer for the epoch of ``keys``; it keeps only ``data-enc`` and ``page-enc``."""
        return cls(
            keys.vault_id, keys.epoch, keys.data_enc, keys.page_enc, chunk_size, pad_floor,
            kind=kind, workers=workers, slots=slots,
        )

    def __repr__(self) -> str:
        return f"<Mixer {self.kind} workers={self._workers} slots={self.slots} slot_size={self.slot_size}>"

    @property
    def in_flight(self) -> int:
        """Slots in use (by running jobs or by unreleased results)."""
        return self.slots - len(self._free)

    @property
    def worker_pids(self) -> list[int]:
        return self._pool.pids if self._pool is not None else []

    @property
    def segment_names(self) -> tuple[str, ...]:
        """Names of the shared-memory arenas (unlinked once the workers attached)."""
        return self._pool.names if self._pool is not None else ()

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the executor. Raises MixerError if worker processes do not start."""
        if self._started:
            raise RuntimeError("the mixer was already started")
        self._started = True
        data_key, page_key = (k.reveal() for k in self._keys)
        try:
            if self.kind == "process":
                self._pool = Pool(self._params, self._workers)
                self._in, self._out = self._pool.arenas
                await self._pool.start(data_key + page_key)
            else:
                size = self.slots * self.slot_size
                self._in, self._out = memoryview(bytearray(size)), memoryview(bytearray(size))
                self._crypto = Crypto(self._params.vault_id, self._params.epoch, data_key, page_key)
                if self.kind == "thread":
                    self._threads = ThreadPoolExecutor(self._workers, thread_name_prefix="sigmavault-mixer")
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Stop the executor and free the arenas (idempotent; completes its cleanup when cancelled)."""
        if self._closed:
            return
        self._closed = True
        closed = MixerError("the mixer is closed")
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(closed)
        for sealed in list(self._live):
            sealed.release()  # results die with the mixer: their memory is about to be unmapped
        try:
            if self._threads is not None:
                self._threads.shutdown(wait=False, cancel_futures=True)
                await asyncio.to_thread(self._threads.shutdown)  # let running jobs finish with the keys
            if self._pool is not None:
                await self._pool.aclose()
        finally:
            if self._crypto is not None:
                self._crypto.wipe()

    async def __aenter__(self) -> Mixer:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- work ----------------------------------------------------------------------------------

    async def seal(
        self, kind: int, name: str, stored: bytes | bytearray | memoryview, *, pad_floor: int | None = None,
        salt: bytes | None = None,
    ) -> Sealed:
        """Frame, pad and seal ``stored`` as object ``name`` of ``kind`` (1, 2 or 4).

        ``pad_floor`` overrides the mixer's (a full pack is padded to a full chunk's size);
        ``salt`` is for known-answer tests only. Raises ValueError for a bad kind, name or length,
        MixerError if the executor failed or the mixer is closed. If cancelled, nothing is returned
        and the slot comes back when the job ends.
        """
        mv = memoryview(stored).cast("B")
        n = len(mv)
        flen = self._check(kind, name, n, pad_floor)
        slot = await self._acquire()
        base = slot * self.slot_size
        try:
            dst = self._in[base : base + flen]
            dst[:FRAME_HEADER] = frame_header(n)
            dst[FRAME_HEADER : FRAME_HEADER + n] = mv
            dst[FRAME_HEADER + n :] = self._zeros[: flen - FRAME_HEADER - n]
        except BaseException:
            self._release(slot)
            raise
        finally:
            mv.release()
        return await self._run(SEAL, slot, kind, name, dst, salt)

    async def open_view(
        self, kind: int, name: str, data: bytes | bytearray | memoryview, *, expected_len: int | None = None
    ) -> Sealed:
        """Open object ``name`` of ``kind``; the stored bytes stay in a slot until released.

        ``expected_len`` (from the catalog) is checked when given. Raises IntegrityError if the
        object does not open as exactly that name, kind and epoch, MixerError as for :meth:`seal`.
        """
        mv = memoryview(data).cast("B")
        self._check(kind, name, 0)
        if (expected_len is not None and len(mv) != expected_len) or len(mv) > self.slot_size:
            fail("object length")
        try:
            slot = await self._acquire()
        except BaseException:
            mv.release()
            raise
        if self.kind == "inline" or (self.kind == "thread" and isinstance(data, bytes)):
            return await self._run(OPEN, slot, kind, name, mv, None)  # immutable or used at once: no copy
        base = slot * self.slot_size
        src = self._in[base : base + len(mv)]
        src[:] = mv
        mv.release()
        return await self._run(OPEN, slot, kind, name, src, None)

    async def open(
        self, kind: int, name: str, data: bytes | bytearray | memoryview, *, expected_len: int | None = None
    ) -> bytes:
        """Open object ``name`` of ``kind`` and return its stored bytes (see :meth:`open_view`)."""
        return (await self.open_view(kind, name, data, expected_len=expected_len)).take()

    def _check(self, kind: int, name: str, n: int, pad_floor: int | None = None) -> int:
        if kind not in MIX_KINDS:
            raise ValueError(f"the mixer does not handle object kind {kind}")
        if not name.isascii():
            raise ValueError("object names are ASCII")
        if self._closed or not self._started:
            raise MixerError("the mixer is closed" if self._closed else "the mixer was not started")
        if self._pool is not None and self._pool.error is not None:
            raise self._pool.error
        return framed_len(n, self.chunk_size, self.pad_floor if pad_floor is None else pad_floor)

    async def _run(self, op: int, slot: int, kind: int, name: str, inp: memoryview, salt: bytes | None) -> Sealed:
        """Run one job on ``slot`` and wrap its output; owns the slot and ``inp`` from here on."""
        base = slot * self.slot_size
        out = self._out[base : base + self.slot_size]
        try:
            n = await self._execute(op, slot, kind, name, inp, out, salt)
        except asyncio.CancelledError:
            raise  # the job may still use the views and the slot: its done-callback frees them
        except BaseException:
            inp.release()  # a traceback keeps this frame alive: it must not pin the arena
            out.release()
            raise
        at = FRAME_HEADER if op == OPEN else 0  # where the result starts in the out-slot
        sealed = Sealed(out[at : at + n], lambda: self._handed_back(sealed, slot))
        self._live.add(sealed)
        inp.release()
        out.release()
        return sealed

    async def _execute(
        self, op: int, slot: int, kind: int, name: str, inp: memoryview, out: memoryview, salt: bytes | None
    ) -> int:
        try:
            if self._closed:
                raise MixerError("the mixer is closed")
            if self._pool is not None:
                fut = self._pool.submit(op, slot, kind, name, len(inp), salt)
            elif self._threads is not None and self._crypto is not None:
                job = self._crypto.run
                fut = asyncio.get_running_loop().run_in_executor(self._threads, job, op, inp, out, kind, name, salt)
            elif self._crypto is not None:
                return self._crypto.run(op, inp, out, kind, name, salt)
            else:
                raise MixerError("the mixer is closed")
        except BaseException:
            self._release(slot)
            raise
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if fut.cancelled() and (task is None or task.cancelling() == 0):
                self._release(slot)  # not our cancellation: aclose() dropped the queued job
                raise MixerError("the mixer is closed") from None

            def finished(_: object) -> None:  # only now is the job done with the views and the slot
                inp.release()
                out.release()
                self._release(slot)

            fut.add_done_callback(finished)
            raise
        except BaseException:
            self._release(slot)
            raise

    def _handed_back(self, sealed: Sealed, slot: int) -> None:
        self._live.discard(sealed)
        self._release(slot)

    async def _acquire(self) -> int:
        if self._free and not self._waiters:
            return self._free.pop()
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            return await fut
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self._release(fut.result())  # handed a slot we will not use
            elif fut in self._waiters:
                self._waiters.remove(fut)
            raise

    def _release(self, slot: int) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(slot)
                return
        self._free.append(slot)
