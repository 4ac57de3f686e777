"""Several writers, crashes and a lying provider, on real local vaults (and real processes)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from vaulttools import MIB, PASS, new_vault, reopen

from sigmavault import RollbackError

ROOT = Path(__file__).resolve().parents[2]


async def test_two_instances_both_commits_survive_and_conflicts_become_copies(tmp_path: Path) -> None:
    url = tmp_path / "v"
    async with await new_vault(url) as v:
        await v.put("shared.txt", b"base")
        await v.put("docs/readme", b"r")
    a, b = await reopen(url), await reopen(url)
    try:
        await a.put("from-a.txt", b"A" * 3000)
        await b.put("from-b.txt", b"B" * 3000)
        await a.put("shared.txt", b"changed by a")
        await b.put("shared.txt", b"changed by b")
        await b.put("docs/b-note", b"note")
        await a.rm("docs/readme")
        ga = await a.commit()
        gb = await b.commit()  # loses the race for ga, merges, commits the next generation
        assert (ga, gb) == (2, 3)
    finally:
        await a.aclose()
        await b.aclose()
    async with await reopen(url) as v:
        names = [s.name for s in await v.ls("/")]
        assert "from-a.txt" in names and "from-b.txt" in names
        assert await v.read_bytes("shared.txt") == b"changed by a"  # the winner keeps the name
        copies = [n for n in names if n.startswith("shared.txt (conflict ")]
        assert len(copies) == 1
        assert await v.read_bytes(copies[0]) == b"changed by b"
        assert [s.name for s in await v.ls("docs")] == ["b-note"]  # a's delete and b's add both kept
        assert [e.generation for e in await v.log()] == [3, 2, 1, 0]


WRITER = textwrap.dedent(
    """
    import asyncio, os, sys
    import sigmavault

    async def main(url, tag, n):
        async with await sigmavault.open(url, passphrase=os.environ["PASS"]) as v:
            for i in range(n):
                await v.put(f"{tag}/{i}", (tag * 1000).encode() + bytes([i]))
                if i % 5 == 4:
                    await v.commit()

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "PASS": PASS, "SIGMAVAULT_HOME": str(home), "PYTHONPATH": str(ROOT)}


async def test_two_processes_writing_at_once(tmp_path: Path, isolated_home: Path) -> None:
    url = tmp_path / "v"
    async with await new_vault(url):
        pass
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(url), tag, "20"], env=_env(tmp_path / f"home-{tag}"))
        for tag in ("x", "y")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    async with await reopen(url) as v:
        for tag in ("x", "y"):
            assert len(await v.ls(tag)) == 20
            assert await v.read_bytes(f"{tag}/7") == (tag * 1000).encode() + bytes([7])
        assert v.generation == 8  # 4 commits from each process, none lost
        report = await v.verify(full=True)
        assert report.ok, report.problems


