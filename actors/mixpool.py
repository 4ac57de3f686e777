"""The mixer's process pool: worker processes sealing and opening inside shared-memory arenas.

Used only by :mod:`.mixer` (which documents the design); this module is the part that runs in,
and talks to, other processes.

Arenas: two ``multiprocessing.shared_memory`` segments, *in* and *out*, each ``slots × slot_size``
bytes; slot ``i`` is ``[i·slot_size, (i+1)·slot_size)`` of both. Workers attach at start; once
every worker reported ready the parent unlinks both names, so no ``/dev/shm`` entry exists while
the pool runs (a crash or ``kill -9`` of anyone cannot leak one).

Pipe protocol, one private duplex socketpair per worker::

    parent → worker   send_bytes(K_data-enc ‖ K_page-enc)          raw 64 bytes, once, first
    worker → parent   ("ready", pid)
    parent → worker   (job, op, slot, kind, name, length, salt)     op 0 seal, 1 open; None = stop
    worker → parent   (job, status, n)                              status 0 ok (n bytes written),
                                                                    1 integrity, 2 other (type name)

A worker's input is ``in[slot][:length]`` (a framed message to seal, or an object to open) and
its output goes to the start of ``out[slot]``. The parent reads replies with ``add_reader``; EOF
on a pipe means the worker died and fails every pending job with :class:`MixerError`.
"""

from __future__ import annotations

import asyncio
import os
import signal
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..engine.errors import IntegrityError, VaultError
from ..engine.format import aead as chunked
from ..engine.format.canonical import fail
from ..engine.format.envelope import HDR, context, header
from ..engine.format.framing import unframe
from ..engine.keys import harden
from ..engine.keys.schedule import KIND_CHUNK, KIND_DATA_PACK, KIND_PAGE_PACK

if TYPE_CHECKING:  # multiprocessing is imported when a pool starts: an inline mixer never loads it
    import multiprocessing.process
    from multiprocessing.connection import Connection
    from multiprocessing.shared_memory import SharedMemory

SEAL, OPEN = 0, 1
_OK, _INTEGRITY, _FAILED = 0, 1, 2
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 5.0


class MixerError(VaultError):
    """The mixer cannot work: a worker died, would not start, or the mixer is closed."""

    default_message = "the encryption worker pool failed"


@dataclass(frozen=True, slots=True)
class Params:
    """What a worker needs besides keys (nothing secret: spawn pickles it)."""

    vault_id: bytes
    epoch: int
    slots: int
    slot_size: int


class Crypto:
    """Seal/open into given buffers with raw subkeys; one per process. Its repr shows no key."""

    __slots__ = ("_hdr", "_keys", "_vault_id")

    def __init__(self, vault_id: bytes, epoch: int, data_key: bytes, page_key: bytes) -> None:
        self._vault_id = vault_id
        self._hdr = header(epoch)
        self._keys = {KIND_CHUNK: data_key, KIND_DATA_PACK: data_key, KIND_PAGE_PACK: page_key}

    def __repr__(self) -> str:
        return "<mixer crypto (keys redacted)>"

    def run(self, op: int, inp: memoryview, out: memoryview, kind: int, name: str, salt: bytes | None) -> int:
        """Seal ``inp`` (a framed message) into ``out`` and return the object's length, or open ``inp``
        (an object) into ``out`` and return the stored length (the stored bytes start at FRAME_HEADER).

        Raises IntegrityError when an object does not open.
        """
        key = self._keys.get(kind)
        if key is None:
            raise MixerError("the mixer is closed")
        ctx = context(self._vault_id, kind, name, self._hdr)
        if op == SEAL:
            out[:HDR] = self._hdr
            return HDR + chunked.seal_into(key, ctx, inp, out[HDR:], salt)
        if len(inp) < HDR or bytes(inp[:HDR]) != self._hdr:
            fail("header")
        return len(unframe(out[: _open_into(key, ctx, inp[HDR:], out)]))

    def wipe(self) -> None:
        self._keys.clear()  # bytes cannot be zeroed in place; drop the references


def _open_into(key: bytes, ctx: bytes, ct: memoryview, out: memoryview) -> int:
    """``chunked.open`` decrypting into ``out`` (a fresh 4 MiB buffer per call costs more than the AES)."""
    return chunked.open_into(key, ctx, ct, out)


def _worker_main(conn: Connection, in_name: str, out_name: str, params: Params) -> None:
    """A worker process: receive keys, attach the arenas, then serve descriptors until told to stop."""
    from multiprocessing.shared_memory import SharedMemory

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    harden.harden()  # before the keys arrive: a fresh program is dumpable again
    blob = bytearray(conn.recv_bytes(64))
    crypto = Crypto(params.vault_id, params.epoch, bytes(blob[:32]), bytes(blob[32:64]))
    blob[:] = bytes(len(blob))
    shm_in, shm_out = SharedMemory(in_name), SharedMemory(out_name)
    buf_in, buf_out = _buf(shm_in), _buf(shm_out)
    size = params.slot_size
    try:
        conn.send(("ready", os.getpid()))
        while (msg := conn.recv()) is not None:
            job, op, slot, kind, name, length, salt = msg
            base = slot * size
            inp, out = buf_in[base : base + length], buf_out[base : base + size]
            try:
                conn.send((job, _OK, crypto.run(op, inp, out, kind, name, salt)))
            except IntegrityError:
                conn.send((job, _INTEGRITY, 0))
            except Exception as exc:  # reported by type name only: no data in messages
                conn.send((job, _FAILED, type(exc).__name__))
            finally:
                inp.release()
                out.release()
    except (EOFError, OSError):
        pass  # the parent is gone
    finally:
        crypto.wipe()
        buf_in.release()
        buf_out.release()
        shm_in.close()
        shm_out.close()


