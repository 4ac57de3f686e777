"""Bounded channels between actors, in the manner of trio's memory channels.

``open_channel(maxsize)`` returns a connected ``(SendChannel, ReceiveChannel)`` pair sharing one
bounded buffer. The stream's end is signalled by closing, never by a sentinel in the data:

* ``await send(x)`` waits while the buffer holds ``maxsize`` items (backpressure). It raises
  :class:`BrokenChannel` once every receiver is closed, so a producer stops when its consumer
  is gone, and :class:`ClosedChannel` if this very endpoint was closed.
* ``await receive()`` / ``async for x in recv`` takes items in order; once every sender is closed
  and the buffer is drained, ``receive`` raises :class:`EndOfChannel` and iteration stops.
* With ``max_bytes`` (and a ``weigh`` function) the buffer is also bounded by the bytes it holds:
  a send waits while the items buffered and the new one weigh more than ``max_bytes`` (an item
  heavier than that alone still goes through once the buffer is empty). So many small items can
  queue deep — a producer and its consumer then take turns once per burst, not once per item —
  while the memory held stays that of a few large ones.
* ``clone()`` makes another endpoint of the same side (several producers or consumers); a side
  counts as closed when all its endpoints are closed.
* ``close()``/``aclose()`` are idempotent, never wait and therefore are safe under cancellation.
  Closing the last receiver drops the buffered items and wakes every waiting sender.
* A ``send`` or ``receive`` that is cancelled while waiting has no effect: the item was not
  sent, or not taken.

Each endpoint counts its items, its bytes (when the channel has a ``weigh`` function) and the
seconds it spent blocked; the shared state keeps the depth and its high-water mark. These are
what :mod:`.stage` reports. The errors here are internal control flow between actors and
subclass nothing of ``VaultError``; they must never reach a user.

The channel must only be used from one event loop thread. It does no I/O.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")


class ChannelError(Exception):
    """Base of the channel's control-flow errors (internal; never shown to users)."""


class ClosedChannel(ChannelError):
    """This endpoint was closed and then used."""


class BrokenChannel(ChannelError):
    """Every endpoint on the other side is closed: nobody will receive what is sent."""


class EndOfChannel(ChannelError):
    """Every sender is closed and the buffer is empty."""


@dataclass(slots=True)
class EndpointStats:
    """Counters of one endpoint (live; read them at any time)."""

    items: int = 0
    bytes: int = 0
    blocked_seconds: float = 0.0


@dataclass(slots=True)
class _State(Generic[T]):
    maxsize: int
    weigh: Callable[[T], int] | None
    max_bytes: int | None = None
    buffer: deque[T] = field(default_factory=deque)
    weights: deque[int] = field(default_factory=deque)  # of the buffered items, when max_bytes is set
    held: int = 0  # bytes buffered (with max_bytes)
    senders: int = 0
    receivers: int = 0
    high_water: int = 0
    send_waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    recv_waiters: deque[asyncio.Future[None]] = field(default_factory=deque)


def _room(st: _State[T], weight: int) -> bool:
    """Whether an item of ``weight`` bytes fits in the buffer now."""
    if len(st.buffer) >= st.maxsize:
        return False
    return st.max_bytes is None or not st.buffer or st.held + weight <= st.max_bytes


