"""kill -9 in the middle of prune and destroy, then a re-run completes and nothing kept is lost.

The run kills itself (SIGKILL, no clean-up of any kind) when it reaches the chosen point: a step
of the protocol (P2 … P6), or the n-th object of a stage (scan, delete; a destroy prefix). The
points are drawn from a seeded random generator, so each run tests the same points. The killed
pruner's lease beats with a short TTL, so the re-run's wait for it to expire is short.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from prunetools import PASS, aborted_writer, blob, check_clean, close, listing, open_vault, settled

import sigmavault
from sigmavault._internal import destroy_vault
from sigmavault.backends.urls import open_backend
from sigmavault.engine.errors import UsageError, VaultNotFound

_LAUNCHER = r"""
import asyncio, os, signal, sys
import sigmavault
from sigmavault._internal import destroy_vault

url, mode, point = sys.argv[1], sys.argv[2], sys.argv[3]


def die(here):
    if here == point:
        os.kill(os.getpid(), signal.SIGKILL)


async def main():
    if mode == "destroy":
        await destroy_vault(url, lambda prefix, done, total: die(f"{prefix}{done}"))
        return
    v = await sigmavault.open(url, passphrase=sys.argv[4])

    async def hook(step):
        die(step)

    await v._pruner(ttl=0.3, poll=0.01, hook=hook, progress=lambda stage, done, total: die(f"{stage}:{done}")).run()
    await v.aclose()

asyncio.run(main())
"""

POINTS = ["scan:1", "P2", "P3", "P4", "P5", "P6", "delete:1", "delete:3", "delete:5"]


def run_killed(url: str, mode: str, point: str) -> None:
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, url, mode, point, PASS], capture_output=True,
                          timeout=120, env=os.environ.copy())
    assert proc.returncode == -signal.SIGKILL, (point, proc.returncode, proc.stderr.decode()[-2000:])


async def _vault_with_garbage(tmp: Path) -> tuple[str, dict[str, bytes]]:
    url = str(tmp / "v")
    files = {"/a": blob("a", 2 * (1 << 20) + 123), "/b": b"b" * 5000}
    v = await sigmavault.create(url, passphrase=PASS, kdf="minimum", chunk_size=1 << 20)
    for path, data in files.items():
        await v.put(path, data)
    await v.commit()
    await v.aclose()
    await aborted_writer(url, "g", 5 * (1 << 20) + 999)  # five chunks and a pack of garbage
    return url, files


@pytest.mark.parametrize("point", random.Random(13).sample(POINTS, 5))
async def test_prune_killed_then_rerun_completes(tmp_path: Path, point: str) -> None:
    url, files = await _vault_with_garbage(tmp_path)
    run_killed(url, "prune", point)
    v = await open_vault(url)
    try:
        await v.prune()
        left = await listing(v)
        assert settled(left["l/"]), left["l/"]  # the killed run's lease is gone, its record ended
        report = await v.verify(full=True)
        assert not [n for n in report.notes if "not referenced" in n], report.notes  # all garbage went
    finally:
        await close(v)
    await check_clean(url, files)


@pytest.mark.parametrize("point", ["k/1", "o/2", "c/1"])
async def test_destroy_killed_then_rerun_finishes(tmp_path: Path, point: str) -> None:
    url, _ = await _vault_with_garbage(tmp_path)
    run_killed(url, "destroy", point)
    with pytest.raises(VaultNotFound):  # the keystores went first: nothing opens any more
        await sigmavault.open(url, passphrase=PASS)
    await destroy_vault(url)
    assert await _everything(url) == []


async def _everything(url: str) -> list[str]:
    backend = open_backend(url)
    try:
        return [n async for n in backend.list("")]
    finally:
        await backend.aclose()


def test_destroy_through_the_cli_refuses_without_the_flag(tmp_path: Path) -> None:
    url, _ = asyncio.run(_vault_with_garbage(tmp_path))
    before = asyncio.run(_everything(url))
    cmd = [sys.executable, "-m", "sigmavault", "--vault", url, "--no-agent"]
    proc = subprocess.run([*cmd, "destroy"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == UsageError.exit_code and "--yes-destroy-vault" in proc.stderr
    assert asyncio.run(_everything(url)) == before  # untouched
    proc = subprocess.run([*cmd, "--json", "destroy", "--yes-destroy-vault"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout.splitlines()[-1])
    assert doc["destroyed"] is True and doc["keystores"] == 1 and doc["objects"] == len(before) - 1
    assert asyncio.run(_everything(url)) == []


def test_prune_through_the_cli(tmp_path: Path) -> None:
    url, files = asyncio.run(_vault_with_garbage(tmp_path))
    cmd = [sys.executable, "-m", "sigmavault", "--vault", url, "--no-agent", "--json"]
    env = {**os.environ, "SIGMAVAULT_PASSPHRASE": PASS}
    before = asyncio.run(_everything(url))
    dry = subprocess.run([*cmd, "prune", "--dry-run"], capture_output=True, text=True, timeout=120, env=env)
    assert dry.returncode == 0, dry.stderr
    d = json.loads(dry.stdout.splitlines()[-1])
    assert d["dry_run"] and d["deleted"] == 0 and d["unreferenced"] >= 6
    assert asyncio.run(_everything(url)) == before
    bad = subprocess.run([*cmd, "prune", "--max-unused", "150%"], capture_output=True, text=True, timeout=120,
                         env=env)
    assert bad.returncode == UsageError.exit_code and "--max-unused" in bad.stderr
    run = subprocess.run([*cmd, "prune", "--max-unused", "10%"], capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    r = json.loads(run.stdout.splitlines()[-1])
    assert r["deleted"] == d["unreferenced"] and r["after"] == d["after"] and r["before"] == d["before"]
    assert r["after"]["bytes"] < r["before"]["bytes"] and r["packs"]["max_unused"] == 0.1
    asyncio.run(check_clean(url, files))


def test_forget_then_prune_frees_the_forgotten_data(tmp_path: Path) -> None:
    """``forget --prune``: the data only forgotten generations referenced goes; the kept ones verify."""
    url = str(tmp_path / "v")
    cmd = [sys.executable, "-m", "sigmavault", "--vault", url, "--no-agent"]
    env = {**os.environ, "SIGMAVAULT_PASSPHRASE": PASS}
    made = subprocess.run([*cmd, "create", "--kdf", "minimum"], env=env, capture_output=True, timeout=120)
    assert made.returncode == 0, made.stderr
    for i in range(3):  # three generations of /f.bin, each with its own data
        if i:
            assert subprocess.run([*cmd, "rm", "/f.bin"], env=env, capture_output=True, timeout=120).returncode == 0
        src = tmp_path / f"f{i}.bin"
        src.write_bytes(blob(f"gen{i}", (1 << 20) * 3 // 2))
        done = subprocess.run([*cmd, "import", str(src), "--to", "/f.bin"], env=env, capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr
    run = subprocess.run([*cmd, "--json", "forget", "--keep-last", "1", "--prune"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    pruned = [e for e in events if e.get("event") == "prune"]
    assert len(pruned) == 1 and pruned[0]["deleted"] >= 2 and pruned[0]["after"]["bytes"] < pruned[0]["before"]["bytes"]
    verify = subprocess.run([*cmd, "verify", "--full"], env=env, capture_output=True, text=True, timeout=300)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    out = tmp_path / "out.bin"
    got = subprocess.run([*cmd, "export", "/f.bin", str(out)], env=env, capture_output=True, timeout=120)
    assert got.returncode == 0 and out.read_bytes() == blob("gen2", (1 << 20) * 3 // 2)
