"""A vault dispersed 2-of-3 over local folders: round trips, a lost place, bad layouts, no plaintext."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest
from vaulttools import MIB, PASS

import sigmavault
from sigmavault import UsageError
from sigmavault.engine.errors import BackendUnavailable

MARKER = b"SIGMAVAULT-PLAINTEXT-MARKER-"


def folders(tmp_path: Path, n: int = 3) -> list[str]:
    return [str(tmp_path / f"place{i}") for i in range(n)]


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


async def test_round_trip_lost_place_and_any_order(tmp_path: Path) -> None:
    urls = folders(tmp_path)
    big = (MARKER * (3 * MIB // len(MARKER) + 1))[: 3 * MIB + 5]
    async with await sigmavault.create(places=urls, needed=2, passphrase=PASS, kdf="minimum", chunk_size=MIB) as v:
        await v.put("docs/big.bin", big)
        await v.put("small.txt", MARKER + b"small")
        await v.commit()
    full_shard = 28 + 1_049_686 // 2 + 32  # header, half a full 1 MiB-chunk object, tag
    for place in urls:  # no place holds plaintext, and every full-chunk shard has one size
        sizes = []
        for f in files(Path(place)):
            body = f.read_bytes()
            assert MARKER not in body
            if f.parent.parent.name == "o":
                sizes.append(len(body))
        assert sizes.count(full_shard) == 3 and max(sizes) == full_shard  # 3 chunks; packs no larger
    async with await sigmavault.open(list(reversed(urls)), passphrase=PASS) as v:  # another order
        assert await v.read_bytes("docs/big.bin") == big
    shutil.rmtree(urls[1])  # one place lost outright
    notes: list[str] = []
    async with await sigmavault.open([urls[2], urls[0]], passphrase=PASS, on_notice=notes.append) as v:
        assert await v.read_bytes("docs/big.bin") == big
        assert await v.read_bytes("small.txt") == MARKER + b"small"
        report = await v.verify(full=True)
        assert report.ok, report
    assert not any("pins" in n for n in notes)  # the same device state (pin, high-water mark) as before
    assert len(notes) == 1 and "degraded" in notes[0] and "place 2" in notes[0]


async def test_layouts_that_tolerate_no_loss_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="tolerates losing no place"):
        await sigmavault.create(places=folders(tmp_path, 2), needed=2, passphrase=PASS, kdf="minimum")
    with pytest.raises(UsageError, match="tolerates losing no place"):
        await sigmavault.create(places=folders(tmp_path, 3), needed=3, passphrase=PASS, kdf="minimum")
    with pytest.raises(UsageError, match="named twice"):
        await sigmavault.create(places=[str(tmp_path / "a")] * 3, passphrase=PASS, kdf="minimum")
    assert not any(tmp_path.iterdir()) or not files(tmp_path)


async def test_one_place_of_a_dispersed_vault_alone_is_refused(tmp_path: Path) -> None:
    urls = folders(tmp_path)
    v = await sigmavault.create(places=urls, passphrase=PASS, kdf="minimum")
    await v.aclose()
    with pytest.raises(UsageError, match="dispersed over 3 places"):
        await sigmavault.open(urls[0], passphrase=PASS)


async def test_two_of_three_places_down_commits_nothing(tmp_path: Path) -> None:
    urls = folders(tmp_path)
    v = await sigmavault.create(places=urls, needed=2, passphrase=PASS, kdf="minimum", chunk_size=MIB)
    await v.put("a.txt", b"kept")
    g = await v.commit()
    await v.aclose()
    v = await sigmavault.open(urls, passphrase=PASS)
    try:
        for url in urls[1:]:
            shutil.rmtree(url)
            Path(url).write_bytes(b"not a folder any more")  # the place answers nothing useful
        with pytest.raises(BackendUnavailable, match=r"place 2 .*place 3"):
            await v.put("b.txt", b"x" * (2 * MIB))
            await v.commit()
    finally:
        with contextlib.suppress(BackendUnavailable):
            await v.aclose()
    assert v.generation == g


async def test_a_deleted_place_is_rebuilt_by_repair(tmp_path: Path) -> None:
    from sigmavault.engine import dispersal

    urls = folders(tmp_path)
    data = {f"f{i}": bytes([i]) * (MIB + 1000 * i) for i in range(3)}
    async with await sigmavault.create(places=urls, passphrase=PASS, kdf="minimum", chunk_size=MIB) as v:
        for path, body in data.items():
            await v.put(path, body)
        await v.commit()
    shutil.rmtree(urls[0])
    async with await sigmavault.open(urls, passphrase=PASS, create_places=True) as v:
        assert await v.read_bytes("f1") == data["f1"]
        assert any("place" in d for d in dispersal.degraded(v))
        report = await dispersal.repair(v)
        assert report.shards_written > 0 and not report.unrecoverable and not report.unreachable
        assert (await dispersal.repair(v)).clean
        assert all(s.shards_missing == 0 and s.reachable for s in await dispersal.status(v))
        repairs = [e for e in await v.audit() if e.event == "repair"]  # the run is in the chain, once
        assert [(e.counts or {}).get("shards_written") for e in repairs] == [report.shards_written]
    shutil.rmtree(urls[1])  # now another place goes: the rebuilt one carries the vault with the third
    async with await sigmavault.open([urls[2], urls[0]], passphrase=PASS) as v:
        for path, body in data.items():
            assert await v.read_bytes(path) == body
        assert (await v.verify(full=True)).ok


async def test_two_writers_racing_commits_both_survive(tmp_path: Path) -> None:
    import asyncio

    urls = folders(tmp_path)
    async with await sigmavault.create(places=urls, passphrase=PASS, kdf="minimum", chunk_size=MIB) as v:
        await v.put("shared.txt", b"base")
    a = await sigmavault.open(urls, passphrase=PASS)
    b = await sigmavault.open(list(reversed(urls)), passphrase=PASS)
    try:
        await a.put("from-a.txt", b"A" * 3000)
        await b.put("from-b.txt", b"B" * 3000)
        gens = await asyncio.gather(a.commit(), b.commit())  # both race for generation 2 on every place
        assert sorted(gens) == [2, 3]
    finally:
        await a.aclose()
        await b.aclose()
    async with await sigmavault.open(urls[1:], passphrase=PASS) as v:
        names = [s.name for s in await v.ls("/")]
        assert {"from-a.txt", "from-b.txt", "shared.txt"} <= set(names)
        assert [e.generation for e in await v.log()] == [3, 2, 1, 0]


REPAIRER = """
import asyncio, json, os, sys, time
import sigmavault
from sigmavault.engine import dispersal

