"""A wrapper that caps how many requests are in flight on a backend at once.

Each call holds one slot of an :class:`asyncio.Semaphore` while it runs. A listing takes a slot
for each step of the iteration only, not for its whole life, so a caller may fetch objects
while it lists without deadlocking a limit of one. Cancelling a waiting call gives up its place
in line; cancelling a running call frees its slot (``async with`` releases on every exit).
The semaphore binds to the event loop that first uses it: use one wrapper per loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from ..engine.errors import UsageError
from .base import Backend, Wrapper


class LimitedBackend(Wrapper):
    """Wrap ``inner`` so at most ``concurrency`` of its calls run at once."""

    __slots__ = ("_gate", "concurrency")

    def __init__(self, inner: Backend, concurrency: int) -> None:
        if concurrency < 1:
            raise UsageError("concurrency must be at least 1")
        super().__init__(inner)
        self.concurrency = concurrency
        self._gate = asyncio.Semaphore(concurrency)

    async def put_if_absent(self, name: str, data: bytes | bytearray | memoryview) -> bool:
        async with self._gate:
            return await self.inner.put_if_absent(name, data)

    async def get(self, name: str, start: int = 0, end: int | None = None) -> bytes:
        async with self._gate:
            return await self.inner.get(name, start, end)

    async def head(self, name: str) -> int:
        async with self._gate:
            return await self.inner.head(name)

    async def delete(self, name: str) -> None:
        async with self._gate:
            await self.inner.delete(name)

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        names = self.inner.list(prefix)
        try:
            while True:
                async with self._gate:
                    try:
                        name = await anext(names)
                    except StopAsyncIteration:
                        return
                yield name
        finally:
            close = getattr(names, "aclose", None)
            if close is not None:
                await close()
