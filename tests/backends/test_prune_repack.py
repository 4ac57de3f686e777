"""Prune's repack beside a writer on another device (docs/format.md, "Repacking"): the writer's dedup
index still knows the old pack, so it deduplicates against it after the repack's map landed and
prune's deletion record named it. Its W3 rescue keeps the pack (P5), its file reads back, and the
next prune repacks what the writer's generation uses of the pack and deletes it. The order is made
with the pruner's step hook, not sleeps."""

from __future__ import annotations

from pathlib import Path

from prunetools import PASS, Gate, blob, check_clean, open_vault, prune_task, stepper

import sigmavault
from sigmavault.engine.catalog.tree import File, split_path
from sigmavault.engine.local.settings import Places
from sigmavault.engine.retention import Rules


async def test_a_writer_deduplicating_against_a_repacked_pack_keeps_it(tmp_path: Path) -> None:
    url = str(tmp_path / "v")
    v = await sigmavault.create(url, passphrase=PASS, kdf="minimum")
    for i in range(12):  # one data pack; the first, a middle and the last file stay (a dead tail would not count)
        await v.put(f"/s/{i:02d}", blob(f"s{i}", 5000 + i))
    await v.commit()
    for i in set(range(12)) - {0, 5, 11}:
        await v.rm(f"/s/{i:02d}")
    await v.commit()
    await v.forget(Rules(last=1))  # the pack is 3/4 unused now
    files = {f"/s/{i:02d}": blob(f"s{i}", 5000 + i) for i in (0, 5, 11)}
    node = await v._tree.lookup(split_path("/s/05"))
    assert isinstance(node, File)
    old = node.blobs[0].object_name
    writer = await sigmavault.open(url, passphrase=PASS,
                                   places=Places(state=tmp_path / "w-state", config=tmp_path / "w-config"))
    writer.refresh_interval = None  # its index fills from the head it opened: the old pack
    p3 = Gate()
    try:
        task = prune_task(v, hook=stepper({"P3": p3}), max_unused=0.05)
        await p3.reached.wait()  # the map landed, the record names the old pack
        await writer.put("/dup", files["/s/05"])  # a middle member: the dead ones before it count
        dup = await writer._tree.lookup(split_path("/dup"))
        assert isinstance(dup, File) and dup.blobs[0].object_name == old  # a dedup hit on the old pack
        await writer.commit()  # W3: the record marks it, a rescue keeps it
        p3.go.set()
        r = await task
        assert r.repacked == 0 and r.kept_back >= 1 and await v.backend.head(old) > 0
        files["/dup"] = files["/s/05"]
        again = await v.prune(max_unused=0.05)
        assert again.repacked == 1 and old in again.candidate_names
    finally:
        await writer.aclose()
        await v.aclose()
    await check_clean(url, files)
    w = await open_vault(url)
    try:
        assert not [n async for n in w.backend.list("o/") if n == old]
    finally:
        await w.aclose()
