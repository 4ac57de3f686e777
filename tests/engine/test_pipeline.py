"""The write pipeline under failure: a stage that raises, a backend that hangs, backpressure, kill -9."""

from __future__ import annotations

import asyncio
import gc
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from vaulttools import MIB, PASS, new_vault, reopen

from sigmavault import BackendUnavailable, LocalIOError
from sigmavault.backends.faulty import FaultyBackend
from sigmavault.engine.catalog.tree import Meta
from sigmavault.engine.content.pipeline import PACKS_OUT

ROOT = Path(__file__).resolve().parents[2]


def _tasks() -> set[asyncio.Task[object]]:
    """Tasks alive now but this one and the vault's writer lease heartbeat (it lives from the first
    write until the commit or close, by design: a prune must see the writer; see engine/repo/leases.py)."""
    return {t for t in asyncio.all_tasks()
            if t is not asyncio.current_task() and "Heartbeat._heartbeat" not in t.get_coro().__qualname__}


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_failing_upload_stops_every_stage_with_one_error(tmp_path: Path) -> None:
    v = await new_vault(tmp_path / "v")
    try:
        faulty = FaultyBackend(v._backend)
        faulty.fail("put_if_absent", BackendUnavailable("injected outage"), nth=3)
        v._backend = faulty
        before = _tasks()
        with pytest.raises(BackendUnavailable, match="injected outage"):
            async with v.ingest() as ing:
                for i in range(6):
                    await ing.add([f"f{i}".encode()], os.urandom(2 * MIB), Meta.now(0o644))
        assert _tasks() <= before  # no stage task outlives the pipeline
        assert v.generation == 0
    finally:
        await v.aclose()
    async with await reopen(tmp_path / "v") as again:  # nothing was committed, the vault opens
        assert await again.ls("/") == []


async def test_a_source_that_fails_midway_aborts_cleanly(tmp_path: Path) -> None:
    async def broken():  # type: ignore[no-untyped-def]
        yield os.urandom(MIB)
        yield os.urandom(MIB)
        raise LocalIOError("source vanished")

    async with await new_vault(tmp_path / "v") as v:
        await v.put("good", b"g" * 5000)
        with pytest.raises(LocalIOError, match="source vanished"):
            await v.put("bad", broken())
        assert [s.name for s in await v.ls("/")] == ["good"]


async def test_a_backend_that_never_answers_is_cancelled_without_leaks(tmp_path: Path) -> None:
    v = await new_vault(tmp_path / "v")
    try:
        faulty = FaultyBackend(v._backend)
        faulty.hang("put_if_absent")
        v._backend = faulty
        await v.mixer()
        before_tasks, before_fds = _tasks(), _open_fds()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.0):
                await v.put("big", os.urandom(4 * MIB))
        gc.collect()
        assert _tasks() <= before_tasks
        assert _open_fds() <= before_fds
        assert v._mixer is not None and v._mixer.in_flight == 0  # every mixer slot came back
    finally:
        await v.aclose()


async def test_a_consumer_that_stops_reading_early_leaves_nothing_running(tmp_path: Path) -> None:
    async with await new_vault(tmp_path / "v") as v:
        await v.put("big", os.urandom(8 * MIB))
        await v.commit()
        before = _tasks()
        reader = v.open_read("big")
        first = await reader.__anext__()
        assert len(first) == MIB
        await reader.aclose()
        assert _tasks() <= before


async def test_slow_backend_backpressure_keeps_memory_bounded(tmp_path: Path) -> None:
    v = await new_vault(tmp_path / "v")
    try:
        faulty = FaultyBackend(v._backend)
        faulty.delay("put_if_absent", 0.02)
        v._backend = faulty
        read = 0

        async def source():  # type: ignore[no-untyped-def]
            nonlocal read
            for _ in range(64):
                read += MIB
                yield os.urandom(MIB)

        task = asyncio.ensure_future(v.put("slow", source()))
        await asyncio.sleep(0.15)
        # the source is only read as fast as the slow backend drains: far less than 64 MiB ahead
        assert read < 40 * MIB
        await task
        assert faulty.peak <= 8  # uploads in flight stay within the configured concurrency
    finally:
        await v.aclose()


