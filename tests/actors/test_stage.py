"""Stage runner: endpoints closed on every exit, failures stop the pipeline, concurrency, stats."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from actortools import run_pipeline

from sigmavault.actors.mailbox import BrokenChannel, ReceiveChannel, SendChannel, open_channel
from sigmavault.actors.stage import Stage


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 10))


def source(n: int, delay: float = 0.0) -> Any:
    async def go(inbox: ReceiveChannel[Any], outbox: SendChannel[int]) -> None:
        async for _ in inbox:  # a source's inbox is already at its end
            raise AssertionError("a source gets no input")
        for i in range(n):
            await outbox.send(i)
            if delay:
                await asyncio.sleep(delay)

    return go


def test_three_stages_stream_everything_and_count_it() -> None:
    got: list[int] = []

    async def double(inbox: ReceiveChannel[int], outbox: SendChannel[int]) -> None:
        async for x in inbox:
            await outbox.send(2 * x)

    async def sink(inbox: ReceiveChannel[int], outbox: SendChannel[Any]) -> None:
        async for x in inbox:
            got.append(x)
            await asyncio.sleep(0.001)  # slow consumer: upstream must block on output

    async def main() -> list[Stage[Any, Any]]:
        a_tx, a_rx = open_channel(2, weigh=lambda _: 10)
        b_tx, b_rx = open_channel(2)
        stages: list[Stage[Any, Any]] = [
            Stage("source", source(50), outbox=a_tx),
            Stage("double", double, a_rx, b_tx),
            Stage("sink", sink, b_rx),
        ]
        await run_pipeline(*stages)
        return stages

    stages = run(main())
    assert got == [2 * i for i in range(50)]
    src, dbl, snk = (s.stats() for s in stages)
    assert (src.items_out, dbl.items_in, dbl.items_out, snk.items_in) == (50, 50, 50, 50)
    assert src.bytes_out == 500 and dbl.bytes_in == 500
    assert src.blocked_out > 0.01  # backpressure from the slow sink reached the source
    assert snk.busy > 0.02 and not snk.running
    assert dbl.queue_high_water <= 2


def test_a_failing_stage_stops_the_pipeline_and_its_error_surfaces() -> None:
    produced = 0

    async def endless(inbox: ReceiveChannel[Any], outbox: SendChannel[int]) -> None:
        nonlocal produced
        while True:
            await outbox.send(produced)
            produced += 1

    async def picky(inbox: ReceiveChannel[int], outbox: SendChannel[Any]) -> None:
        async for x in inbox:
            if x == 10:
                raise LookupError("bad item")

    async def main() -> None:
        tx, rx = open_channel(4)
        await run_pipeline(Stage("endless", endless, outbox=tx), Stage("picky", picky, rx))

    with pytest.raises(LookupError, match="bad item"):
        run(main())
    assert produced <= 10 + 4 + 1  # the producer stopped: bounded by the queue


def test_a_producer_whose_consumer_is_gone_ends_quietly() -> None:
    async def main() -> None:
        tx, rx = open_channel(1)
        rx.close()
        stage = Stage("orphan", source(5), outbox=tx)
        await stage()  # BrokenChannel is not an error of this stage
        assert tx.closed

    run(main())


def test_closing_happens_on_cancellation_too() -> None:
    async def main() -> None:
        a_tx, a_rx = open_channel(1)
        b_tx, b_rx = open_channel(1)

        async def stuck(inbox: ReceiveChannel[int], outbox: SendChannel[int]) -> None:
            await asyncio.sleep(100)

        task = asyncio.create_task(Stage("stuck", stuck, a_rx, b_tx)())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(BrokenChannel):
            await a_tx.send(1)  # upstream learns at once
        assert [x async for x in b_rx] == []  # downstream sees the end

    run(main())


def test_concurrent_copies_share_the_inbox_and_close_the_outbox_once_all_are_done() -> None:
    active = 0
    peak = 0

    async def slow_square(inbox: ReceiveChannel[int], outbox: SendChannel[int]) -> None:
        nonlocal active, peak
        async for x in inbox:
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.005)
            active -= 1
            await outbox.send(x * x)

    async def main() -> list[int]:
        a_tx, a_rx = open_channel(8)
        b_tx, b_rx = open_channel(8)
        out: list[int] = []

        async def collect(inbox: ReceiveChannel[int], outbox: SendChannel[Any]) -> None:
            out.extend([x async for x in inbox])

        await run_pipeline(
            Stage("src", source(40), outbox=a_tx),
            Stage("sq", slow_square, a_rx, b_tx, concurrency=4),
            Stage("sink", collect, b_rx),
        )
        return out

    assert sorted(run(main())) == [i * i for i in range(40)]
    assert peak == 4


def test_one_copy_failing_cancels_the_others() -> None:
    async def flaky(inbox: ReceiveChannel[int], outbox: SendChannel[int]) -> None:
        async for x in inbox:
            if x == 3:
                raise KeyError("three")
            await asyncio.sleep(0.01)

    async def main() -> None:
        tx, rx = open_channel(2)
        await run_pipeline(Stage("src", source(100), outbox=tx), Stage("flaky", flaky, rx, concurrency=3))

    with pytest.raises(KeyError):
        run(main())
