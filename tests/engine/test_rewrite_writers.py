"""``rekey --rewrite`` beside writers (docs/format.md, "Rewriting under the new epoch"; models/rewrite.py).

A writer that commits while the rewrite is copying makes the rewriter lose its race for the map: it
rewrites the writer's generation too and lands the next one (X3, X4). A writer that opened before
the map and renames an old file, changes another and adds one merges onto the map's head without a
conflict copy and re-seals what its tree newly holds of the old epoch: its commit refers to no old
object. Afterwards prune leaves no object of the old epoch, and nothing is lost. The order is made
to happen: the writer commits inside the rewriter's own X4 step, before its create-only put.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from vaulttools import MIB, PASS, new_vault, reopen

from sigmavault import Vault
from sigmavault.engine import rewriting
from sigmavault.engine.catalog.tree import Dir, File
from sigmavault.engine.errors import NotFound
from sigmavault.engine.format.commits import ChainHead
from sigmavault.engine.keys.credentials import Passphrase
from sigmavault.engine.retention import Rules
from sigmavault.engine.transfer.prune import PruneReport


async def ref_epochs(v: Vault, gen: int, *, own: bool = False) -> set[int]:
    """The epoch of every page and blob generation ``gen``'s tree refers to (its effective tree, or
    with ``own`` the one its own commit names)."""
    t = v._catalog.tree(await v._history.visible(gen), own=own)
    out = {p.epoch for p in t.root.pages}
    stack: list[tuple[Dir, list[bytes]]] = [(t.root, [])]
    while stack:
        d, where = stack.pop()
        for name, node in (await t.children(d, where)).items():
            if isinstance(node, Dir):
                out |= {p.epoch for p in node.pages}
                stack.append((node, [*where, name]))
            elif isinstance(node, File):
                out |= {b.epoch for b in node.blobs}
    return out


def header_epochs(root: Path) -> dict[str, int]:
    return {str(p): int.from_bytes(p.read_bytes()[2:6], "big")
            for p in (root / "o").rglob("*") if p.is_file() and not p.name.startswith(".")}


def commit_inside_x4(monkeypatch: pytest.MonkeyPatch, writer: Vault, gen: int) -> list[int]:
    """At the rewriter's first X4 (its map decided, before its put), ``writer`` commits generation
    ``gen``: the rewriter loses the race and takes that generation in too. Returns the heads X4 saw."""
    original = rewriting._Run.decide
    heads: list[int] = []

    async def decide(self: rewriting._Run, head: ChainHead) -> dict[str, object]:
        meta = await original(self, head)
        heads.append(head.gen)
        if len(heads) == 1:
            assert await writer.commit() == gen
        return meta

    monkeypatch.setattr(rewriting._Run, "decide", decide)
    return heads


async def test_writers_beside_a_rewrite_lose_nothing_and_refer_to_no_old_object(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "v"
    files = {"/d/a.bin": os.urandom(MIB + 5000), "/d/b.txt": b"b" * 3000, "/keep.bin": os.urandom(2 * MIB),
             "/d/e/c.bin": os.urandom(40_000)}
    async with await new_vault(root) as v:
        for path, data in files.items():
            await v.put(path, data)
        await v.commit()  # 1
    early = await reopen(root)  # commits while the rewrite copies
    late = await reopen(root)  # opened before the map, commits after it
    rewriter = await reopen(root)
    try:
        await rewriter.rekey(Passphrase.of(PASS), rewrite=True)  # 2: the rekey record
        assert await rewriter.rewriter.pending()
        await early.refresh()
        await early.put("/early.bin", os.urandom(MIB + 100))
        heads = commit_inside_x4(monkeypatch, early, 3)  # wins c/3: the rewriter loses X4 and rewrites 3 too
        done = await rewriter.rewriter.run()
        assert heads == [2, 3] and done.record == 4 and done.epoch == 2
        assert not await rewriter.rewriter.pending()
        files["/early.bin"] = await early.read_bytes("/early.bin")
        for gen in (1, 2, 3):
            assert await ref_epochs(rewriter, gen) == {2}, gen  # every generation reads under epoch 2 alone
        assert 1 in await ref_epochs(rewriter, 3, own=True)  # the writer's own commit kept old subtrees

        # the late writer: a rename of an old file, a change, a new file; then it commits onto the map
        await late.mv("/d/e/c.bin", "/c-moved.bin")
        files["/c-moved.bin"] = files.pop("/d/e/c.bin")
        files["/d/b.txt"] = b"changed" * 500
        await late.put("/d/b.txt", files["/d/b.txt"])
        files["/d/new.bin"] = os.urandom(70_000)
        await late.put("/d/new.bin", files["/d/new.bin"])
        assert await late.commit() == 5
        assert await ref_epochs(late, 5, own=True) == {2}  # re-sealed: nothing of the old epoch
        names = [e.name for e in await late.ls("/d")] + [e.name for e in await late.ls("/")]
        assert not any("conflict" in n for n in names), names
    finally:
        for v in (early, late, rewriter):
            await v.aclose()
    async with await reopen(root) as v:
        await v.prune()
        assert set(header_epochs(root).values()) == {2}
        for path, data in files.items():
            assert await v.read_bytes(path) == data, path
        assert (await v.at(1)).read_bytes  # the old generations still open
        assert await (await v.at(1)).read_bytes("/d/e/c.bin") is not None
        report = await v.verify(full=True)
        assert report.ok, report


async def test_a_tree_deeper_than_the_recursion_limit_is_rewritten(tmp_path: Path) -> None:
    root = tmp_path / "v"
    deep = "/" + "/".join(["d"] * 1200)
    data = os.urandom(5000)
    async with await new_vault(root) as v:
        await v.mkdir(deep, parents=True)
        await v.put(deep + "/leaf", data)
        await v.commit()  # 1
        await v.rekey(Passphrase.of(PASS), rewrite=True)  # 2
        done = await v.rewriter.run()  # 3
        assert done.record == 3 and done.pages >= 1201
        assert await ref_epochs(v, 1) == {2}
        await v.prune()
        assert set(header_epochs(root).values()) == {2}
        assert await (await v.at(1)).read_bytes(deep + "/leaf") == data


async def test_a_prune_beside_the_rewrite_keeps_its_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A prune that marks its candidates while the rewrite's copies are stored and its map is not
    landed yet (nothing refers to them) waits for the rewriter's lease, then finds them in the map."""
    root = tmp_path / "v"
    files = {"/a.bin": os.urandom(MIB + 5000), "/d/b.txt": os.urandom(3000)}
    async with await new_vault(root) as v:
        for path, data in files.items():
            await v.put(path, data)
        await v.commit()  # 1
    rewriter = await reopen(root)
    pruner = await reopen(root)
    marked = asyncio.Event()
    steps: list[str] = []

    async def hook(step: str) -> None:
        steps.append(step)
        if step == "P3":  # its deletion record is written and the leases listed: ours among them
            marked.set()

    try:
        await rewriter.rekey(Passphrase.of(PASS), rewrite=True)  # 2
        original = rewriting._Run.decide
        runs: list[asyncio.Task[PruneReport]] = []

        async def decide(self: rewriting._Run, head: ChainHead) -> dict[str, object]:
            meta = await original(self, head)  # X2 done, W3 checked: the copies wait for the map
            if not runs:
                runs.append(asyncio.create_task(pruner._pruner(poll=0.01, hook=hook).run()))
                await marked.wait()  # the pruner marked the copies (nothing refers to them yet) and waits for us
            return meta

        monkeypatch.setattr(rewriting._Run, "decide", decide)
        assert (await rewriter.rewriter.run()).record == 3
        report = await asyncio.wait_for(runs[0], 60)
        assert steps[:4] == ["P2", "P3", "P4", "P5"] and report.leases_waited == 1 and report.kept_back >= 2
        assert report.deleted == 0  # the old objects were still referenced when it listed its candidates
        again = await pruner.prune()  # the next one finds the old epoch unreferenced
        assert again.deleted >= 2 and set(header_epochs(root).values()) == {2}
        for path, data in files.items():
            assert await (await pruner.at(1)).read_bytes(path) == data
    finally:
        await rewriter.aclose()
        await pruner.aclose()


async def test_forgotten_generations_are_not_rewritten_and_their_objects_go(tmp_path: Path) -> None:
    root = tmp_path / "v"
    gone, kept = os.urandom(MIB + 10), os.urandom(MIB + 20)
    async with await new_vault(root) as v:
        await v.put("/gone.bin", gone)
        await v.commit()  # 1
        await v.rm("/gone.bin")
        await v.put("/kept.bin", kept)
        await v.commit()  # 2
        await v.forget(Rules(last=1))  # 3: forgets 0 and 1
        await v.rekey(Passphrase.of(PASS), rewrite=True)  # 4
        done = await v.rewriter.run()  # 5
        assert done.generations == 3 and done.blobs == 2  # 2, 3, 4 (the same root): kept.bin's chunk and tail
        await v.prune()
        assert set(header_epochs(root).values()) == {2}
        assert await v.read_bytes("/kept.bin") == kept
        with pytest.raises(NotFound):
            await v.at(1)
        report = await v.verify(full=True)
        assert report.ok, report
