"""Prune repacks beside writers and against a hostile map (engine/rewriting.py ``Rewriter.repack``;
docs/format.md, "Repacking").

A writer that commits while the repack copies makes the repacker lose its race for the map: it
repacks the writer's generation too and lands the next one, and the writer's file stays. A forged
repack map (a co-writer with the current keys, one file's bytes swapped) is refused by prune's map
check: exit 6, nothing deleted. The copy goes into a fresh pack and the dedup index learns the new
place: a later write of the same bytes stores nothing. A repack's map does not finish a killed
``rekey --rewrite``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_rewrite_mapcheck import cli, swap_content
from test_rewrite_mapcheck import history as two_generations
from test_rewrite_writers import commit_inside_x4
from vaulttools import PASS, new_vault, object_files, reopen

from sigmavault import Vault
from sigmavault.engine import rewriting
from sigmavault.engine.catalog.tree import Dir, File, Meta, Tree, split_path
from sigmavault.engine.format.commits import ChainHead
from sigmavault.engine.format.rewritemap import to_json
from sigmavault.engine.keys.credentials import Passphrase
from sigmavault.engine.retention import Rules

SMALL = {f"/s/{i:02d}.bin": os.urandom(5000 + i) for i in range(12)}


async def sparse(root: Path) -> dict[str, bytes]:
    """Twelve small files in one data pack (generation 1), nine of them removed (2), 1 forgotten (3): the pack
    is 3/4 unused
    (the live ones are its first, a middle and its last member: a dead tail would not count)."""
    keep = [p for i, p in enumerate(SMALL) if i in (0, 5, 11)]
    async with await new_vault(root) as v:
        for path, data in SMALL.items():
            await v.put(path, data)
        await v.commit()
        for path in SMALL:
            if path not in keep:
                await v.rm(path)
        await v.commit()
        await v.forget(Rules(last=1))  # 3: forgets 0 and 1
    return {p: SMALL[p] for p in keep}


async def files_read(v: Vault, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        assert await v.read_bytes(path) == data, path
    report = await v.verify(full=True)
    assert report.ok, report.problems


async def test_a_writer_committing_during_the_repack_keeps_its_data(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "v"
    files = await sparse(root)
    writer, pruner = await reopen(root), await reopen(root)
    try:
        await writer.put("/w/late.bin", b"w" * 7000)  # into a pack of its own, committed inside the repack's X4
        heads = commit_inside_x4(monkeypatch, writer, 4)  # wins c/4: the repack loses X4 and takes 4 in too
        r = await pruner.prune(max_unused=0.05)
        assert heads == [3, 4] and r.repacked == 1 and r.deleted >= 1
        files["/w/late.bin"] = b"w" * 7000
        await files_read(pruner, files)
        events = [e for e in await pruner.audit() if e.event == "repack"]
        assert [(e.generation, (e.counts or {})["packs"], (e.counts or {})["blobs"]) for e in events] == [(5, 1, 3)]
    finally:
        await writer.aclose()
        await pruner.aclose()
    async with await reopen(root) as v:
        await files_read(v, files)


async def test_the_copy_goes_to_a_fresh_pack_and_the_index_learns_its_place(tmp_path: Path) -> None:
    root = tmp_path / "v"
    files = await sparse(root)
    old = {p.name for p in object_files(root)}
    async with await reopen(root) as v:
        r = await v.prune(max_unused=0.05)
        assert r.repacked == 1 and r.repack_written > 0
        path, data = next(iter(files.items()))
        await v.put("/again.bin", data)  # the same bytes: a dedup hit on the repacked blob's new place
        await v.commit()
        first, again = await v._tree.lookup(split_path(path)), await v._tree.lookup(split_path("/again.bin"))
        assert isinstance(first, File) and isinstance(again, File)
        assert again.blobs[0].object_name == first.blobs[0].object_name, "the repacked blob was stored again"
        assert first.blobs[0].object_name[-64:] not in old, "the copy went into the old pack's place"
        await files_read(v, {**files, "/again.bin": data})


async def test_a_forged_repack_map_stops_prune(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A co-writer's repack whose map swaps one file's bytes for another's in generation 1."""
    root = tmp_path / "v"
    await two_generations(root)
    original = rewriting._Run.decide

    async def forged(self: rewriting._Run, head: ChainHead) -> dict[str, object]:
        meta = await original(self, head)
        c = await self.r._history.commit_at(1)
        t = Tree(Dir(Meta(0o755, 0, 0, c.time * 10**9, c.time * 10**9), list(self.roots[1])),
                 self.r._catalog.load)
        await swap_content(t)
        t.fresh_pages = True
        self.mapped[1] = await self.r._catalog.save(t)
        await self.r._page_pack.flush()
        return {**meta, "rewrite": to_json(self.r._store.epoch, self.mapped)}

    async with await reopen(root) as v:
        monkeypatch.setattr(rewriting._Run, "decide", forged)
        await v.rewriter.repack({f"o/{p.name}" for p in object_files(root)})  # every pack: all that is small
        monkeypatch.undo()
        assert [e.event for e in await v.audit()][-1] == "repack"
    before = object_files(root)
    r = cli(root, tmp_path / "home", "prune", "--max-unused", "100%")
    assert r.returncode == 6, r.stderr
    assert "generation 1 " in r.stderr and "/t/a.bin (content)" in r.stderr and "old objects are kept" in r.stderr
    assert object_files(root) == before, "a refused prune deleted something"


