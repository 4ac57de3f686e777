"""The mixer on every executor: Sealer-identical objects, opening, bounds, cancellation, worker death."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from actortools import run_pipeline

from sigmavault.actors.mailbox import ReceiveChannel, SendChannel, open_channel
from sigmavault.actors.mixer import Mixer, MixerError, Sealed
from sigmavault.actors.stage import Stage
from sigmavault.engine.errors import IntegrityError
from sigmavault.engine.format.envelope import Sealer, object_len
from sigmavault.engine.keys.schedule import KIND_CHUNK, KIND_COMMIT, KIND_DATA_PACK, KIND_PAGE_PACK, EpochKeys

CHUNK = 64 * 1024
KINDS = ["process", "thread", "inline"]
NAME = "o/" + "3c" * 32
SHM = Path("/dev/shm")


@pytest.fixture(scope="module")
def keys() -> EpochKeys:
    return EpochKeys.derive(os.urandom(32), os.urandom(16), 7, "blake3-keyed-256")


def run(coro: Any, timeout: float = 30) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("kind", KINDS)
def test_objects_are_byte_identical_to_sealer_and_open_both_ways(kind: Any, keys: EpochKeys) -> None:
    sealer = Sealer(keys, CHUNK)
    sizes = [0, 1, 1000, 5000, 16384 - 8, 16384, CHUNK - 1, CHUNK]

    async def main() -> None:
        async with Mixer.for_epoch(keys, CHUNK, kind=kind, workers=2, slots=3) as mx:
            assert mx.slot_size == object_len(CHUNK, CHUNK, 4096)
            for obj_kind in (KIND_CHUNK, KIND_PAGE_PACK, KIND_DATA_PACK):
                for n in sizes:
                    stored = os.urandom(n)
                    salt = os.urandom(24)
                    with await mx.seal(obj_kind, NAME, stored, salt=salt) as sealed:
                        obj = bytes(sealed.view)
                    assert obj == sealer.seal(obj_kind, NAME, stored, salt=salt)
                    assert bytes(sealer.open(obj_kind, NAME, obj)) == stored
                    assert await mx.open(obj_kind, NAME, obj) == stored
                    assert await mx.open(obj_kind, NAME, bytearray(obj), expected_len=len(obj)) == stored
            assert mx.in_flight == 0

    run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_fresh_salt_per_object_and_sealer_objects_open_in_the_mixer(kind: Any, keys: EpochKeys) -> None:
    sealer = Sealer(keys, CHUNK)

    async def main() -> None:
        async with Mixer.for_epoch(keys, CHUNK, kind=kind) as mx:
            stored = os.urandom(CHUNK)
            a = (await mx.seal(KIND_CHUNK, NAME, stored)).take()
            b = (await mx.seal(KIND_CHUNK, NAME, memoryview(stored))).take()
            assert a != b and len(a) == len(b) == mx.slot_size
            assert bytes(sealer.open(KIND_CHUNK, NAME, a)) == stored
            theirs = sealer.seal(KIND_DATA_PACK, NAME, b"small blob")
            with await mx.open_view(KIND_DATA_PACK, NAME, theirs) as view:
                assert bytes(view.view) == b"small blob"

    run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_anything_wrong_is_the_one_integrity_error(kind: Any, keys: EpochKeys) -> None:
    other_epoch = Sealer(EpochKeys.derive(os.urandom(32), keys.vault_id, 8, "blake3-keyed-256"), CHUNK)

    async def main() -> None:
        async with Mixer.for_epoch(keys, CHUNK, kind=kind) as mx:
            obj = (await mx.seal(KIND_DATA_PACK, NAME, b"x" * 3000)).take()
            flipped = bytearray(obj)
            flipped[len(obj) // 2] ^= 1
            cases = [
                (KIND_DATA_PACK, NAME, bytes(flipped)),
                (KIND_DATA_PACK, NAME, obj[:-1]),
                (KIND_DATA_PACK, "o/" + "00" * 32, obj),  # another name
                (KIND_PAGE_PACK, NAME, obj),  # another kind (and key)
                (KIND_CHUNK, NAME, obj),  # same key, another kind in the context
                (KIND_DATA_PACK, NAME, obj[:5]),
                (KIND_DATA_PACK, NAME, b""),
                (KIND_DATA_PACK, NAME, other_epoch.seal(KIND_DATA_PACK, NAME, b"x" * 3000)),
                (KIND_DATA_PACK, NAME, bytes(mx.slot_size + 1)),
            ]
            for k, name, data in cases:
                with pytest.raises(IntegrityError) as info:
                    await mx.open(k, name, data)
                assert str(info.value) == IntegrityError.GENERIC
            with pytest.raises(IntegrityError):
                await mx.open(KIND_DATA_PACK, NAME, obj, expected_len=len(obj) + 1)
            assert await mx.open(KIND_DATA_PACK, NAME, obj) == b"x" * 3000  # still healthy
            assert mx.in_flight == 0
            with pytest.raises(ValueError):
                await mx.seal(KIND_COMMIT, NAME, b"")  # commits are not the mixer's
            with pytest.raises(ValueError):
                await mx.seal(KIND_CHUNK, NAME, bytes(CHUNK + 1))

    run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_many_concurrent_seals_through_a_pipeline_stay_within_the_slots(kind: Any, keys: EpochKeys) -> None:
    sealer = Sealer(keys, CHUNK)
    count = 120
    inputs = {i: os.urandom((i * 7919) % CHUNK + 1) for i in range(count)}
    peak = 0

    async def main() -> int:
        async with Mixer.for_epoch(keys, CHUNK, kind=kind, workers=2, slots=4) as mx:

            async def produce(inbox: ReceiveChannel[Any], outbox: SendChannel[int]) -> None:
                for i in range(count):
                    await outbox.send(i)

            async def mix(inbox: ReceiveChannel[int], outbox: SendChannel[tuple[int, Sealed]]) -> None:
                nonlocal peak
                async for i in inbox:
                    sealed = await mx.seal(KIND_DATA_PACK, f"o/{i:064x}", inputs[i])
                    peak = max(peak, mx.in_flight)
                    await outbox.send((i, sealed))

            async def write(inbox: ReceiveChannel[tuple[int, Sealed]], outbox: SendChannel[Any]) -> None:
                seen = 0
                async for i, sealed in inbox:
                    with sealed:  # the writer releases the slot once the object is "uploaded"
                        assert bytes(sealer.open(KIND_DATA_PACK, f"o/{i:064x}", sealed.view)) == inputs[i]
                    seen += 1
                assert seen == count

            a_tx, a_rx = open_channel(4)
            b_tx, b_rx = open_channel(2)
            await run_pipeline(
                Stage("src", produce, outbox=a_tx),
                Stage("mixer", mix, a_rx, b_tx, concurrency=6),
                Stage("writer", write, b_rx),
            )
            return mx.in_flight

    assert run(main()) == 0
    assert 1 <= peak <= 4


def test_unreleased_results_hold_their_slots_and_block_new_calls(keys: EpochKeys) -> None:
    async def main() -> None:
        async with Mixer.for_epoch(keys, CHUNK, kind="process", workers=1, slots=2) as mx:
            held = [await mx.seal(KIND_CHUNK, NAME, b"a"), await mx.seal(KIND_CHUNK, NAME, b"b")]
            third = asyncio.create_task(mx.seal(KIND_CHUNK, NAME, b"c"))
            await asyncio.sleep(0.1)
            assert not third.done() and mx.in_flight == 2
            held[0].release()
            held[0].release()  # idempotent
            with pytest.raises(ValueError):
                held[0].view  # noqa: B018
            (await asyncio.wait_for(third, 5)).release()
            held[1].release()
            assert mx.in_flight == 0

    run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_cancelled_calls_leak_no_slot(kind: Any, keys: EpochKeys) -> None:
    async def main() -> None:
        async with Mixer.for_epoch(keys, 1 << 20, kind=kind, workers=1, slots=2) as mx:
            big = os.urandom(1 << 20)
            for delay in (0, 0.0005, 0.002, 0.01):  # cancelled while queued, running or just finished
                tasks = [asyncio.create_task(mx.seal(KIND_CHUNK, NAME, big)) for _ in range(4)]
                await asyncio.sleep(delay)
                for t in tasks:
                    t.cancel()
                for t in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        (await t).release()
                for _ in range(200):  # jobs still running give their slot back when they end
                    if mx.in_flight == 0:
                        break
                    await asyncio.sleep(0.01)
                assert mx.in_flight == 0
            assert await mx.open(KIND_CHUNK, NAME, (await mx.seal(KIND_CHUNK, NAME, big)).take()) == big

    run(main())


def test_process_arenas_have_no_dev_shm_name_while_running_or_after(keys: EpochKeys) -> None:
    async def main() -> tuple[list[int], tuple[str, ...]]:
        mx = Mixer.for_epoch(keys, CHUNK, kind="process", workers=2)
        async with mx:
            assert len(mx.segment_names) == 2
            assert not any((SHM / n).exists() for n in mx.segment_names)
            assert len(mx.worker_pids) == 2
            assert (await mx.seal(KIND_CHUNK, NAME, b"z")).take()
        return mx.worker_pids, mx.segment_names

    pids, names = run(main())
    assert all(gone(p) for p in pids)
    assert not any((SHM / n).exists() for n in names)


def test_a_killed_worker_fails_pending_and_later_calls_clearly(keys: EpochKeys) -> None:
    async def main() -> tuple[list[int], tuple[str, ...]]:
        mx = Mixer.for_epoch(keys, 1 << 20, kind="process", workers=2, slots=6)
        async with mx:
            big = os.urandom(1 << 20)

            async def keep_sealing() -> None:
                while True:
                    (await mx.seal(KIND_CHUNK, NAME, big)).release()

            lanes = [asyncio.create_task(keep_sealing()) for _ in range(6)]
            await asyncio.sleep(0.2)
            os.kill(mx.worker_pids[0], signal.SIGKILL)
            done, _ = await asyncio.wait(lanes, timeout=10)
            assert len(done) == 6  # no hang
            for t in lanes:
                with pytest.raises(MixerError, match="died unexpectedly"):
                    t.result()
            with pytest.raises(MixerError, match="killed by signal 9"):
                await mx.seal(KIND_CHUNK, NAME, b"after")
            with pytest.raises(MixerError):
                await mx.open(KIND_CHUNK, NAME, b"x" * 100)
        return mx.worker_pids, mx.segment_names

    pids, names = run(main())
    assert all(gone(p) for p in pids)
    assert not any((SHM / n).exists() for n in names)


def test_a_worker_killed_while_idle_is_noticed_without_a_hang(keys: EpochKeys) -> None:
    async def main() -> None:
        async with Mixer.for_epoch(keys, CHUNK, kind="process", workers=1) as mx:
            os.kill(mx.worker_pids[0], signal.SIGKILL)
            with pytest.raises(MixerError):
                for _ in range(1000):  # the death is noticed as soon as the loop reads the pipe
                    (await mx.seal(KIND_CHUNK, NAME, b"x")).release()
                    await asyncio.sleep(0.001)

    run(main(), timeout=10)


def test_aclose_is_idempotent_cleans_up_when_cancelled_and_refuses_later_calls(keys: EpochKeys) -> None:
    async def main() -> tuple[list[int], tuple[str, ...]]:
        mx = Mixer.for_epoch(keys, CHUNK, kind="process", workers=2)
        await mx.start()
        held = await mx.seal(KIND_CHUNK, NAME, b"kept")  # a view still held while closing
        closing = asyncio.create_task(mx.aclose())
        await asyncio.sleep(0)
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
        await mx.aclose()
        await mx.aclose()
        with pytest.raises(MixerError, match="closed"):
            await mx.seal(KIND_CHUNK, NAME, b"late")
        held.release()
        return mx.worker_pids, mx.segment_names

    pids, names = run(main())
    assert all(gone(p) for p in pids)
    assert not any((SHM / n).exists() for n in names)


@pytest.mark.parametrize("kind", KINDS)
def test_waiters_for_a_slot_fail_when_the_mixer_closes(kind: Any, keys: EpochKeys) -> None:
    async def main() -> None:
        mx = Mixer.for_epoch(keys, CHUNK, kind=kind, workers=1, slots=1)
        await mx.start()
        held = await mx.seal(KIND_CHUNK, NAME, b"one")
        waiting = asyncio.create_task(mx.seal(KIND_CHUNK, NAME, b"two"))
        await asyncio.sleep(0.01)
        await mx.aclose()
        with pytest.raises(MixerError):
            await waiting
        held.release()

    run(main())


def test_no_key_material_in_reprs(keys: EpochKeys) -> None:
    async def main() -> str:
        async with Mixer.for_epoch(keys, CHUNK, kind="inline") as mx:
            return repr(mx) + repr(mx._crypto) + str(vars(type(mx)))

    text = run(main())
    for secret in (keys.data_enc.reveal(), keys.page_enc.reveal()):
        assert secret.hex() not in text and repr(secret) not in text
