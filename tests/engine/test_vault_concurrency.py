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