def _buf(shm: SharedMemory) -> memoryview:
    buf = shm.buf
    if buf is None:
        raise MixerError("a shared-memory arena is closed")
    return buf


class _Worker:
    __slots__ = ("conn", "pending", "proc", "ready")

    def __init__(self, proc: multiprocessing.process.BaseProcess, conn: Connection, ready: asyncio.Future[int]) -> None:
        self.proc = proc
        self.conn = conn
        self.ready = ready
        self.pending: dict[int, asyncio.Future[int]] = {}


class Pool:
    """Worker processes over shared-memory arenas. ``arenas`` are the parent's (in, out) views."""

    def __init__(self, params: Params, workers: int) -> None:
        from multiprocessing.shared_memory import SharedMemory

        self._params = params
        self._count = workers
        size = params.slots * params.slot_size
        self._shm = (SharedMemory(create=True, size=size), SharedMemory(create=True, size=size))
        self._unlinked = False
        self.names = (self._shm[0].name, self._shm[1].name)
        self.arenas = (_buf(self._shm[0]), _buf(self._shm[1]))
        self.workers: list[_Worker] = []
        self.error: MixerError | None = None
        self._next_job = 0

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self.workers if w.proc.pid is not None]

    async def start(self, keyblob: bytes) -> None:
        """Spawn the workers, hand each its keys, wait until all are attached, unlink the arenas.

        Raises MixerError if a worker dies or does not report within a minute. On any failure or
        cancellation the names are unlinked; the caller must still ``aclose()``.
        """
        import multiprocessing

        loop = asyncio.get_running_loop()
        ctx = multiprocessing.get_context("spawn")
        try:
            for i in range(self._count):
                mine, theirs = ctx.Pipe(duplex=True)
                proc = ctx.Process(
                    target=_worker_main, args=(theirs, *self.names, self._params), name=f"sigmavault-mixer-{i}",
                    daemon=True,
                )
                w = _Worker(proc, mine, loop.create_future())
                self.workers.append(w)
                proc.start()
                theirs.close()  # only the child holds its end, so its death reads as EOF here
                mine.send_bytes(keyblob)
                loop.add_reader(mine.fileno(), self._on_readable, w)
            ready = asyncio.gather(*(w.ready for w in self.workers))
            try:
                await asyncio.wait_for(ready, _START_TIMEOUT)
            except TimeoutError:
                raise MixerError("the encryption workers did not start") from None
        finally:
            self._unlink()  # on success every worker is attached: drop the names, keep the mappings

    def _unlink(self) -> None:
        if not self._unlinked:
            self._unlinked = True
            for shm in self._shm:
                with suppress(FileNotFoundError):
                    shm.unlink()

    def _on_readable(self, w: _Worker) -> None:
        try:
            while w.conn.poll():
                msg = w.conn.recv()
                if msg[0] == "ready":
                    if not w.ready.done():
                        w.ready.set_result(msg[1])
                    continue
                job, status, value = msg
                fut = w.pending.pop(job, None)
                if fut is None or fut.done():
                    continue
                if status == _OK:
                    fut.set_result(value)
                elif status == _INTEGRITY:
                    fut.set_exception(IntegrityError())
                else:
                    fut.set_exception(MixerError(f"an encryption worker failed ({value})"))
        except (EOFError, OSError):
            self._died(w)

    def _died(self, w: _Worker) -> None:
        w.proc.join(0.5)  # it is gone or going: reap it to report how it ended
        code = w.proc.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        self.broken(MixerError(f"encryption worker process {w.proc.pid} died unexpectedly ({how})"))

    def broken(self, error: MixerError) -> None:
        """Fail every pending and future job with ``error`` (the first error is kept)."""
        if self.error is None:
            self.error = error
        loop = asyncio.get_running_loop()
        for w in self.workers:
            if not w.conn.closed:
                loop.remove_reader(w.conn.fileno())
            if not w.ready.done():
                w.ready.set_exception(MixerError(self.error.message))
                w.ready.exception()  # only start() awaits it; do not warn when nobody does
            for fut in w.pending.values():
                if not fut.done():
                    fut.set_exception(MixerError(self.error.message))
            w.pending.clear()

    def submit(self, op: int, slot: int, kind: int, name: str, length: int, salt: bytes | None) -> asyncio.Future[int]:
        """Send one job to the least busy worker; the future resolves when it has finished with the slot."""
        if self.error is not None:
            raise self.error
        w = min(self.workers, key=lambda x: len(x.pending))
        self._next_job += 1
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        try:
            w.conn.send((self._next_job, op, slot, kind, name, length, salt))
        except OSError:  # the worker died before its reader noticed: the same report as the reader's
            self._died(w)
            assert self.error is not None  # _died keeps the first error
            raise MixerError(self.error.message) from None
        w.pending[self._next_job] = fut
        return fut

    async def aclose(self) -> None:
        """Stop the workers (kill those that do not stop in 5 s, or at once if cancelled) and unmap."""
        self._unlink()
        if self.error is None:
            self.broken(MixerError("the mixer is closed"))
        for w in self.workers:
            with suppress(OSError):
                w.conn.send(None)
        try:
            await asyncio.to_thread(self._join, _STOP_TIMEOUT)
        finally:
            for w in self.workers:
                if w.proc.pid is not None and w.proc.is_alive():
                    w.proc.kill()
                    w.proc.join(1.0)
                w.conn.close()
            for shm in self._shm:
                with suppress(BufferError):  # a consumer still holds a view: unmapped when it goes
                    shm.close()

    def _join(self, timeout: float) -> None:
        for w in self.workers:
            if w.proc.pid is not None:
                w.proc.join(timeout)
