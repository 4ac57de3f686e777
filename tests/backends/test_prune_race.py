"""Writers racing prune, round after round, on local disk, SeaweedFS (S3) and Azurite (Azure Blob).

Each round: an aborted writer leaves garbage; a separate writer (its own Vault: lease, index,
connections) stores a file that dedups against that garbage plus a new one, either before the
pruner starts (its lease is older than the deletion record) or while the pruner is paused at one
of its steps P2–P6; it commits while the pruner is paused (or waiting for it), and the pruner goes
on. Nothing committed is ever lost: after every round ``verify --full`` is clean, every committed
file reads back, and no record is left under ``l/``. The orders are made with events, not sleeps.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prunetools import PASS, Gate, aborted_writer, blob, check_clean, close, listing, open_vault, settled, stepper
from test_cloud_vault import place_on

import sigmavault

#: (writer stores before the pruner starts, the pruner step it is paused at)
ROUNDS = [(True, "P3"), (False, "P2"), (False, "P4"), (False, "P6"), (True, "P6"), (False, "P5")]


async def race_rounds(url: str) -> None:
    v = await sigmavault.create(url, passphrase=PASS, kdf="minimum", chunk_size=1 << 20)
    files = {"/base": blob("base", (1 << 20) + 10)}
    await v.put("/base", files["/base"])
    await v.commit()
    await v.aclose()
    for i, (early, step) in enumerate(ROUNDS):
        await aborted_writer(url, f"garbage{i}", (1 << 20) + 4000 + i)
        mine = {f"/r{i}/dedup": blob(f"garbage{i}"), f"/r{i}/new": blob(f"new{i}", (1 << 20) + 77 + i)}
        w, p = await open_vault(url), await open_vault(url)
        copied = Gate()
        copied.go.set()
        w._guard.hook = stepper({"copied": copied})
        try:
            if early:
                for path, data in mine.items():
                    await w.put(path, data)
            gate, waiting = Gate(), asyncio.Event()

            def progress(stage: str, done: int, total: int, waiting: asyncio.Event = waiting) -> None:
                if stage == "wait" and done < total:
                    waiting.set()

            task = asyncio.ensure_future(p._pruner(poll=0.01, hook=stepper({step: gate}), progress=progress).run())
            marks = [asyncio.ensure_future(e.wait()) for e in (gate.reached, waiting)]
            await asyncio.wait([task, *marks], return_when=asyncio.FIRST_COMPLETED)
            if not early:
                for path, data in mine.items():
                    await w.put(path, data)
            commit = asyncio.ensure_future(w.commit())
            copy = asyncio.ensure_future(copied.reached.wait())
            await asyncio.wait([commit, copy], return_when=asyncio.FIRST_COMPLETED)
            gate.go.set()
            report = await task
            await commit
            for m in (*marks, copy):
                m.cancel()
            assert report.deleted >= 1, (i, report)
            files.update(mine)
            left = await listing(p)
            assert settled(left["l/"]) and len({n[4:36] for n in left["l/"]}) <= 1, (i, left["l/"])
        finally:
            await close(w, p)
        await check_clean(url, files)


async def test_prune_race_local(tmp_path: Path) -> None:
    await race_rounds(str(tmp_path / "v"))


@pytest.mark.parametrize("kind", ["s3", "azure"])
async def test_prune_race_cloud(kind: str, request: pytest.FixtureRequest, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    server = request.getfixturevalue("s3_server" if kind == "s3" else "azure_server")
    await race_rounds(place_on(server, tmp_path, monkeypatch).url)