def progress(done, total):
    if done == int(sys.argv[2]):
        print("halfway", flush=True)
        time.sleep(120)  # killed here, mid-repair

async def main():
    urls = json.loads(sys.argv[1])
    async with await sigmavault.open(urls, passphrase=os.environ["PASS"], create_places=True) as v:
        await dispersal.repair(v, progress)

asyncio.run(main())
"""


async def test_repair_killed_twice_then_finished(tmp_path: Path, isolated_home: Path) -> None:
    import json
    import os
    import signal
    import subprocess
    import sys

    from sigmavault.engine import dispersal

    urls = folders(tmp_path)
    data = {f"f{i}": bytes([i + 1]) * (MIB + 777 * i) for i in range(6)}
    async with await sigmavault.create(places=urls, passphrase=PASS, kdf="minimum", chunk_size=MIB) as v:
        for path, body in data.items():
            await v.put(path, body)
        await v.commit()
    shutil.rmtree(urls[1])
    env = {
        **os.environ,
        "PASS": PASS,
        "SIGMAVAULT_HOME": str(isolated_home),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    for stop_at in ("3", "6"):  # kill -9 at a point the child names (it waits there): twice
        child = subprocess.Popen(
            [sys.executable, "-c", REPAIRER, json.dumps(urls), stop_at], env=env, stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None and child.stdout.readline().strip() == "halfway"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    async with await sigmavault.open(urls, passphrase=PASS) as v:
        report = await dispersal.repair(v)
        assert not report.unrecoverable and not report.unreachable, report
        assert (await dispersal.repair(v)).clean
    shutil.rmtree(urls[0])  # the twice-interrupted place, finished, carries the vault with the third
    async with await sigmavault.open([urls[1], urls[2]], passphrase=PASS) as v:
        for path, body in data.items():
            assert await v.read_bytes(path) == body
        assert (await v.verify(full=True)).ok