IMPORTER = textwrap.dedent(
    """
    import asyncio, os, sys
    import sigmavault

    async def main(url, src):
        async with await sigmavault.open(url, passphrase=os.environ["PASS"]) as v:
            async with v.ingest() as ing:
                for name in sorted(os.listdir(src)):
                    st = os.stat(os.path.join(src, name))
                    from sigmavault.engine.catalog.tree import Meta
                    await ing.add([b"tree", name.encode()], os.path.join(src, name),
                                  Meta(st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_ctime_ns))
            await v.commit()
        print("done", flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_kill_9_at_a_random_point_then_rerun_completes(tmp_path: Path, isolated_home: Path, seed: int) -> None:
    rng = random.Random(seed)
    src = tmp_path / "src"
    src.mkdir()
    files = {f"f{i:02}": os.urandom(rng.choice([100, 5000, MIB + 7, 3 * MIB])) for i in range(16)}
    for name, data in files.items():
        (src / name).write_bytes(data)
    url = tmp_path / "v"
    async with await new_vault(url) as v:
        await v.put("committed-before", b"safe")
    env = {**os.environ, "PASS": PASS, "SIGMAVAULT_HOME": str(isolated_home), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", IMPORTER, str(url), str(src)], env=env, stdout=subprocess.PIPE)
    time.sleep(rng.uniform(0.3, 1.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    async with await reopen(url) as v:
        assert await v.read_bytes("committed-before") == b"safe"
        report = await v.verify(full=True)
        assert report.ok, report.problems
    out = subprocess.run([sys.executable, "-c", IMPORTER, str(url), str(src)], env=env, capture_output=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    async with await reopen(url) as v:
        for name, data in files.items():
            assert await v.read_bytes(f"tree/{name}") == data
        assert (await v.verify(full=True)).ok


async def test_settled_pieces_skip_the_mixer_and_closed_packs_wait_for_the_store(tmp_path: Path) -> None:
    """Small files go from the coordinate stage straight to the collector (only closed packs are
    sealed and uploaded), and while the store holds the uploads the coordinate stage stops after
    closing a bounded number of packs instead of closing pack after pack in memory."""
    v = await new_vault(tmp_path / "v")
    try:
        faulty = FaultyBackend(v._backend)
        release = asyncio.Event()
        held = asyncio.Event()

        async def gate(name: str) -> None:
            held.set()
            await release.wait()

        faulty.hold("put_if_absent", gate)
        v._backend = faulty
        blobs = [os.urandom(9000) for _ in range(2000)]  # ~18 MB of pack members: 4 or more packs
        async with v.ingest() as ing:

            async def feed() -> None:
                for i, data in enumerate(blobs):
                    await ing.add([f"f{i:04}".encode()], data, Meta.now(0o644))

            feeding = asyncio.ensure_future(feed())
            await held.wait()
            while not ing._pack_waiters:  # the coordinate stage parks once too many packs are out
                await asyncio.sleep(0)
            for _ in range(200):  # let everything else run that can: the bound holds whatever ran
                await asyncio.sleep(0)
            assert PACKS_OUT < ing._packs_out <= PACKS_OUT + 2  # each of the two coordinate copies closed one
            assert not feeding.done()
            release.set()
            await feeding
        stats = {s.name: s for s in ing.stats()}
        packs = stats["writer"].items_in
        assert 4 <= packs < 40  # closed packs only (2,000 files): no file's piece went through the mixer or the writer
        assert stats["mixer"].items_in == packs and stats["collector"].items_in == packs + len(blobs)
        for i in (0, 999, 1999):
            assert await v.read_bytes(f"f{i:04}") == blobs[i]
    finally:
        await v.aclose()
