"""What every pipeline stage is built on: a runner for ``async def run(inbox, outbox)`` loops and its stats.

A stage is an async function that takes items from a :class:`ReceiveChannel` and puts results
to a :class:`SendChannel` until its inbox ends. :class:`Stage` runs it, optionally as several
concurrent copies on cloned endpoints, and always closes its endpoints when it stops, for
whatever reason:

* closing the outbox ends the stream for the next stage (no sentinels);
* closing the inbox breaks the previous stage's ``send`` (``BrokenChannel``), so when a stage
  fails, the producers upstream stop instead of filling memory.

A stage without an inbox (a source) gets one that is already at its end; one without an outbox
(a sink) gets one whose receivers are gone. :class:`StageStats` is a snapshot: items and bytes
in and out, the inbox depth, seconds blocked on input and on output, and busy seconds (wall time
of each copy minus its blocked time, summed over copies).

This module does not wire stages together: the engine's pipeline owns the TaskGroup that runs
``Stage.__call__`` of every stage. It does no I/O and holds no keys.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..engine.errors import first_error
from .mailbox import BrokenChannel, ReceiveChannel, SendChannel, open_channel

In = TypeVar("In")
Out = TypeVar("Out")

RunFn = Callable[[ReceiveChannel[In], SendChannel[Out]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class StageStats:
    """A snapshot of one stage's counters."""

    name: str
    items_in: int
    items_out: int
    bytes_in: int
    bytes_out: int
    queue_depth: int  # items waiting in the inbox now
    queue_high_water: int
    blocked_in: float  # seconds waiting for input
    blocked_out: float  # seconds waiting for room downstream
    busy: float  # seconds doing work (summed over concurrent copies)
    running: bool


def _ended() -> ReceiveChannel[Any]:
    send: SendChannel[Any]
    recv: ReceiveChannel[Any]
    send, recv = open_channel(1)
    send.close()
    return recv


def _nowhere() -> SendChannel[Any]:
    send: SendChannel[Any]
    recv: ReceiveChannel[Any]
    send, recv = open_channel(1)
    recv.close()
    return send


class Stage(Generic[In, Out]):
    """Runs ``run(inbox, outbox)`` as ``concurrency`` copies; await the instance to run it.

    Returns when every copy has returned. If one copy raises, the others are cancelled and the
    error propagates (an ExceptionGroup when concurrency > 1 is never produced: the first error
    is re-raised as itself). Cancelling the awaiting task cancels the copies. The endpoints are
    closed in every case. A stage that stops because its outbox broke (the consumer is gone) ends
    quietly: the consumer's own error is what the pipeline reports.
    """

    def __init__(
        self,
        name: str,
        run: RunFn[In, Out],
        inbox: ReceiveChannel[In] | None = None,
        outbox: SendChannel[Out] | None = None,
        *,
        concurrency: int = 1,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.name = name
        self._run = run
        self._inbox: ReceiveChannel[In] = inbox if inbox is not None else _ended()
        self._outbox: SendChannel[Out] = outbox if outbox is not None else _nowhere()
        self._concurrency = concurrency
        self._copies: list[tuple[ReceiveChannel[In], SendChannel[Out]]] = []
        self._busy = 0.0
        self._running = False
        self._starts: list[float] = []

    def stats(self) -> StageStats:
        ends = self._copies or [(self._inbox, self._outbox)]
        blocked_in = sum(i.stats.blocked_seconds for i, _ in ends)
        blocked_out = sum(o.stats.blocked_seconds for _, o in ends)
        busy = self._busy
        if self._running:
            busy += sum(time.monotonic() - t for t in self._starts) - blocked_in - blocked_out
        return StageStats(
            name=self.name,
            items_in=sum(i.stats.items for i, _ in ends),
            items_out=sum(o.stats.items for _, o in ends),
            bytes_in=sum(i.stats.bytes for i, _ in ends),
            bytes_out=sum(o.stats.bytes for _, o in ends),
            queue_depth=self._inbox.depth,
            queue_high_water=self._inbox.high_water,
            blocked_in=blocked_in,
            blocked_out=blocked_out,
            busy=max(busy, 0.0),
            running=self._running,
        )

    async def _copy(self, inbox: ReceiveChannel[In], outbox: SendChannel[Out]) -> None:
        start = time.monotonic()
        self._starts.append(start)
        try:
            await self._run(inbox, outbox)
        except BrokenChannel:
            pass  # downstream is gone; its error (if any) is reported by its own stage
        finally:
            inbox.close()
            outbox.close()
            self._starts.remove(start)
            self._busy += time.monotonic() - start - inbox.stats.blocked_seconds - outbox.stats.blocked_seconds

    async def __call__(self) -> None:
        if self._running or self._copies:
            raise RuntimeError(f"stage {self.name} already ran")
        self._running = True
        try:
            if self._concurrency == 1:
                self._copies = [(self._inbox, self._outbox)]
            else:
                self._copies = [(self._inbox.clone(), self._outbox.clone()) for _ in range(self._concurrency)]
                self._inbox.close()  # the clones keep the channel open while they run
                self._outbox.close()
            if len(self._copies) == 1:
                await self._copy(*self._copies[0])
                return
            try:
                async with asyncio.TaskGroup() as tg:
                    for inbox, outbox in self._copies:
                        tg.create_task(self._copy(inbox, outbox))
            except BaseExceptionGroup as group:
                raise first_error(group) from None
        finally:
            for inbox, outbox in self._copies:
                inbox.close()
                outbox.close()
            self._inbox.close()
            self._outbox.close()
            self._running = False

