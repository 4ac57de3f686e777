"""The private loop thread: usable inside a running loop, one per vault, gone after close, never deadlocking."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from synctools import PASS, new_sync_vault, reopen_sync, threads

import sigmavault.sync
from sigmavault import AuthError, NotFound, UsageError
from sigmavault._syncloop import LoopThread


async def test_the_blocking_api_works_inside_a_running_event_loop(tmp_path: Path) -> None:
    """As in Jupyter: the caller's thread runs a loop; the engine runs on its own."""
    mine = asyncio.get_running_loop()
    with new_sync_vault(tmp_path / "v") as v:
        v.put("a.txt", b"from a coroutine")
        assert v.commit() == 1
        assert v.read_bytes("a.txt") == b"from a coroutine"
        assert v.read_files(["a.txt", "/a.txt"]) == [b"from a coroutine"] * 2
        assert [p for p, _ in v.walk()] == ["/a.txt"]
        with v.open("a.txt") as f:
            assert f.read(4) == b"from"
        assert v._lt.thread is not threading.current_thread()
    assert asyncio.get_running_loop() is mine and not mine.is_closed()
    with reopen_sync(tmp_path / "v") as again, pytest.raises(NotFound):
        again.stat("missing")


def test_two_sync_vaults_at_once_each_with_its_own_thread(tmp_path: Path) -> None:
    before = threads()
    a = new_sync_vault(tmp_path / "a")
    b = new_sync_vault(tmp_path / "b")
    try:
        assert a._lt.thread is not b._lt.thread and a._lt.thread.daemon and b._lt.thread.daemon
        a.put("f", b"in a")
        b.put("f", b"in b")
        a.commit()
        b.commit()
        # interleaved streams from the two vaults
        pa, pb = a.walk(), b.walk()
        assert (next(pa)[0], next(pb)[0]) == ("/f", "/f")
        assert a.read_bytes("f") == b"in a" and b.read_bytes("f") == b"in b"
        a.close()
        assert b.read_bytes("f") == b"in b"  # closing one leaves the other running
    finally:
        a.close()
        b.close()
    assert threads() <= before


def test_close_is_idempotent_and_no_thread_is_left(tmp_path: Path) -> None:
    before = threads()
    v = new_sync_vault(tmp_path / "v")
    v.put("big", b"x" * (3 << 20))  # starts the mixer, the executor's threads, the cache's thread
    with v.open("big") as f:
        f.read(10)
    unfinished = v.walk()
    next(unfinished)  # an iterator left half-way is cleaned up by close
    started = threads() - before
    assert any(t.name == "sigmavault-sync" for t in started)
    v.close()
    v.close()
    assert v.closed and "closed" in repr(v)
    assert threads() <= before, threads() - before
    with pytest.raises(UsageError, match="closed"):
        v.put("later", b"x")
    with pytest.raises(UsageError, match="closed"):
        next(unfinished)
    with v:  # ``with`` on a closed vault does nothing more
        pass


def test_a_failed_open_leaves_no_thread(tmp_path: Path) -> None:
    new_sync_vault(tmp_path / "v").close()
    before = threads()
    with pytest.raises(AuthError):
        sigmavault.sync.open(str(tmp_path / "v"), passphrase="not " + PASS)
    with pytest.raises(UsageError):
        sigmavault.sync.create(str(tmp_path / "v2"), passphrase=PASS, kdf="no-such-profile")
    assert threads() <= before


def test_a_call_from_the_vaults_own_loop_thread_raises_instead_of_deadlocking(tmp_path: Path) -> None:
    seen: list[BaseException] = []
    v = new_sync_vault(tmp_path / "v")

    async def inside() -> None:  # runs on the vault's private loop, as a callback of it would
        for call in (lambda: v.stat("/"), v.close, lambda: list(v.walk())):
            try:
                call()
            except UsageError as exc:
                seen.append(exc)

    fut = asyncio.run_coroutine_threadsafe(inside(), v._lt._loop)
    try:
        fut.result(timeout=30)
    except TimeoutError:  # the loop waits for itself: leave it (closing would hang too)
        pytest.fail("a blocking call from the vault's own loop thread deadlocked")
    try:
        assert len(seen) == 3 and all("own event loop thread" in str(e) for e in seen)
        assert v.stat("/").type == "dir"  # still usable from outside
    finally:
        v.close()


def test_many_threads_share_one_sync_vault(tmp_path: Path) -> None:
    with new_sync_vault(tmp_path / "v") as v:
        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                v.put(f"t/{i}.txt", str(i).encode() * 100)
                assert v.read_bytes(f"t/{i}.txt") == str(i).encode() * 100
            except BaseException as exc:  # reported below
                errors.append(exc)

        workers = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        assert not errors and len(v.ls("t")) == 8


def test_loop_thread_runs_and_stops_on_its_own() -> None:
    before = threads()
    lt = LoopThread()

    async def boom() -> None:
        raise NotFound("as is")

    async def forever() -> None:
        await asyncio.Event().wait()

    with pytest.raises(NotFound, match="as is"):
        lt.run(boom())
    pending = asyncio.run_coroutine_threadsafe(forever(), lt._loop)
    lt.stop()
    assert pending.cancelled() and threads() <= before
    coro = boom()
    with pytest.raises(UsageError, match="closed"):
        lt.run(coro)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED  # closed, not left "never awaited"


def test_a_script_that_never_closes_its_vault_still_exits_cleanly(tmp_path: Path) -> None:
    new_sync_vault(tmp_path / "v").close()
    code = (f"import sigmavault.sync\nv = sigmavault.sync.open({str(tmp_path / 'v')!r}, passphrase={PASS!r})\n"
            "v.put('f', b'x')\nf = v.open('f')\nprint(f.read(1))\n")  # no close, no commit
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == "b'x'\n" and done.stderr == "", done.stderr
    with reopen_sync(tmp_path / "v") as v:
        assert v.generation == 0 and v.ls() == []  # exiting released the vault without committing
