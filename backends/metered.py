"""A wrapper that counts what a backend is asked: requests, errors, bytes and latency per operation.

:class:`MeteredBackend` sits right above the store (below the retrying wrapper), so it sees every
attempt: a request retried three times counts three requests (the retries themselves are counted
by :class:`~.retrying.RetryingBackend`). Per operation (``put``, ``get``, ``head``, ``list``,
``delete``) it keeps an :class:`OpCounters`: requests started, requests that failed, and the
latency of every request that ended, in a fixed-bucket :class:`Histogram`. ``put`` adds the bytes
sent, ``get`` the bytes received. A ``NotFound`` answer is an answer, not an error (readers probe
for objects); a cancelled request is counted as started but neither failed nor timed. A ``list``
is one request, timed from its start until the listing ends.

Counters are plain ints in lists and dicts whose keys never change, so :meth:`MeteredBackend.snapshot`
may be read from another thread (a metrics exporter) while the event loop updates them: each value
is current, the set of them is not one atomic cut. Object names, sizes of single objects and the
store's location are never recorded here. Nothing here imports a metrics library.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ..engine.errors import NotFound
from .base import Backend, Wrapper

#: upper bounds (seconds) of the latency buckets; a last, unbounded bucket catches the rest
LATENCY_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                                      10.0, 30.0)
OPS: tuple[str, ...] = ("put", "get", "head", "list", "delete")


@dataclass(slots=True)
class Histogram:
    """Observations counted in fixed buckets: ``counts[i]`` holds those ``<= bounds[i]`` and above the
    bound before (not cumulative); ``counts[-1]`` those above the last bound."""

    bounds: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0  # the sum of the observations

    def __post_init__(self) -> None:
        if list(self.bounds) != sorted(set(self.bounds)):
            raise ValueError("histogram bounds must be strictly increasing")
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def copy(self) -> Histogram:
        return Histogram(self.bounds, list(self.counts), self.total)


@dataclass(slots=True)
class OpCounters:
    """What one kind of request did so far."""

    requests: int = 0
    errors: int = 0
    bytes: int = 0  # sent (put) or received (get)
    latency: Histogram = field(default_factory=Histogram)

    def copy(self) -> OpCounters:
        return OpCounters(self.requests, self.errors, self.bytes, self.latency.copy())


class MeteredBackend(Wrapper):
    """Wrap ``inner`` and count every request (see the module doc); read with :meth:`snapshot`."""

    __slots__ = ("ops",)

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.ops: dict[str, OpCounters] = {op: OpCounters() for op in OPS}  # fixed keys: safe to read anywhere

    def snapshot(self) -> dict[str, OpCounters]:
        """A copy of the counters, by operation."""
        return {op: c.copy() for op, c in self.ops.items()}

    def _start(self, op: str) -> tuple[OpCounters, float]:
        c = self.ops[op]
        c.requests += 1
        return c, time.perf_counter()

    @staticmethod
    def _failed(c: OpCounters, started: float, exc: BaseException) -> None:
        if isinstance(exc, Exception):  # a cancellation is neither a failure nor a latency
            c.latency.observe(time.perf_counter() - started)
            if not isinstance(exc, NotFound):
                c.errors += 1

    async def put_if_absent(self, name: str, data: bytes | bytearray | memoryview) -> bool:
        c, t = self._start("put")
        try:
            created = await self.inner.put_if_absent(name, data)
        except BaseException as exc:
            self._failed(c, t, exc)
            raise
        c.latency.observe(time.perf_counter() - t)
        c.bytes += len(data) if not isinstance(data, memoryview) else data.nbytes
        return created

    async def get(self, name: str, start: int = 0, end: int | None = None) -> bytes:
        c, t = self._start("get")
        try:
            data = await self.inner.get(name, start, end)
        except BaseException as exc:
            self._failed(c, t, exc)
            raise
        c.latency.observe(time.perf_counter() - t)
        c.bytes += len(data)
        return data

    async def head(self, name: str) -> int:
        c, t = self._start("head")
        try:
            size = await self.inner.head(name)
        except BaseException as exc:
            self._failed(c, t, exc)
            raise
        c.latency.observe(time.perf_counter() - t)
        return size

    async def delete(self, name: str) -> None:
        c, t = self._start("delete")
        try:
            await self.inner.delete(name)
        except BaseException as exc:
            self._failed(c, t, exc)
            raise
        c.latency.observe(time.perf_counter() - t)

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        c, t = self._start("list")
        names = self.inner.list(prefix)
        try:
            async for name in names:
                yield name
        except BaseException as exc:
            self._failed(c, t, exc)
            raise
        finally:
            close = getattr(names, "aclose", None)
            if close is not None:
                await close()
        c.latency.observe(time.perf_counter() - t)