async def test_a_repack_map_does_not_finish_a_killed_rekey_rewrite(tmp_path: Path) -> None:
    root = tmp_path / "v"
    files = await sparse(root)
    async with await reopen(root) as v:
        await v.rekey(Passphrase.of(PASS), rewrite=True)  # 4: the rewrite never ran (killed, say)
        assert await v.rewriter.pending()
        r = await v.prune(max_unused=0.05)
        assert r.repacked == 1
        assert await v.rewriter.pending(), "the repack's map was taken for the rewrite's"
        done = await v.rewriter.run()
        assert done.epoch == 2 and not await v.rewriter.pending()
        await v.prune()
        assert {p.read_bytes()[2:6] for p in object_files(root)} == {(2).to_bytes(4, "big")}
        await files_read(v, files)


async def test_one_prune_repacks_what_its_own_repack_would_leave_unused(tmp_path: Path) -> None:
    """Eight generations of small files in nested folders, some folders removed, four kept: moving a
    directory saves its ancestors anew, so their old pages die in page packs that were not over the
    limit. The first prune repacks those too (``to_repack``), and the next one finds nothing to do;
    without that, every later prune would repack a page pack or two."""
    root = tmp_path / "v"
    files: dict[str, bytes] = {}
    async with await new_vault(root) as v:
        for g in range(8):
            for d in range(6):
                for f in range((g * 7 + d * 3) % 7):
                    path = f"/t/d{d}/s{g}/f{f}.bin"
                    files[path] = os.urandom(1500 + 997 * ((g + d + f) % 8))
                    await v.put(path, files[path])
            for d in range(6):
                for h in range(g):
                    if (d + h + g) % 5 == 0 and any(p.startswith(f"/t/d{d}/s{h}/") for p in files):
                        await v.rm(f"/t/d{d}/s{h}", recursive=True)
                        files = {p: b for p, b in files.items() if not p.startswith(f"/t/d{d}/s{h}/")}
            await v.commit()
        await v.forget(Rules(last=4))
        first = await v.prune(max_unused=0.05)
        again = await v.prune(max_unused=0.05)
        assert again.packs_over_limit == again.repacked == again.deleted == 0, again
        assert first.repacked > first.packs_over_limit > 0, first  # page packs the repack itself left over
        await files_read(v, files)

