"""A running mount takes in a write-only client's drop on its refresh timer: the files appear in
the mount without the user writing anything, and the drop is committed by the mount."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from mounttools import PASS, Mounts, needs_fuse

import sigmavault


async def add_writer(vault: Path) -> sigmavault.WriterCredential:
    async with await sigmavault.open(str(vault), passphrase=PASS) as v:
        return await v.keys.add_writer("web-1", "/web-1")


async def drop(vault: Path, cred: sigmavault.WriterCredential, home: Path) -> None:
    places = sigmavault.Places(state=home / "state", config=home / "config")
    async with await sigmavault.open(str(vault), writer_credential=cred, places=places) as w:
        await w.put("/web-1/index.html", b"<h1>dropped</h1>")


@needs_fuse
def test_a_mount_takes_a_drop_in_on_its_refresh_timer(mounts: Mounts, tmp_path: Path) -> None:
    cred = asyncio.run(add_writer(mounts.vault))
    m = mounts.mount("mnt", "--refresh-interval", "0.3")
    asyncio.run(drop(mounts.vault, cred, tmp_path / "server"))
    target = m.mountpoint / "web-1" / "index.html"
    deadline = time.monotonic() + 60
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # the mount's timer, not this test, decides when: wait for what it shows
    assert target.read_bytes() == b"<h1>dropped</h1>"
    assert m.stop() == 0

    async def check() -> list[int]:
        async with await sigmavault.open(str(mounts.vault), passphrase=PASS) as v:
            drops = v.head_drops()
            return [] if drops is None else [i.seq for i in drops.ingested]

    assert asyncio.run(check()) == [1]