def _wake_one(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        fut = waiters.popleft()
        if not fut.done():
            fut.set_result(None)
            return


def _wake_all(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        fut = waiters.popleft()
        if not fut.done():
            fut.set_result(None)


async def _wait(waiters: deque[asyncio.Future[None]], stats: EndpointStats) -> None:
    """Park until woken; on cancellation leave the queue and pass the wake-up on if we got one."""
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiters.append(fut)
    start = time.monotonic()
    try:
        await fut
    except BaseException:
        if fut.done() and not fut.cancelled():
            _wake_one(waiters)  # we were woken but will not act on it: give the turn to the next one
        else:
            fut.cancel()
            if fut in waiters:
                waiters.remove(fut)
        raise
    finally:
        stats.blocked_seconds += time.monotonic() - start


class _Endpoint(Generic[T]):
    __slots__ = ("_closed", "_state", "stats")

    def __init__(self, state: _State[T]) -> None:
        self._state = state
        self._closed = False
        self.stats = EndpointStats()

    @property
    def depth(self) -> int:
        """Items buffered now."""
        return len(self._state.buffer)

    @property
    def high_water(self) -> int:
        """The largest depth seen so far."""
        return self._state.high_water

    @property
    def maxsize(self) -> int:
        return self._state.maxsize

    @property
    def closed(self) -> bool:
        return self._closed

    def _weigh(self, item: T, weight: int | None = None) -> int:
        """Count ``item`` in this endpoint's stats; ``weight`` if the caller weighed it already."""
        self.stats.items += 1
        if weight is None:
            weigh = self._state.weigh
            weight = 0 if weigh is None else weigh(item)
        self.stats.bytes += weight
        return weight

    async def aclose(self) -> None:
        """Close this endpoint (idempotent, does not wait, safe under cancellation)."""
        self.close()

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class SendChannel(_Endpoint[T]):
    """The sending end. Use as ``async with`` to close it when the producer is done."""

    __slots__ = ()

    def __init__(self, state: _State[T]) -> None:
        super().__init__(state)
        state.senders += 1

    async def send(self, item: T) -> None:
        """Put ``item`` in the buffer, waiting while it is full.

        Raises BrokenChannel if every receiver is closed (before or while waiting), ClosedChannel
        if this endpoint is closed. If cancelled while waiting, the item is not sent.
        """
        st = self._state
        weight = st.weigh(item) if st.weigh is not None else 0  # once: for the bound and the stats
        while True:
            if self._closed:
                raise ClosedChannel("send on a closed channel")
            if st.receivers == 0:
                raise BrokenChannel("the receiving side is closed")
            if _room(st, weight) and not st.send_waiters:
                break
            await _wait(st.send_waiters, self.stats)
            if _room(st, weight) and st.receivers and not self._closed:
                break  # woken for our turn: take it even though others may queue behind us
        self._put(item, weight)
        if len(st.buffer) < st.maxsize:
            _wake_one(st.send_waiters)

    def _put(self, item: T, weight: int) -> None:
        st = self._state
        st.buffer.append(item)
        st.high_water = max(st.high_water, len(st.buffer))
        self._weigh(item, weight)
        if st.max_bytes is not None:
            st.weights.append(weight)
            st.held += weight
        _wake_one(st.recv_waiters)

    def send_nowait(self, item: T) -> None:
        """Put ``item`` without waiting; raises asyncio.QueueFull when the buffer is full."""
        st = self._state
        if self._closed:
            raise ClosedChannel("send on a closed channel")
        if st.receivers == 0:
            raise BrokenChannel("the receiving side is closed")
        weight = st.weigh(item) if st.weigh is not None else 0
        if not _room(st, weight) or st.send_waiters:
            raise asyncio.QueueFull
        self._put(item, weight)

    def clone(self) -> SendChannel[T]:
        """Another sender on the same channel; the stream ends when all senders are closed."""
        if self._closed:
            raise ClosedChannel("clone of a closed channel")
        return SendChannel(self._state)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        st = self._state
        st.senders -= 1
        if st.senders == 0:
            _wake_all(st.recv_waiters)  # they see the end once the buffer is drained
        _wake_all(st.send_waiters)  # a clone of ours may be parked: let it re-check

    async def __aenter__(self) -> SendChannel[T]:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class ReceiveChannel(_Endpoint[T]):
    """The receiving end: ``async for item in channel``. Closing it breaks the senders."""

    __slots__ = ()

    def __init__(self, state: _State[T]) -> None:
        super().__init__(state)
        state.receivers += 1

    async def receive(self) -> T:
        """Take the next item, waiting while the buffer is empty.

        Raises EndOfChannel when every sender is closed and nothing is left, ClosedChannel if
        this endpoint is closed. If cancelled while waiting, nothing is taken.
        """
        st = self._state
        while True:
            if self._closed:
                raise ClosedChannel("receive on a closed channel")
            if st.buffer and not st.recv_waiters:
                break
            if not st.buffer and st.senders == 0:
                raise EndOfChannel
            await _wait(st.recv_waiters, self.stats)
            if st.buffer and not self._closed:
                break
        return self._take()

    def receive_nowait(self) -> T:
        """Take the next item or raise asyncio.QueueEmpty (EndOfChannel once the stream is over)."""
        st = self._state
        if self._closed:
            raise ClosedChannel("receive on a closed channel")
        if not st.buffer or st.recv_waiters:
            if not st.buffer and st.senders == 0:
                raise EndOfChannel
            raise asyncio.QueueEmpty
        return self._take()

    def _take(self) -> T:
        st = self._state
        item = st.buffer.popleft()
        if st.max_bytes is not None:
            weight = st.weights.popleft()  # weighed when it was sent
            st.held -= weight
            self._weigh(item, weight)
        else:
            self._weigh(item)
        _wake_one(st.send_waiters)
        if st.buffer:
            _wake_one(st.recv_waiters)
        return item

    def clone(self) -> ReceiveChannel[T]:
        """Another receiver on the same channel; items go to whichever receiver asks first."""
        if self._closed:
            raise ClosedChannel("clone of a closed channel")
        return ReceiveChannel(self._state)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        st = self._state
        st.receivers -= 1
        if st.receivers == 0:
            st.buffer.clear()  # nobody will take them; let them be collected
            st.weights.clear()
            st.held = 0
            _wake_all(st.send_waiters)  # they raise BrokenChannel
        _wake_all(st.recv_waiters)

    def __aiter__(self) -> ReceiveChannel[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.receive()
        except EndOfChannel:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> ReceiveChannel[T]:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_channel(maxsize: int, weigh: Callable[[T], int] | None = None, *, max_bytes: int | None = None
                 ) -> tuple[SendChannel[T], ReceiveChannel[T]]:
    """A connected bounded channel. ``weigh(item)`` (optional) gives the bytes an item counts for;
    ``max_bytes`` (which needs ``weigh``) bounds the bytes buffered as well as the items."""
    if maxsize < 1:
        raise ValueError("a channel needs maxsize >= 1")
    if max_bytes is not None and (weigh is None or max_bytes < 1):
        raise ValueError("max_bytes needs a weigh function and must be >= 1")
    state: _State[T] = _State(maxsize, weigh, max_bytes)
    return SendChannel(state), ReceiveChannel(state)
