"""Retrying, limited and faulty wrappers: retry policy, backoff, cancellation, caps, fault injection."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from conformance import BackendConformance, cname, oname

from sigmavault.backends.base import Backend
from sigmavault.backends.faulty import FaultyBackend
from sigmavault.backends.limited import LimitedBackend
from sigmavault.backends.local import LocalBackend
from sigmavault.backends.memory import MemoryBackend
from sigmavault.backends.retrying import RetryingBackend
from sigmavault.engine.errors import (
    AuthError,
    BackendAuthError,
    BackendUnavailable,
    EndpointUnreachable,
    IntegrityError,
    LocalIOError,
    NotFound,
    UsageError,
)


class TestWrappedStackConformance(BackendConformance):
    """The wrappers are backends too: the whole stack passes the suite (a limit of 1 finds deadlocks)."""

    async def make_backend(self) -> Backend:
        return RetryingBackend(LimitedBackend(FaultyBackend(MemoryBackend()), 1))


class TestFlakyStackConformance(BackendConformance):
    """Every 3rd call of every method fails transiently; retries hide it completely."""

    async def make_backend(self) -> Backend:
        faulty = FaultyBackend(MemoryBackend())
        faulty.fail("*", every=3)
        return RetryingBackend(LimitedBackend(faulty, 8), base_delay=0.0)


class Sleeps:
    """An injectable sleep that records the backoff schedule instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def stack(attempts: int = 6, base: float = 0.05, cap: float = 5.0) -> tuple[FaultyBackend, RetryingBackend, Sleeps]:
    faulty = FaultyBackend(MemoryBackend())
    sleeps = Sleeps()
    return faulty, RetryingBackend(faulty, attempts, base, cap, sleep=sleeps), sleeps


def test_transient_failures_are_retried() -> None:
    faulty, retrying, sleeps = stack()

    async def main() -> None:
        await faulty.inner.put_if_absent(cname(0), b"genesis")
        faulty.fail("get", nth=1)
        faulty.fail("get", nth=2)
        assert await retrying.get(cname(0)) == b"genesis"

    asyncio.run(main())
    assert faulty.calls["get"] == 3
    assert len(sleeps.delays) == 2


@pytest.mark.parametrize(
    "error",
    [NotFound, AuthError, BackendAuthError, UsageError, IntegrityError, LocalIOError, ValueError, EndpointUnreachable],
)
def test_permanent_failures_are_not_retried(error: type[Exception]) -> None:
    faulty, retrying, sleeps = stack()
    faulty.fail("head", error)

    async def main() -> None:
        with pytest.raises(error):
            await retrying.head(cname(0))

    asyncio.run(main())
    assert faulty.calls["head"] == 1
    assert sleeps.delays == []


def test_nothing_answering_at_the_endpoint_is_not_retried_by_list_either() -> None:
    faulty, retrying, sleeps = stack()
    faulty.fail("list", EndpointUnreachable)

    async def main() -> None:
        with pytest.raises(EndpointUnreachable):
            [n async for n in retrying.list("k/")]

    asyncio.run(main())
    assert faulty.calls["list"] == 1 and sleeps.delays == []


def test_hold_stops_calls_at_the_gate_until_released() -> None:
    faulty = FaultyBackend(MemoryBackend())
    opened = asyncio.Event()
    seen: list[str] = []

    async def gate(name: str) -> None:
        seen.append(name)
        if name.startswith("o/"):
            await opened.wait()

    faulty.hold("put_if_absent", gate)

    async def main() -> None:
        assert await faulty.put_if_absent(cname(0), b"commit") is True  # not held: the gate returns
        put = asyncio.create_task(faulty.put_if_absent(oname(1), b"data"))
        while len(seen) < 2:
            await asyncio.sleep(0)
        for _ in range(20):
            await asyncio.sleep(0)
        assert not put.done() and [n async for n in faulty.inner.list("o/")] == []  # held before the store
        opened.set()
        assert await put is True
        assert await faulty.inner.get(oname(1)) == b"data"

    asyncio.run(main())
    assert seen == [cname(0), oname(1)]


def test_gives_up_after_the_attempts() -> None:
    faulty, retrying, sleeps = stack(attempts=4)
    faulty.fail("put_if_absent")

    async def main() -> None:
        with pytest.raises(BackendUnavailable):
            await retrying.put_if_absent(oname(1), b"x")

    asyncio.run(main())
    assert faulty.calls["put_if_absent"] == 4
    assert len(sleeps.delays) == 3


def test_backoff_is_exponential_jittered_and_capped() -> None:
    faulty, retrying, sleeps = stack(attempts=12, base=0.05, cap=0.3)
    faulty.fail("delete")

    async def main() -> None:
        with pytest.raises(BackendUnavailable):
            await retrying.delete(oname(1))

    asyncio.run(main())
    assert len(sleeps.delays) == 11
    for n, pause in enumerate(sleeps.delays):
        assert 0.0 <= pause <= min(0.3, 0.05 * 2**n)
    samples = [retrying.delay(2) for _ in range(4000)]  # uniform on [0, 0.2]
    assert max(samples) <= 0.2 and min(samples) < 0.01 and max(samples) > 0.19
    assert 0.09 < sum(samples) / len(samples) < 0.11
    assert len(set(samples)) > 3900  # jittered, not a fixed schedule
    assert max(retrying.delay(500) for _ in range(100)) <= 0.3  # huge attempt numbers stay capped


def test_real_sleeps_total_stays_bounded() -> None:
    faulty = FaultyBackend(MemoryBackend())
    faulty.fail("get")
    retrying = RetryingBackend(faulty, attempts=6, base_delay=1.0, max_delay=0.02)

    async def main() -> float:
        start = time.monotonic()
        with pytest.raises(BackendUnavailable):
            await retrying.get(oname(1))
        return time.monotonic() - start

    # 5 pauses of at most 20 ms each, plus slack for a busy machine; uncapped they would average 15 s
    assert asyncio.run(main()) < 3


