"""The dispersed backend (k-of-n over places): conformance, degraded reads, bad shards, races."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from conformance import BackendConformance, cname, oname, payload
from dispersal import KEYS, dispersed, reopen

from sigmavault.backends.base import Backend
from sigmavault.backends.dispersed import DispersedBackend
from sigmavault.backends.faulty import FaultyBackend
from sigmavault.backends.memory import MemoryBackend
from sigmavault.backends.retrying import RetryingBackend
from sigmavault.engine.errors import BackendUnavailable, IntegrityError, NotFound, UsageError


class TestDispersedConformance(BackendConformance):
    """2-of-3 over memory places: the suite unchanged."""

    async def make_backend(self) -> Backend:
        return await dispersed([MemoryBackend() for _ in range(3)])


class TestDispersedFlakyPlacesConformance(BackendConformance):
    """Every place fails every 3rd call underneath its retrying wrapper."""

    racers = 50

    async def make_backend(self) -> Backend:
        places = []
        for _ in range(3):
            faulty = FaultyBackend(MemoryBackend())
            faulty.fail("*", every=3)
            places.append(RetryingBackend(faulty, attempts=12, base_delay=0.0))
        return await dispersed(places)


class TestDispersedDeadPlaceConformance(BackendConformance):
    """2-of-3 with the third place dead for the whole test (after its id record was written).

    One racer: with a place unreachable, writers racing one commit may split undecided, which the
    model requires to be a clean BackendUnavailable (tested below), not a winner.
    """

    racers = 1

    async def make_backend(self) -> Backend:
        dead = FaultyBackend(MemoryBackend())
        backend = await dispersed([MemoryBackend(), MemoryBackend(), dead])
        dead.fail("*", every=1)
        return backend


class TestDispersed3of5Conformance(BackendConformance):
    racers = 50

    async def make_backend(self) -> Backend:
        return await dispersed([MemoryBackend() for _ in range(5)], needed=3)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


FULL = 4_198_486  # a full-chunk object with 4 MiB chunks


def stores(n: int = 3) -> list[MemoryBackend]:
    return [MemoryBackend() for _ in range(n)]


def shard_names(place: MemoryBackend) -> list[str]:
    return sorted(n for n in place._objects if n.startswith("o/"))  # type: ignore[attr-defined]


def test_full_chunk_shards_have_one_size_and_unlinkable_names() -> None:
    places = stores()

    async def main() -> None:
        b = await dispersed(places)
        for i in range(4):
            assert await b.put_if_absent(oname(i), payload(i, FULL)) is True
        sizes = {len(p._objects[s]) for p in places for s in shard_names(p)}  # type: ignore[attr-defined]
        assert sizes == {28 + FULL // 2 + 32}
        all_names = [set(shard_names(p)) for p in places]
        for names in all_names:
            assert len(names) == 4 and not names & {oname(i) for i in range(4)}
        assert not (all_names[0] & all_names[1]) and not (all_names[1] & all_names[2])
        assert sorted([n async for n in b.list("o/")]) == sorted(oname(i) for i in range(4))
        await b.aclose()

    run(main())


def test_coding_does_not_queue_behind_the_loops_busy_threads() -> None:
    """Places' blocking writes (fsync) fill the loop's default executor; shard coding has its own threads."""
    places = stores()

    async def main() -> None:
        b = await dispersed(places)
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(1))
        release = threading.Event()
        busy = loop.run_in_executor(None, release.wait)  # the only default thread, held until the end
        try:
            data = payload("busy", FULL)
            assert await asyncio.wait_for(b.put_if_absent(oname("busy"), data), 60) is True
            r = await reopen(places, 3)
            assert await asyncio.wait_for(r.get(oname("busy")), 60) == data  # parse and decode, too
            assert not busy.done()
            await r.aclose()
        finally:
            release.set()
            await busy
        await b.aclose()

    run(main())


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_a_put_keeps_nothing_of_the_callers_buffer(kind: type) -> None:
    places = stores()

    async def main() -> None:
        b = await dispersed(places)
        buffer = bytearray(payload("buf", 300_000))
        original = bytes(buffer)
        assert await b.put_if_absent(oname("buf"), kind(buffer)) is True
        buffer[:] = bytes(len(buffer))  # the caller reuses its buffer
        assert await b.get(oname("buf")) == original
        await b.aclose()
        r = await reopen(places, 3)
        assert await r.get(oname("buf")) == original
        await r.aclose()

    run(main())


@pytest.mark.parametrize("lost", [0, 1, 2])
def test_reads_survive_a_lost_place_in_any_order(lost: int) -> None:
    places = stores()

    async def main() -> None:
        b = await dispersed(places)
        data = payload("x", 100_000)
        await b.put_if_absent(oname("x"), data)
        await b.put_if_absent(cname(1), b"commit one")
        await b.aclose()
        gone = [p for i, p in enumerate(places) if i != lost]
        gone[0], gone[1] = gone[1], gone[0]  # named in another order, one missing
        r = await reopen(gone, 3)
        assert await r.get(oname("x")) == data
        assert await r.get(oname("x"), 500, 900) == data[500:900]
        assert await r.get(cname(1)) == b"commit one"
        assert any("not given" in d for d in r.degraded())
        await r.aclose()

    run(main())


@pytest.mark.parametrize("damage", ["flip", "truncate", "swap-names", "empty"])
def test_a_bad_shard_is_skipped(damage: str) -> None:
    places = stores()

    async def main() -> None:
        b = await dispersed(places)
        a, c = payload("a", 50_000), payload("c", 50_000)
        await b.put_if_absent(oname("a"), a)
        await b.put_if_absent(oname("c"), c)
        store = places[0]._objects  # type: ignore[attr-defined]
        sa, sc = KEYS.shard_name(oname("a"), 0), KEYS.shard_name(oname("c"), 0)
        if damage == "flip":
            raw = bytearray(store[sa])
            raw[100] ^= 1
            store[sa] = bytes(raw)
        elif damage == "truncate":
            store[sa] = store[sa][:-1]
        elif damage == "swap-names":
            store[sa], store[sc] = store[sc], store[sa]
        else:
            store[sa] = b""
        r = await reopen(places, 3)
        r.slots[0].latency = 0.0  # type: ignore[union-attr]
        assert await r.get(oname("a")) == a
        assert any("corrupt" in d for d in r.degraded())
        await r.aclose()

    run(main())


def test_shards_swapped_between_places_are_refused() -> None:
    places = stores()

    async def main() -> None:
        b = await dispersed(places)
        a = payload("a", 50_000)
        await b.put_if_absent(oname("a"), a)
        s0, s1 = KEYS.shard_name(oname("a"), 0), KEYS.shard_name(oname("a"), 1)
        o0, o1 = places[0]._objects, places[1]._objects  # type: ignore[attr-defined]
        o0[s0], o1[s1] = o1.pop(s1), o0.pop(s0)  # each place now holds the other's shard (tags valid)
        r = await reopen(places, 3)
        with pytest.raises(IntegrityError):
            await r.get(oname("a"))  # only one good shard (place 3) is left: never wrong bytes
        await r.aclose()

    run(main())


def test_two_of_three_down_is_a_clean_error_and_writes_nothing_decided() -> None:
    places = stores()
    down = [FaultyBackend(places[1]), FaultyBackend(places[2])]

    async def main() -> None:
        b = await dispersed([places[0], *down])
        for f in down:
            f.fail("*", every=1)
        with pytest.raises(BackendUnavailable, match="place"):
            await b.put_if_absent(oname("new"), payload("n", 1000))
        with pytest.raises(BackendUnavailable, match="undecided"):
            await b.put_if_absent(cname(1), b"commit")
        for f in down:
            f.clear()
        r = await reopen([places[0], places[1], places[2]], 3)
        with pytest.raises(NotFound):
            await r.get(cname(1))  # one copy of three: no majority, nothing committed
        with pytest.raises(NotFound):
            await r.get(oname("new"))
        await r.aclose()

    run(main())


def test_racing_commits_with_a_place_down_are_undecided_not_guessed() -> None:
    places = stores()

    async def main() -> None:
        dead = FaultyBackend(places[2])
        b = await dispersed([places[0], places[1], dead])
        dead.fail("*", every=1)
        await places[0].put_if_absent(cname(5), b"writer A")  # A reached place 1 only
        with pytest.raises(BackendUnavailable, match="undecided"):
            await b.put_if_absent(cname(5), b"writer B")  # B holds place 2: a 1-1 split, place 3 silent
        dead.clear()
        r = await reopen(places, 3)
        assert await r.put_if_absent(cname(5), b"writer C") is False  # place 3 answers: a full split
        winner = min([b"writer A", b"writer B", b"writer C"], key=lambda c: __import__("hashlib").sha256(c).digest())
        assert await r.get(cname(5)) == winner
        await r.aclose()

    run(main())


def test_two_writers_race_one_commit_exactly_one_wins() -> None:
    places = stores()

    async def main() -> None:
        b1 = await dispersed(places)
        b2 = await reopen(list(reversed(places)), 3)
        won = await asyncio.gather(b1.put_if_absent(cname(9), b"one"), b2.put_if_absent(cname(9), b"two"))
        assert sorted(won) == [False, True]
        assert await b1.get(cname(9)) == await b2.get(cname(9)) == (b"one" if won[0] else b"two")
        await b1.aclose()
        await b2.aclose()

    run(main())


def test_layout_errors() -> None:
    with pytest.raises(UsageError):
        DispersedBackend([MemoryBackend()], 2)
    with pytest.raises(UsageError):
        DispersedBackend(stores(3), 2, write_quorum=1)
    places = stores()

    async def main() -> None:
        b = await dispersed(places)
        await b.aclose()
        copy = places[0]._objects["l/dispersal-place"]  # type: ignore[attr-defined]
        places[1]._objects["l/dispersal-place"] = copy  # type: ignore[attr-defined]
        with pytest.raises(IntegrityError, match="same place"):
            await reopen(places, 3)

    run(main())


def test_repair_rebuilds_a_lost_place_and_bad_shards_and_is_idempotent() -> None:
    from sigmavault.backends.dispersed.repair import repair, status

    places = stores()

    async def main() -> None:
        b = await dispersed(places)
        objects = {oname(i): payload(i, 30_000 + i) for i in range(6)}
        for name, data in objects.items():
            await b.put_if_absent(name, data)
        await b.put_if_absent(cname(0), b"c0")
        await b.put_if_absent("k/" + "0" * 15 + "1", b"k1")
        await b.aclose()
        places[2]._objects.clear()  # type: ignore[attr-defined]  # the third place lost outright
        r = await reopen(list(reversed(places)), 3)
        before = {s.place: s for s in await status(r)}
        assert [s.shards_missing for s in before.values()].count(6) == 1
        seen: list[tuple[int, int]] = []
        report = await repair(r, lambda done, total: seen.append((done, total)))
        assert report.objects == 6 and report.shards_written == 6 and report.shards_replaced == 0
        assert report.records_copied == 3 and not report.unrecoverable  # place record, c/0, k/1
        assert seen[-1] == (8, 8)
        again = await repair(r)
        assert again.clean, again
        store0 = places[0]._objects  # type: ignore[attr-defined]
        flip = KEYS.shard_name(oname(0), 0)
        store0[flip] = store0[flip][:-1] + bytes([store0[flip][-1] ^ 1])  # one corrupt shard on place 1
        other = KEYS.shard_name(oname(1), 0)
        store0[other] = store0[other][:100]  # and one truncated
        report = await repair(r)
        assert report.shards_replaced == 2 and report.shards_written == 0
        assert (await repair(r)).clean
        for name, data in objects.items():  # every place alone with any other gives the object back
            for pair in ([places[0], places[1]], [places[1], places[2]], [places[0], places[2]]):
                rr = await reopen(pair, 3)
                assert await rr.get(name) == data
                assert await rr.get(cname(0)) == b"c0"
                await rr.aclose()
        assert all(s.shards_missing == 0 and s.objects == 6 for s in await status(r))
        await r.aclose()

    run(main())


def test_repair_follows_the_model_for_commits() -> None:
    from sigmavault.backends.dispersed.repair import repair

    places = stores()

    async def main() -> None:
        b = await dispersed(places)
        await b.aclose()
        await places[0].put_if_absent(cname(3), b"A")  # a split: A, B, nothing
        await places[1].put_if_absent(cname(3), b"B")
        await places[0].put_if_absent(cname(4), b"X")  # a winner with a loser: X, X, Y
        await places[1].put_if_absent(cname(4), b"X")
        await places[2].put_if_absent(cname(4), b"Y")
        await places[2].put_if_absent("k/" + "0" * 15 + "2", b"old keystore")  # a minority keystore
        r = await reopen(places, 3)
        report = await repair(r)
        low = min([b"A", b"B"], key=lambda c: __import__("hashlib").sha256(c).digest())
        assert await places[2].get(cname(3)) == low  # the empty place gets the lowest hash, create-only
        assert await r.get(cname(3)) == low  # which is now also the majority
        assert await r.get(cname(4)) == b"X"
        with pytest.raises(NotFound):
            await places[2].get(cname(4))  # the loser went: the winner had a majority without it
        with pytest.raises(NotFound):
            await places[0].get("k/" + "0" * 15 + "2")  # never spread
        assert report.records_copied == 1 and report.copies_removed == 1
        await r.aclose()

    run(main())
