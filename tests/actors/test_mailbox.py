"""Bounded channels: ordering, backpressure, end of stream, broken senders, cancellation safety."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sigmavault.actors.mailbox import BrokenChannel, ClosedChannel, EndOfChannel, open_channel


def run(fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(fn(), 10))  # type: ignore[arg-type]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_items_arrive_in_order_through_a_small_buffer() -> None:
    async def main() -> list[int]:
        send, recv = open_channel(3)

        async def produce() -> None:
            async with send:
                for i in range(200):
                    await send.send(i)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(produce())
            got = [x async for x in recv]
        assert recv.high_water <= 3
        return got

    assert run(main) == list(range(200))


def test_send_blocks_at_maxsize_until_an_item_is_taken() -> None:
    async def main() -> None:
        send, recv = open_channel(2)
        await send.send(1)
        await send.send(2)
        assert send.depth == 2
        third = asyncio.create_task(send.send(3))
        await asyncio.sleep(0.05)
        assert not third.done()  # backpressure
        with pytest.raises(asyncio.QueueFull):
            send.send_nowait(4)
        assert await recv.receive() == 1
        await asyncio.wait_for(third, 1)
        assert [recv.receive_nowait(), recv.receive_nowait()] == [2, 3]
        assert send.stats.blocked_seconds >= 0.04
        assert send.stats.items == 3 and recv.stats.items == 3
        assert send.high_water == 2

    run(main)


def test_closing_the_sender_ends_the_stream_after_the_buffer_drains() -> None:
    async def main() -> None:
        send, recv = open_channel(4)
        await send.send("a")
        await send.send("b")
        waiting = asyncio.create_task(recv.receive())  # gets "a" at once
        await send.aclose()
        await send.aclose()  # idempotent
        assert await waiting == "a"
        assert [x async for x in recv] == ["b"]
        with pytest.raises(EndOfChannel):
            await recv.receive()
        with pytest.raises(ClosedChannel):
            await send.send("c")

    run(main)


def test_a_parked_receiver_wakes_with_end_of_channel() -> None:
    async def main() -> None:
        send, recv = open_channel(1)
        waiting = asyncio.create_task(recv.receive())
        await settle()
        send.close()
        with pytest.raises(EndOfChannel):
            await waiting

    run(main)


def test_stream_ends_only_when_every_clone_of_the_sender_is_closed() -> None:
    async def main() -> None:
        a, recv = open_channel(8)
        b = a.clone()
        await a.send(1)
        a.close()
        await b.send(2)
        assert recv.receive_nowait() == 1
        assert recv.receive_nowait() == 2
        with pytest.raises(asyncio.QueueEmpty):
            recv.receive_nowait()
        b.close()
        with pytest.raises(EndOfChannel):
            recv.receive_nowait()

    run(main)


def test_closing_the_receiver_breaks_pending_and_later_sends() -> None:
    async def main() -> None:
        send, recv = open_channel(1)
        await send.send(1)
        blocked = asyncio.create_task(send.send(2))
        await settle()
        await recv.aclose()
        await recv.aclose()
        with pytest.raises(BrokenChannel):
            await blocked
        with pytest.raises(BrokenChannel):
            await send.send(3)
        assert send.depth == 0  # buffered items were dropped
        with pytest.raises(ClosedChannel):
            await recv.receive()

    run(main)


def test_receivers_close_only_breaks_when_all_clones_are_closed() -> None:
    async def main() -> None:
        send, r1 = open_channel(4)
        r2 = r1.clone()
        r1.close()
        await send.send(7)
        assert await r2.receive() == 7
        r2.close()
        with pytest.raises(BrokenChannel):
            await send.send(8)

    run(main)


def test_a_cancelled_send_sends_nothing_and_does_not_block_others() -> None:
    async def main() -> None:
        send, recv = open_channel(1)
        await send.send(1)
        cancelled = asyncio.create_task(send.send(99))
        later = asyncio.create_task(send.send(2))
        await settle()
        cancelled.cancel()
        await settle()
        assert cancelled.cancelled()
        assert await recv.receive() == 1
        await asyncio.wait_for(later, 1)
        send.close()
        assert [x async for x in recv] == [2]

    run(main)


def test_a_receiver_cancelled_after_being_woken_loses_no_item() -> None:
    async def main() -> None:
        send, recv = open_channel(2)
        first = asyncio.create_task(recv.receive())
        second = asyncio.create_task(recv.clone().receive())
        await settle()
        send.send_nowait(5)  # wakes `first` ...
        first.cancel()  # ... which is cancelled before it runs: the wake-up must pass on
        assert await asyncio.wait_for(second, 1) == 5
        assert first.cancelled()
        assert send.depth == 0

    run(main)


def test_bytes_are_counted_with_weigh() -> None:
    async def main() -> None:
        send, recv = open_channel(4, weigh=len)
        await send.send(b"abc")
        await send.send(b"de")
        send.close()
        assert [x async for x in recv] == [b"abc", b"de"]
        assert send.stats.bytes == 5 and recv.stats.bytes == 5

    run(main)


def test_maxsize_must_be_positive() -> None:
    with pytest.raises(ValueError):
        open_channel(0)


@settings(max_examples=40, deadline=None)
@given(
    maxsize=st.integers(1, 4),
    producers=st.lists(st.integers(0, 30), min_size=1, max_size=4),
    consumers=st.integers(1, 3),
    cancel_every=st.integers(2, 7),
)
def test_every_item_is_delivered_once_in_per_producer_order(
    maxsize: int, producers: list[int], consumers: int, cancel_every: int
) -> None:
    """Many producers and consumers with yields and cancelled receives in between lose and duplicate nothing."""

    async def main() -> None:
        send, recv = open_channel(maxsize)
        got: list[tuple[int, int]] = []

        async def produce(p: int, n: int, tx: Any) -> None:
            async with tx:
                for i in range(n):
                    await tx.send((p, i))
                    if i % 3 == 0:
                        await asyncio.sleep(0)

        async def consume(rx: Any) -> None:
            k = 0
            while True:
                k += 1
                if k % cancel_every == 0:  # a receive that is cancelled while parked or just woken
                    t = asyncio.create_task(rx.receive())
                    await asyncio.sleep(0)
                    t.cancel()
                    try:
                        got.append(await t)
                    except asyncio.CancelledError:
                        pass
                    except EndOfChannel:
                        return
                    continue
                try:
                    got.append(await rx.receive())
                except EndOfChannel:
                    return

        async with asyncio.TaskGroup() as tg:
            for p, n in enumerate(producers):
                tg.create_task(produce(p, n, send.clone()))
            send.close()
            for _ in range(consumers):
                tg.create_task(consume(recv.clone()))
            recv.close()
        for p, n in enumerate(producers):
            assert [i for q, i in got if q == p] == list(range(n))
        assert len(got) == sum(producers)

    run(main)


def test_max_bytes_bounds_the_bytes_held_and_lets_small_items_queue_deep() -> None:
    async def main() -> None:
        send, recv = open_channel(100, len, max_bytes=10)
        for _ in range(10):
            send.send_nowait(b"x")  # ten small items: no waiting
        with pytest.raises(asyncio.QueueFull):
            send.send_nowait(b"y")  # an eleventh byte would exceed max_bytes
        big = asyncio.create_task(send.send(b"z" * 25))  # heavier than max_bytes on its own
        await settle()
        assert not big.done()
        for _ in range(9):
            assert await recv.receive() == b"x"
        await settle()
        assert not big.done()  # one byte still held: 1 + 25 > 10
        assert await recv.receive() == b"x"
        await asyncio.wait_for(big, 1)  # an empty buffer takes any one item
        assert recv.receive_nowait() == b"z" * 25
        send.send_nowait(b"a" * 10)
        assert recv.receive_nowait() == b"a" * 10

    run(main)


def test_max_bytes_keeps_order_and_the_bound_with_several_producers() -> None:
    async def main() -> list[bytes]:
        send, recv = open_channel(50, len, max_bytes=8)

        async def produce(tag: bytes, sender: Any) -> None:
            async with sender:
                for i in range(40):
                    await sender.send(tag * (1 + i % 5))

        async def consume() -> list[bytes]:
            got = []
            async for item in recv:
                got.append(item)
                await asyncio.sleep(0)
            return got

        async with asyncio.TaskGroup() as tg:
            tg.create_task(produce(b"a", send.clone()))
            tg.create_task(produce(b"b", send))
            got = tg.create_task(consume())
        items = got.result()
        assert recv.high_water <= 8  # items of 1 to 5 bytes under max_bytes=8: never more than 8 held
        assert [x for x in items if x[:1] == b"a"] == [b"a" * (1 + i % 5) for i in range(40)]
        assert [x for x in items if x[:1] == b"b"] == [b"b" * (1 + i % 5) for i in range(40)]
        return items

    assert len(run(main)) == 80


def test_max_bytes_needs_a_weigh_function() -> None:
    with pytest.raises(ValueError):
        open_channel(4, max_bytes=10)
