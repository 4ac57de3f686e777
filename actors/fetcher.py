"""The fetcher: a readahead window of concurrent reads whose results come back in order.

``ordered(items, fetch, window)`` keeps up to ``window`` calls of ``fetch(item)`` running ahead of
the consumer and yields their results in the order of ``items`` (the assembler's job of restoring
order is this generator's). Memory is ``window`` results at most. When the consumer stops early
or fails, the calls still running are cancelled and awaited before the generator returns, so no
task outlives it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def ordered(items: Sequence[T], fetch: Callable[[T], Awaitable[R]], window: int) -> AsyncGenerator[R, None]:
    pending: deque[asyncio.Future[R]] = deque()
    nxt = 0
    try:
        while nxt < len(items) or pending:
            while nxt < len(items) and len(pending) < max(1, window):
                pending.append(asyncio.ensure_future(fetch(items[nxt])))
                nxt += 1
            yield await pending.popleft()
    finally:
        for fut in pending:
            fut.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