def test_cancellation_interrupts_the_backoff() -> None:
    faulty = FaultyBackend(MemoryBackend())
    faulty.fail("get")
    retrying = RetryingBackend(faulty, attempts=6, base_delay=30, max_delay=30)

    async def main() -> float:
        start = time.monotonic()
        task = asyncio.create_task(retrying.get(oname(1)))
        while faulty.calls["get"] == 0 or faulty.active:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.02)  # now inside a backoff of up to 30 s (or retried after a tiny one)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - start

    assert asyncio.run(main()) < 1.0
    assert faulty.calls["get"] <= 2


def test_cancellation_of_a_hung_call() -> None:
    faulty = FaultyBackend(MemoryBackend())
    faulty.hang("head", nth=1)
    retrying = RetryingBackend(faulty)

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(retrying.head(oname(1)), 0.05)
        assert faulty.active == 0
        with pytest.raises(NotFound):  # the next call answers
            await retrying.head(oname(1))

    asyncio.run(main())
    assert faulty.calls["head"] == 2


@pytest.mark.parametrize("kind", ["memory", "local"])
def test_lost_response_then_retry_stores_once(kind: str, tmp_path: Path) -> None:
    inner: Backend = MemoryBackend() if kind == "memory" else LocalBackend(tmp_path, create=True)
    faulty = FaultyBackend(inner)
    faulty.lose_response("put_if_absent", nth=1)
    retrying = RetryingBackend(faulty, base_delay=0.0)

    async def main() -> None:
        # the first attempt created the object but its answer was lost: the retry finds it
        assert await retrying.put_if_absent(cname(1), b"commit one") is False
        assert await inner.get(cname(1)) == b"commit one"
        assert [n async for n in inner.list()] == [cname(1)]
        # without the retry wrapper the caller sees the loss
        faulty.lose_response("put_if_absent", nth=4)
        assert await faulty.put_if_absent(cname(2), b"two") is True  # call 3: normal
        with pytest.raises(BackendUnavailable):
            await faulty.put_if_absent(oname(3), b"three")  # call 4: lost
        assert await inner.get(oname(3)) == b"three"

    asyncio.run(main())
    assert faulty.calls["put_if_absent"] == 4
    if kind == "local":
        assert not list(tmp_path.rglob(".tmp-*"))


def test_listing_restarts_without_duplicates() -> None:
    faulty, retrying, _ = stack()

    async def main() -> None:
        for g in range(5):
            await faulty.inner.put_if_absent(cname(g), b"c")
        faulty.fail("list", nth=1)
        assert sorted([n async for n in retrying.list("c/")]) == [cname(g) for g in range(5)]

    asyncio.run(main())
    assert faulty.calls["list"] == 2


def test_limiter_caps_concurrency() -> None:
    async def peak(limit: int | None) -> int:
        faulty = FaultyBackend(MemoryBackend())
        faulty.delay("*", 0.01)
        backend: Backend = faulty if limit is None else LimitedBackend(faulty, limit)
        puts = [backend.put_if_absent(oname(i), b"x") for i in range(30)]
        heads = [backend.head(oname(i)) for i in range(30, 40)]
        results = await asyncio.gather(*puts, *heads, return_exceptions=True)
        assert results[:30] == [True] * 30
        assert all(isinstance(r, NotFound) for r in results[30:])
        return faulty.peak

    assert asyncio.run(peak(None)) == 40  # the measure works: unlimited, everything overlaps
    assert asyncio.run(peak(3)) == 3
    assert asyncio.run(peak(1)) == 1


def test_limiter_frees_the_slot_of_a_cancelled_call() -> None:
    faulty = FaultyBackend(MemoryBackend())
    faulty.hang("get", nth=1)
    limited = LimitedBackend(faulty, 1)

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(limited.get(oname(1)), 0.05)
        assert await asyncio.wait_for(limited.put_if_absent(oname(1), b"x"), 1) is True
        assert await asyncio.wait_for(limited.get(oname(1)), 1) == b"x"

    asyncio.run(main())


def test_faulty_rules_and_counters() -> None:
    faulty = FaultyBackend(MemoryBackend())
    faulty.fail("get", NotFound("injected"), every=3)
    faulty.delay("head", 30, nth=2)

    async def main() -> None:
        await faulty.put_if_absent(oname(0), b"zero")
        outcomes: list[bytes | None] = []
        for _ in range(7):
            try:
                outcomes.append(await faulty.get(oname(0)))
            except NotFound:
                outcomes.append(None)
        assert outcomes == [b"zero", b"zero", None, b"zero", b"zero", None, b"zero"]
        # no clock: a busy machine can stall any call for a while, but not for the 30 s delay
        first = asyncio.create_task(faulty.head(oname(0)))
        for _ in range(5):
            await asyncio.sleep(0)
        assert first.done() and first.result() == 4  # the first call is not delayed
        second = asyncio.create_task(faulty.head(oname(0)))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not second.done()  # the second one waits out its delay
        second.cancel()
        faulty.clear()
        assert await faulty.get(oname(0)) == b"zero"  # call 9 would have failed

    asyncio.run(main())
    assert faulty.calls == {"put_if_absent": 1, "get": 8, "head": 2}
    assert "faulty(" in faulty.description


def test_wrappers_reject_bad_settings() -> None:
    with pytest.raises(UsageError):
        RetryingBackend(MemoryBackend(), attempts=0)
    with pytest.raises(UsageError):
        LimitedBackend(MemoryBackend(), 0)
