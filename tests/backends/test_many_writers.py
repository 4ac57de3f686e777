"""Many machines, one vault: 16 writer processes commit 20 small changes each into one vault on SeaweedFS.

Every writer opens the vault, waits for a common go signal (a file), then commits its changes one
at a time, as fast as it can: most attempts lose a race, merge and retry after a random pause.
All 320 commits must land, none lost or made twice, the log must be one gapless chain, and no
writer may give up (no livelock). The figures (median commit latency, lost races) are printed;
``pytest -s`` shows them.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from servers import SeaweedServer
from test_cloud_vault import PASS, cli_env, create_vault, place_on, release_together

import sigmavault

WRITERS, CHANGES = 16, 20

WRITER = """
import asyncio, json, os, sys, time
from pathlib import Path
import sigmavault

async def main(url, who, changes, ready, go):
    async with await sigmavault.open(url, passphrase=os.environ["SIGMAVAULT_PASSPHRASE"]) as vault:
        Path(ready).touch()
        while not Path(go).exists():
            await asyncio.sleep(0.01)
        latencies, gens = [], []
        for j in range(int(changes)):
            await vault.put(f"/w{who}/{j}.txt", f"writer {who} change {j}".encode())
            start = time.monotonic()
            gens.append(await vault.commit())
            latencies.append(time.monotonic() - start)
        races = vault.metrics().commit_races
    print(json.dumps({"latencies": latencies, "generations": gens, "races": races}))

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.mark.slow
def test_sixteen_writers_commit_into_one_vault(s3_server: SeaweedServer, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    place = place_on(s3_server, tmp_path, monkeypatch)
    create_vault(place.url)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = []
    for who in range(WRITERS):
        cmd = [sys.executable, str(script), place.url, str(who), str(CHANGES), str(tmp_path / f"{who}.ready"),
               str(tmp_path / "go")]
        procs.append(subprocess.Popen(cmd, env=cli_env(place, tmp_path / f"home-{who}"), stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    ready = [tmp_path / f"{who}.ready" for who in range(WRITERS)]
    results = release_together(procs, ready, tmp_path / "go", timeout=600)
    gens = sorted(g for r in results for g in r["generations"])
    assert gens == list(range(1, WRITERS * CHANGES + 1))  # every commit landed once, as its own generation
    latencies = [x for r in results for x in r["latencies"]]
    races = sum(r["races"] for r in results)
    median = statistics.median(latencies) * 1000
    print(f"\n{WRITERS} writers x {CHANGES} commits: median commit latency {median:.0f} ms,"
          f" p95 {sorted(latencies)[int(len(latencies) * 0.95)] * 1000:.0f} ms, {races} lost races merged and retried")

    async def check() -> None:
        async with await sigmavault.open(place.url, passphrase=PASS) as vault:
            assert vault.generation == WRITERS * CHANGES
            assert [e.generation for e in await vault.log()] == list(range(WRITERS * CHANGES, -1, -1))
            for who in range(WRITERS):
                names = sorted(e.name for e in await vault.ls(f"/w{who}"))
                assert names == sorted(f"{j}.txt" for j in range(CHANGES))  # nothing lost, no conflict copy
                for j in range(CHANGES):
                    assert await vault.read_bytes(f"/w{who}/{j}.txt") == f"writer {who} change {j}".encode()
            assert (await vault.verify(full=True)).ok

    asyncio.run(check())
