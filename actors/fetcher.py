"""The fetcher: a readahead window of concurrent reads, and the one rule for how far ahead to read.

:func:`ahead` is the window rule shared by every reader that reads ahead: keep ``window`` items
started beyond what the consumer has taken. :func:`ordered` applies it to a stream — it keeps up
to ``window`` calls of ``fetch(item)`` running ahead of the consumer and yields their results in
the order of ``items`` (the assembler's job of restoring order is this generator's); memory is
``window`` results at most, and when the consumer stops early or fails, the calls still running
are cancelled and awaited before the generator returns, so no task outlives it. The mount applies
the same rule to readers that pull chunks by position (its prefetches land in its chunk cache).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ahead(consumed: int, started: int, total: int, window: int) -> range:
    """The items to start now: those below ``consumed + window`` (at least one) not started yet.

    ``consumed`` items were taken by the reader (the next one it needs is ``consumed``), items
    below ``started`` are running or done, ``total`` is the number of items.
    """
    return range(max(started, consumed), min(total, consumed + max(1, window)))


async def ordered(items: Sequence[T], fetch: Callable[[T], Awaitable[R]], window: int) -> AsyncGenerator[R, None]:
    pending: deque[asyncio.Future[R]] = deque()
    nxt = done = 0
    try:
        while nxt < len(items) or pending:
            for i in ahead(done, nxt, len(items), window):
                pending.append(asyncio.ensure_future(fetch(items[i])))
                nxt = i + 1
            result = await pending.popleft()
            done += 1
            yield result
    finally:
        for fut in pending:
            fut.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