CRASHER = textwrap.dedent(
    """
    import asyncio, os, sys, time
    import sigmavault

    async def main(url):
        v = await sigmavault.open(url, passphrase=os.environ["PASS"])
        await v.put("big.bin", sys.argv[2])
        print("uploaded", flush=True)
        time.sleep(60)  # killed here: objects written, commit not
        await v.commit()

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_killed_between_objects_and_commit(tmp_path: Path, isolated_home: Path) -> None:
    url = tmp_path / "v"
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(5 * MIB + 99))
    async with await new_vault(url) as v:
        await v.put("before.txt", b"committed before the crash")
    proc = subprocess.Popen([sys.executable, "-c", CRASHER, str(url), str(src)], env=_env(isolated_home),
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "uploaded"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    async with await reopen(url) as v:
        assert v.generation == 1
        assert [s.name for s in await v.ls("/")] == ["before.txt"]
        await v.put("big.bin", src)  # the re-run completes; chunks already uploaded are found
        await v.commit()
    async with await reopen(url) as v:
        assert await v.read_bytes("big.bin") == src.read_bytes()
        assert (await v.verify(full=True)).ok


async def test_provider_serving_an_older_copy_is_a_rollback(tmp_path: Path) -> None:
    url = tmp_path / "v"
    async with await new_vault(url) as v:
        await v.put("one", b"1")
    shutil.copytree(url, tmp_path / "old")  # the provider keeps a copy at generation 1
    async with await reopen(url) as v:
        await v.put("two", b"2")
        assert await v.commit() == 2
    shutil.rmtree(url)
    shutil.copytree(tmp_path / "old", url)  # ... and later serves it
    with pytest.raises(RollbackError):
        await reopen(url)


async def test_fork_at_the_same_generation_is_refused(tmp_path: Path) -> None:
    url = tmp_path / "v"
    async with await new_vault(url) as v:
        await v.put("one", b"1")
    shutil.copytree(url, tmp_path / "old")
    async with await reopen(url) as v:
        await v.put("two", b"2")
        await v.commit()
    seen = tmp_path / "seen"
    shutil.copytree(url, seen)
    shutil.rmtree(url)
    shutil.copytree(tmp_path / "old", url)
    # another client (own local state) writes a different generation 2 on the stale copy
    other_home = tmp_path / "other-home"
    env = _env(other_home)
    subprocess.run([sys.executable, "-c", WRITER, str(url), "fork", "1"], env=env, check=True, timeout=60)
    with pytest.raises(RollbackError):
        await reopen(url)


async def test_concurrent_commits_from_many_tasks_on_two_instances(tmp_path: Path) -> None:
    url = tmp_path / "v"
    async with await new_vault(url):
        pass
    a, b = await reopen(url), await reopen(url)
    try:
        async def writer(v: object, tag: str) -> None:
            for i in range(5):
                await v.put(f"{tag}{i}", tag.encode() * (i + 1))  # type: ignore[attr-defined]
                await v.commit()  # type: ignore[attr-defined]

        await asyncio.gather(writer(a, "a"), writer(b, "b"))
    finally:
        await a.aclose()
        await b.aclose()
    async with await reopen(url) as v:
        expected = sorted([f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)])
        assert sorted(s.name for s in await v.ls("/")) == expected
        assert v.generation == 10


@pytest.mark.parametrize("theirs", ["move", "keep"])
async def test_a_folder_moved_by_one_writer_and_kept_or_moved_by_another_stays_readable(tmp_path: Path,
                                                                                         theirs: str) -> None:
    """Two writers race: one moves a folder (with a subfolder), the other moves it elsewhere or leaves it
    and edits beside it. The merge must not put one catalog page at two paths: a fresh client refuses
    such a catalog as hostile, so the merged generation would be unreadable."""
    url = tmp_path / "v"
    async with await new_vault(url) as v:
        for i in range(3):
            await v.put(f"x/f{i}", f"file {i}".encode())
            await v.put(f"x/sub/g{i}", f"deep {i}".encode() * 100)
        await v.put("x/sub/deeper/h", b"h" * 5000)
    a, b = await reopen(url), await reopen(url)
    try:
        await a.mv("x", "moved-by-a")
        if theirs == "move":
            await b.mv("x", "moved-by-b")
        else:
            await b.mkdir("elsewhere")
            await b.mv("x/sub", "elsewhere/sub-by-b")  # b moves a part out of the folder a moves whole
        await b.commit()
        await a.commit()  # loses the race, merges onto b's generation
    finally:
        await a.aclose()
        await b.aclose()
    async with await reopen(url) as v:
        files = {p: await v.read_bytes(p) async for p, st in v.walk("/") if st.type == "file"}
        report = await v.verify(full=True)
    assert report.ok, report.problems
    assert files["/moved-by-a/f1"] == b"file 1"
    if theirs == "move":
        assert files["/moved-by-b/sub/deeper/h"] == b"h" * 5000
        assert files["/moved-by-a/sub/g2"] == b"deep 2" * 100
    else:
        # b changed x (moved sub out), so x stays with b's edit; a's move keeps the whole folder it
        # moved (sub included) and b's sub stands alone: duplicated, never lost
        assert files["/elsewhere/sub-by-b/g0"] == files["/moved-by-a/sub/g0"] == b"deep 0" * 100
        assert sorted(p for p in files if p.startswith("/x/")) == ["/x/f0", "/x/f1", "/x/f2"]
        assert len(files) == 7 + 4 + 3



async def test_a_folder_moved_over_one_a_rival_changed_is_kept_as_a_conflict_copy(tmp_path: Path) -> None:
    """Ours replaces x/a by moving y onto it; theirs edits inside x/a. Theirs keeps the name, and y's
    content (gone from its old place in ours) survives as the conflict copy instead of vanishing."""
    url = tmp_path / "v"
    async with await new_vault(url) as v:
        await v.put("x/a/old", b"old a")
        await v.put("y/keep", b"y content")
    a, b = await reopen(url), await reopen(url)
    try:
        await a.rm("x/a", recursive=True)
        await a.mv("y", "x/a")
        await b.put("x/a/new", b"new in a")
        await b.commit()
        await a.commit()
    finally:
        await a.aclose()
        await b.aclose()
    async with await reopen(url) as v:
        files = {p: await v.read_bytes(p) async for p, st in v.walk("/") if st.type == "file"}
        assert (await v.verify(full=True)).ok
    assert files["/x/a/new"] == b"new in a" and files["/x/a/old"] == b"old a"
    copies = [p for p in files if p.startswith("/x/a (conflict ")]
    assert [files[p] for p in copies] == [b"y content"], files


def test_a_lost_race_pauses_a_random_while_that_grows_to_one_second() -> None:
    from sigmavault.engine.committer import backoff

    for lost, cap in ((0, 0.005), (1, 0.010), (5, 0.160), (8, 1.0), (60, 1.0)):
        pauses = [backoff(lost) for _ in range(200)]
        assert all(0 <= p <= cap for p in pauses) and len(set(pauses)) > 1, (lost, max(pauses))


def test_a_commit_keeps_retrying_lost_races_for_its_time_budget_not_a_fixed_count() -> None:
    import time

    from sigmavault.engine.committer import attempts

    assert len(list(attempts(0.0))) == 64  # at least 64 tries even with no time left
    start = time.monotonic()
    tries = 0
    for _ in attempts(0.2):  # a busy machine: tries go on until the budget is spent
        tries += 1
        time.sleep(0.001)
    assert tries > 64 and 0.2 <= time.monotonic() - start < 5
