"""The fetcher's window: at most ``window`` reads run ahead of the consumer, results come in order,
and closing the stream early cancels what still runs (the rule the mount's prefetch shares)."""

from __future__ import annotations

import asyncio
import contextlib
import random

from sigmavault.actors.fetcher import ahead, ordered


def test_the_window_rule() -> None:
    assert ahead(0, 0, 10, 4) == range(0, 4)
    assert ahead(1, 4, 10, 4) == range(4, 5)  # one taken: one more may start
    assert ahead(8, 9, 10, 4) == range(9, 10)  # never past the end
    assert ahead(3, 0, 10, 0) == range(3, 4)  # at least the one the reader needs
    assert ahead(5, 2, 10, 2) == range(5, 7)  # a reader that jumped ahead starts at its position


async def test_ordered_keeps_the_window_and_the_order() -> None:
    running = 0
    peak = 0
    rng = random.Random(3)

    async def fetch(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(rng.random() / 200)
        running -= 1
        return i * i

    assert [r async for r in ordered(list(range(30)), fetch, 4)] == [i * i for i in range(30)]
    assert peak == 4


async def test_closing_early_cancels_the_reads_still_running() -> None:
    cancelled: list[int] = []

    async def fetch(i: int) -> int:
        try:
            await asyncio.sleep(0 if i == 0 else 10)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise
        return i

    async with contextlib.aclosing(ordered(list(range(10)), fetch, 3)) as results:
        async for first in results:
            assert first == 0
            break
    assert sorted(cancelled) == [1, 2]  # the window held 0, 1, 2; 0 was taken
