"""A real FUSE mount across ``rekey --rewrite`` and ``prune`` run by another client, and a mount afterwards.

The mount shows the newest generation only (older ones are read with ``restore --at``, tested in
tests/cli/test_cli_rewrite.py). A mount that read every file before, and holds one open, adopts the
rewrite's commit and reads the same bytes from the new objects once prune has deleted every old one, also
through the handle it kept open; a new mount afterwards reads them too, and what it writes is sealed under
the new epoch. A mount that has not adopted the rewrite yet when a read needs a chunk prune deleted
adopts the newest head then and reads it from the new objects (was: EIO until its refresh timer).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from mounttools import MIB, PASS, ROOT, Mount, Mounts, needs_fuse

import sigmavault

FILES = {"t/big.bin": os.urandom(2 * MIB + 300_000), "t/d/small.txt": b"small file\n",
         "t/d/mid.bin": os.urandom(70_000), "t/more.bin": os.urandom(MIB + 5)}


def history(vault: Path) -> None:
    """Generations 1-3: the files but more.bin, small.txt changed, more.bin added."""
    async def go() -> None:
        async with await sigmavault.open(str(vault), passphrase=PASS) as v:
            for name, data in FILES.items():
                if name != "t/more.bin":
                    await v.put(name, b"before\n" if name == "t/d/small.txt" else data)
            assert await v.commit() == 1
            await v.put("t/d/small.txt", FILES["t/d/small.txt"])
            assert await v.commit() == 2
            await v.put("t/more.bin", FILES["t/more.bin"])
            assert await v.commit() == 3

    asyncio.run(go())


def sv(m: Mount, *args: str) -> subprocess.CompletedProcess[str]:
    """``sigmavault --vault VAULT ARGS`` as another client of the mount's vault (same home: ``stats`` finds it)."""
    env = {k: v for k, v in m.env().items() if k != "SIGMAVAULT_VAULT"}
    r = subprocess.run([sys.executable, "-m", "sigmavault", "--vault", str(m.vault), *args], env=env,
                       capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert r.returncode == 0, (args, r.stderr)
    return r


def epochs(vault: Path) -> set[int]:
    """The epochs in the headers (``01 01 ‖ u32 epoch``) of every object stored."""
    return {int.from_bytes(p.read_bytes()[2:6], "big") for p in (vault / "o").rglob("*")
            if p.is_file() and not p.name.startswith(".")}


def wait_for_generation(m: Mount, gen: int) -> None:
    """Until the mount reports generation ``gen`` or a later one (it adopts other clients' commits on its
    refresh timer)."""
    deadline = time.monotonic() + 60
    while json.loads(sv(m, "--json", "stats", str(m.mountpoint)).stdout)["generation"] < gen:
        assert time.monotonic() < deadline, "the mount did not adopt the rewrite's commit"
        time.sleep(0.1)


@needs_fuse
def test_a_mount_reads_through_a_rewrite_and_prune(mounts: Mounts) -> None:
    history(mounts.vault)
    m = mounts.mount("mnt", "--refresh-interval", "0.2")
    mp = m.mountpoint
    for name, data in FILES.items():
        assert (mp / name).read_bytes() == data
    with open(mp / "t/big.bin", "rb") as held:  # open across the rewrite and the prune
        first = held.read(MIB)
        done = json.loads(sv(m, "--json", "rekey", "--rewrite").stdout)
        assert done["rewrite"]["record"] == 5
        sv(m, "prune")  # generation 6 records it
        assert epochs(mounts.vault) == {2}  # nothing of the old epoch is stored any more
        wait_for_generation(m, 6)
        assert first + held.read() == FILES["t/big.bin"]
    for name, data in FILES.items():
        assert (mp / name).read_bytes() == data
    (mp / "t" / "new.bin").write_bytes(b"written after the rewrite\n" * 5000)
    assert m.stop() == 0

    again = mounts.mount("mnt2")
    for name, data in FILES.items():
        assert (again.mountpoint / name).read_bytes() == data
    assert (again.mountpoint / "t" / "new.bin").read_bytes() == b"written after the rewrite\n" * 5000
    assert again.stop() == 0
    assert epochs(mounts.vault) == {2}


@needs_fuse
def test_a_read_of_a_chunk_prune_took_adopts_the_rewrite_first(mounts: Mounts) -> None:
    big = os.urandom(12 * MIB + 5)

    async def go() -> None:
        async with await sigmavault.open(str(mounts.vault), passphrase=PASS) as v:
            await v.put("big.bin", big)
            assert await v.commit() == 1

    asyncio.run(go())
    started = time.monotonic()
    m = mounts.mount("mnt", "--refresh-interval", "600", "--readahead", "1", "--memory-cache", "2")  # no timer refresh
    with open(m.mountpoint / "big.bin", "rb", buffering=0) as held:
        assert held.read(4096) == big[:4096]  # chunks 0-4 at most come in (kernel and mount readahead)
        sv(m, "rekey", "--rewrite")
        sv(m, "prune")
        assert epochs(mounts.vault) == {2}
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))  # the mount refreshes at most once a second
        held.seek(10 * MIB)
        assert held.read(MIB) == big[10 * MIB:11 * MIB]  # chunk 10 of generation 1 is gone: read from the rewrite's
    assert "adopted generation 4" in m.log.read_text()  # 2 the rekey, 3 the rewrite, 4 the prune
    assert m.stop() == 0
