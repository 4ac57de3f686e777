"""A wrapper that retries transient backend failures with capped exponential backoff and full jitter.

Only :class:`BackendUnavailable` is retried, and not its :class:`EndpointUnreachable` (nothing
has ever answered at the endpoint: a wrong URL or a stopped server, which waiting will not fix
within a retry schedule). Everything else passes through at once: a missing
object (``NotFound``), bad credentials (``AuthError``, ``BackendAuthError``), a programming error
(``UsageError``), damaged data (``IntegrityError``), a full disk (``LocalIOError``) will not fix
itself by waiting. Attempt ``n`` (from 0) sleeps a uniform random time in
``[0, min(max_delay, base_delay * 2**n)]`` ("full jitter": clients that failed together do not
retry together); the jitter comes from :class:`secrets.SystemRandom`. After ``attempts`` tries
the last ``BackendUnavailable`` is raised.

A retried ``put_if_absent`` whose first response was lost may answer ``False`` for the object the
first attempt created. That is fine for every caller: a content-addressed chunk is then a dedup
hit (the stored bytes are the same), and a commit whose creator cannot tell it won re-reads the
head, finds its own bytes, and proceeds (CRYPTO.md §5.2).

A ``list`` that fails mid-way restarts and skips the names it already yielded (listing is a hint).
Cancellation is never swallowed: ``CancelledError`` is not retried and interrupts the backoff sleep.
``retries`` counts the retries per operation (``put``, ``get``, ``head``, ``list``, ``delete``; fixed
keys, readable from another thread) for the metrics of :mod:`.metered`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from ..engine.errors import BackendUnavailable, EndpointUnreachable, UsageError
from .base import Backend, Wrapper
from .metered import OPS

T = TypeVar("T")
log = logging.getLogger(__name__)
_JITTER = secrets.SystemRandom()


class RetryingBackend(Wrapper):
    """Wrap ``inner``; ``sleep`` is injectable so tests can observe the backoff schedule."""

    __slots__ = ("_attempts", "_base", "_cap", "_sleep", "retries")

    def __init__(
        self,
        inner: Backend,
        attempts: int = 6,
        base_delay: float = 0.05,
        max_delay: float = 5.0,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if attempts < 1 or base_delay < 0 or max_delay < 0:
            raise UsageError("attempts must be >= 1 and delays >= 0")
        super().__init__(inner)
        self._attempts = attempts
        self._base = base_delay
        self._cap = max_delay
        self._sleep = sleep
        self.retries: dict[str, int] = dict.fromkeys(OPS, 0)

    def delay(self, attempt: int) -> float:
        """The backoff before retry number ``attempt + 1``: uniform in [0, min(cap, base * 2**attempt)]."""
        return _JITTER.uniform(0.0, min(self._cap, self._base * 2.0 ** min(attempt, 60)))

    async def _call(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(self._attempts):
            try:
                return await op()
            except BackendUnavailable as exc:
                if attempt + 1 >= self._attempts or isinstance(exc, EndpointUnreachable):
                    raise
                pause = self.delay(attempt)
                log.debug("%s on %s failed (%s); retry %d in %.2fs", what, self.description, exc, attempt + 1, pause)
                self.retries[what] += 1
                await self._sleep(pause)
        raise AssertionError("unreachable")  # the loop returns or raises

    async def put_if_absent(self, name: str, data: bytes | bytearray | memoryview) -> bool:
        return await self._call("put", lambda: self.inner.put_if_absent(name, data))

    async def get(self, name: str, start: int = 0, end: int | None = None) -> bytes:
        return await self._call("get", lambda: self.inner.get(name, start, end))

    async def head(self, name: str) -> int:
        return await self._call("head", lambda: self.inner.head(name))

    async def delete(self, name: str) -> None:
        await self._call("delete", lambda: self.inner.delete(name))

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        seen: set[str] = set()
        for attempt in range(self._attempts):
            names = self.inner.list(prefix)
            try:
                async for name in names:
                    if name not in seen:
                        seen.add(name)
                        yield name
                return
            except BackendUnavailable as exc:
                if attempt + 1 >= self._attempts or isinstance(exc, EndpointUnreachable):
                    raise
                self.retries["list"] += 1
                await self._sleep(self.delay(attempt))
            finally:
                close = getattr(names, "aclose", None)
                if close is not None:  # release the inner listing (and its connection) early
                    await close()
