"""The private event loop behind :mod:`sigmavault.sync`: one asyncio loop in one daemon thread.

A :class:`LoopThread` runs the engine for one ``SyncVault``. Callers in any other thread hand it a
coroutine with :meth:`LoopThread.run` and block until it is done (``run_coroutine_threadsafe``), so
the blocking API works where a loop already runs in the calling thread (Jupyter, an ``async def``
test): the engine never touches the caller's loop. The result or the exception comes back as it is
(the same ``VaultError`` classes the async API raises, never wrapped). A call made from the loop's
own thread would wait for itself forever; it raises :class:`UsageError` instead.

:meth:`LoopThread.iterate` turns an async iterator into a blocking one, one item per call into the
loop (memory stays what the async iterator holds). :meth:`LoopThread.stop` cancels what is left,
closes async generators and the default executor's threads, closes the loop and joins the thread.
Loops still running when the interpreter exits are cleaned up (their ``cleanup`` coroutine, then
stopped) by an ``atexit`` hook, so no daemon thread is abandoned mid-call.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import threading
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from .engine.errors import UsageError

T = TypeVar("T")

_LIVE: weakref.WeakSet[LoopThread] = weakref.WeakSet()
_EXIT_WAIT = 30.0  # seconds the atexit hook gives one vault to close


class LoopThread:
    """An event loop running forever in a daemon thread until :meth:`stop` (see the module doc)."""

    def __init__(self, name: str = "sigmavault-sync") -> None:
        self._loop = asyncio.new_event_loop()
        self._lock = threading.Lock()  # orders submissions against stop: nothing is queued on a dead loop
        self._stopped = False
        #: what the atexit hook runs before stopping a loop its owner never closed (the vault's aclose)
        self.cleanup: Callable[[], Coroutine[Any, Any, None]] | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        _LIVE.add(self)

    def __repr__(self) -> str:
        return f"<LoopThread {self._thread.name} {'stopped' if self._stopped else 'running'}>"

    @property
    def running(self) -> bool:
        """False once :meth:`stop` was called."""
        return not self._stopped

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def in_loop_thread(self) -> bool:
        """True when called from the loop's own thread (where a blocking call would deadlock)."""
        return threading.get_ident() == self._thread.ident

    def _main(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            try:
                left = asyncio.all_tasks(loop)
                for task in left:
                    task.cancel()
                if left:
                    loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    def _refuse_own_thread(self, what: str) -> None:
        if self.in_loop_thread():
            raise UsageError(f"{what} was called from the vault's own event loop thread, where it would wait for "
                             "itself forever: use the async API (sigmavault.open) in code that runs on that loop")

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for it; its result, or its exception re-raised as it is.

        Raises UsageError from the loop's own thread or once the loop is stopped (the vault is closed).
        A KeyboardInterrupt while waiting cancels the coroutine and propagates.
        """
        try:
            self._refuse_own_thread("a blocking sigmavault.sync call")
            with self._lock:
                if self._stopped:
                    raise UsageError("the vault is closed")
                future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        except BaseException:
            coro.close()  # never scheduled: no "coroutine was never awaited" warning
            raise
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise UsageError("the vault was closed while the call was running") from None
        except BaseException:
            future.cancel()  # a KeyboardInterrupt in the waiting thread: stop the engine's work too
            raise

    def iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        """A blocking iterator over ``items``: each ``next`` runs one step on the loop.

        Leaving early (``break``, an exception, garbage collection) closes an async generator on
        the loop, so its stream is released at once rather than at :meth:`stop`.
        """
        try:
            while True:
                got = self.run(_step(items))
                if not got:
                    return
                yield got[0]
        finally:
            if isinstance(items, AsyncGenerator) and self.running and not self.in_loop_thread():
                self.run(items.aclose())
            # else: the loop is gone (its shutdown closed the generator) or we are on it (stop() will)

    def stop(self, timeout: float | None = None) -> None:
        """Cancel what is left, close the loop and join its thread (waiting at most ``timeout`` seconds:
        the interpreter's exit must not hang on a stuck call). Idempotent. UsageError from the loop thread."""
        self._refuse_own_thread("close()")
        with self._lock:
            if not self._stopped:
                self._stopped = True
                self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        _LIVE.discard(self)


async def _step(items: AsyncIterator[T]) -> list[T]:
    """The next item of ``items`` as a one-item list, or ``[]`` at the end (StopAsyncIteration
    is not carried across the thread boundary)."""
    try:
        return [await anext(items)]
    except StopAsyncIteration:
        return []


@atexit.register
def _stop_all() -> None:
    """At interpreter exit: release each vault a script left open (no commit), then stop its loop."""
    for lt in list(_LIVE):
        if not lt.running or lt.in_loop_thread():
            continue
        cleanup, lt.cleanup = lt.cleanup, None
        if cleanup is not None:
            with contextlib.suppress(Exception):  # best effort at exit: the loop is stopped regardless
                with lt._lock:
                    future = asyncio.run_coroutine_threadsafe(cleanup(), lt._loop)
                future.result(timeout=_EXIT_WAIT)
        lt.stop(timeout=_EXIT_WAIT)
