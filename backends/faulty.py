"""A wrapper for tests that makes chosen calls fail, lose their response, stall or hang.

Rules are matched against each call of a method (``"put_if_absent"``, ``"get"``, ``"head"``,
``"list"``, ``"delete"`` or ``"*"`` for any), counting calls per method from 1::

    faulty.fail("get", nth=2)                   # the 2nd get raises BackendUnavailable
    faulty.fail("head", NotFound, every=3)      # every 3rd head raises NotFound
    faulty.lose_response("put_if_absent", nth=1)  # the put happens, the caller sees BackendUnavailable
    faulty.delay("get", 0.2)                    # every get waits 0.2 s first
    faulty.hang("list", nth=1)                  # the first list never answers (until cancelled)
    faulty.hold("put_if_absent", gate)          # every put first awaits gate(name): the test decides

A rule with neither ``nth`` nor ``every`` fires on every call; the first matching rule wins.
``calls`` counts calls per method, ``active``/``peak`` the calls in flight now and at most.
A hang waits on nothing and ends only by cancellation, which is how tests prove timeouts work.
A hold awaits the test's ``gate`` with the object name (the prefix for ``list``), so a test can
stop a run at an exact point — e.g. before its uploads finish — instead of racing it with sleeps.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from ..engine.errors import BackendUnavailable
from .base import Backend, Wrapper

T = TypeVar("T")
Fault = BaseException | type[BaseException]


@dataclass(frozen=True, slots=True)
class _Rule:
    method: str
    action: str  # "raise" | "lose" | "delay" | "hang" | "hold"
    nth: int | None
    every: int | None
    error: Fault | None = None
    seconds: float = 0.0
    gate: Callable[[str], Awaitable[None]] | None = None

    def fires(self, method: str, count: int) -> bool:
        if self.method not in ("*", method):
            return False
        if self.nth is not None:
            return count == self.nth
        return count % (self.every or 1) == 0


class FaultyBackend(Wrapper):
    """Wrap ``inner`` and misbehave on the calls the rules choose."""

    __slots__ = ("_rules", "active", "calls", "peak")

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.calls: Counter[str] = Counter()
        self.active = 0
        self.peak = 0
        self._rules: list[_Rule] = []

    @property
    def description(self) -> str:
        return f"faulty({self.inner.description})"

    def fail(
        self, method: str, error: Fault = BackendUnavailable, *, nth: int | None = None, every: int | None = None
    ) -> None:
        """Raise ``error`` (a class is instantiated at each raise) instead of calling the inner backend."""
        self._rules.append(_Rule(method, "raise", nth, every, error))

    def lose_response(self, method: str = "put_if_absent", *, nth: int | None = None, every: int | None = None) -> None:
        """Call the inner backend, then raise BackendUnavailable as if the answer was lost."""
        self._rules.append(_Rule(method, "lose", nth, every))

    def delay(self, method: str, seconds: float, *, nth: int | None = None, every: int | None = None) -> None:
        self._rules.append(_Rule(method, "delay", nth, every, seconds=seconds))

    def hang(self, method: str, *, nth: int | None = None, every: int | None = None) -> None:
        self._rules.append(_Rule(method, "hang", nth, every))

    def hold(self, method: str, gate: Callable[[str], Awaitable[None]], *, nth: int | None = None,
             every: int | None = None) -> None:
        """Await ``gate(name)`` before calling the inner backend (the gate may return at once)."""
        self._rules.append(_Rule(method, "hold", nth, every, gate=gate))

    def clear(self) -> None:
        """Remove every rule (the counters stay)."""
        self._rules.clear()

    async def _run(self, method: str, op: Callable[[], Awaitable[T]], name: str = "") -> T:
        self.calls[method] += 1
        count = self.calls[method]
        rule = next((r for r in self._rules if r.fires(method, count)), None)
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            if rule is not None and rule.action == "raise":
                assert rule.error is not None
                raise rule.error
            if rule is not None and rule.action == "delay":
                await asyncio.sleep(rule.seconds)
            if rule is not None and rule.action == "hang":
                await asyncio.Event().wait()
            if rule is not None and rule.action == "hold":
                assert rule.gate is not None
                await rule.gate(name)
            result = await op()
            if rule is not None and rule.action == "lose":
                raise BackendUnavailable(f"injected lost response to {method}")
            return result
        finally:
            self.active -= 1

    async def put_if_absent(self, name: str, data: bytes | bytearray | memoryview) -> bool:
        return await self._run("put_if_absent", lambda: self.inner.put_if_absent(name, data), name)

    async def get(self, name: str, start: int = 0, end: int | None = None) -> bytes:
        return await self._run("get", lambda: self.inner.get(name, start, end), name)

    async def head(self, name: str) -> int:
        return await self._run("head", lambda: self.inner.head(name), name)

    async def delete(self, name: str) -> None:
        await self._run("delete", lambda: self.inner.delete(name), name)

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        async def collect() -> list[str]:
            return [name async for name in self.inner.list(prefix)]

        for name in await self._run("list", collect, prefix):
            yield name
