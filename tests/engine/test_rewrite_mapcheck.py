"""Prune checks a rewrite map against the generations' own trees before their old objects go
(engine/transfer/mapcheck.py; docs/format.md, "Rewriting under the new epoch", Trust).

The attack, made real: a co-writer holding the current keys runs ``rekey --rewrite`` whose map gives
generation 1 a forged tree — one file's bytes swapped for another's of the same size (metadata
unchanged), the second blob of a two-blob file swapped, one file removed, one mode changed, one
file added, each its own case — built by the rewriter's own record path with the forged root put in
its map. ``prune`` (library and command, exit 6) refuses
naming the generation and the path, deletes nothing, and the generation's own tree still reads
byte for byte; ``verify --full`` reports the mismatch. An honest rewrite passes and prune deletes
the old objects, and a second prune finds the old trees gone and reads nothing again.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from vaulttools import PASS, new_vault, object_files, reopen

from sigmavault import Vault
from sigmavault.engine import rewriting
from sigmavault.engine.catalog.tree import Dir, File, Meta, Tree, split_path
from sigmavault.engine.content.reader import read_blobs
from sigmavault.engine.errors import IntegrityError
from sigmavault.engine.format.commits import ChainHead
from sigmavault.engine.format.pages import BlobRef
from sigmavault.engine.format.rewritemap import to_json
from sigmavault.engine.keys.credentials import Passphrase
from sigmavault.engine.transfer.mapcheck import MapMismatch, _same_stream

FILES = {"/t/a.bin": os.urandom(70_000), "/t/b.bin": os.urandom(70_000), "/t/big.bin": os.urandom((1 << 20) + 5000),
         "/t/tail.bin": os.urandom(5000), "/t/d/s.txt": b"small\n"}
Mutate = Callable[[Tree], Awaitable[None]]


async def swap_content(t: Tree) -> None:
    a, b = await t.lookup(split_path("/t/a.bin")), await t.lookup(split_path("/t/b.bin"))
    assert isinstance(a, File) and isinstance(b, File) and a.size == b.size
    await t.put(split_path("/t/a.bin"), dataclasses.replace(a, blobs=list(b.blobs)))  # same metadata and size


async def swap_later_blob(t: Tree) -> None:
    """The first chunk of a two-blob file kept, its 5,000-byte tail swapped for another file's."""
    big, tail = await t.lookup(split_path("/t/big.bin")), await t.lookup(split_path("/t/tail.bin"))
    assert isinstance(big, File) and isinstance(tail, File) and len(big.blobs) == 2 and len(tail.blobs) == 1
    assert big.blobs[1].length == tail.size
    await t.put(split_path("/t/big.bin"), dataclasses.replace(big, blobs=[big.blobs[0], tail.blobs[0]]))


async def remove_file(t: Tree) -> None:
    await t.remove(split_path("/t/d/s.txt"))


async def change_mode(t: Tree) -> None:
    b = await t.lookup(split_path("/t/b.bin"))
    assert isinstance(b, File)
    await t.put(split_path("/t/b.bin"), dataclasses.replace(b, meta=dataclasses.replace(b.meta, mode=0o777)))


CASES = {"content": (swap_content, "/t/a.bin (content)"), "removed": (remove_file, "/t/d/s.txt (missing)"),
         "mode": (change_mode, "/t/b.bin (metadata)"),
         "later blob": (swap_later_blob, "/t/big.bin (content)")}


async def history(root: Path) -> None:
    """Generation 1: the files; 2: one more."""
    async with await new_vault(root) as v:
        for path, data in FILES.items():
            await v.put(path, data)
        assert await v.commit() == 1
        await v.put("/t/c.txt", b"later\n")
        assert await v.commit() == 2


async def hostile_rewrite(v: Vault, gen: int, mutate: Mutate) -> None:
    """A co-writer with the current keys: ``rekey --rewrite`` through the rewriter's own record path,
    whose map gives ``gen`` its honestly rewritten tree with ``mutate`` applied."""
    await v.rekey(Passphrase.of(PASS), rewrite=True)
    original = rewriting._Run.decide

    async def decide(self: rewriting._Run, head: ChainHead) -> dict[str, object]:
        await original(self, head)
        c = await v._history.commit_at(gen)
        t = Tree(Dir(Meta(0o755, 0, 0, c.time * 10**9, c.time * 10**9), list(self.roots[gen])), v._catalog.load)
        await mutate(t)
        t.fresh_pages = True
        self.mapped[gen] = await v._catalog.save(t)
        await v._page_pack.flush()
        return {"rewrite": to_json(v._store.epoch, self.mapped)}

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rewriting._Run, "decide", decide)
        await v.rewriter.run()


async def own_bytes(v: Vault, gen: int, path: str, root: tuple[BlobRef, ...] | None = None) -> bytes:
    """A file as generation ``gen``'s own commit root shows it (not the map's), or as ``root`` does."""
    c = await v._history.commit_at(gen)
    t = v._catalog.tree(c if root is None else dataclasses.replace(c, root=root), own=True)
    node = await t.lookup(split_path(path))
    assert isinstance(node, File)
    if node.inline is not None:
        return node.inline
    return b"".join([p async for p in read_blobs(v._reader, node.blobs, 0, 4)])


def cli(root: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMAVAULT_")}
    env.update(SIGMAVAULT_HOME=str(home), SIGMAVAULT_PASSPHRASE=PASS)
    return subprocess.run([sys.executable, "-m", "sigmavault", "--vault", str(root), *args], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("case", sorted(CASES))
async def test_a_forged_map_stops_prune_and_the_old_generation_stays(tmp_path: Path, case: str) -> None:
    root = tmp_path / "v"
    await history(root)
    mutate, where = CASES[case]
    async with await reopen(root) as v:
        await hostile_rewrite(v, 1, mutate)
    before = object_files(root)

    r = cli(root, tmp_path / "home", "prune")  # the command: the integrity exit code, one clear line
    assert r.returncode == 6, r.stderr
    assert "generation 1" in r.stderr and where in r.stderr and "old objects are kept" in r.stderr
    assert object_files(root) == before

    async with await reopen(root) as v:
        with pytest.raises(MapMismatch) as caught:
            await v.prune()
        assert "generation 1 " in caught.value.message and where in caught.value.message
        assert object_files(root) == before, "a refused prune deleted something"
        for path, data in FILES.items():  # the generation's own tree is whole and reads back
            assert await own_bytes(v, 1, path) == data
        report = await v.verify(full=True)
        assert any("generation 1 " in p and where in p for p in report.problems), report.problems


async def test_an_honest_rewrite_passes_the_check_and_prune_deletes_the_old_objects(tmp_path: Path) -> None:
    root = tmp_path / "v"
    await history(root)
    async with await reopen(root) as v:
        await v.rekey(Passphrase.of(PASS), rewrite=True)
        await v.rewriter.run()
        assert not (await v.verify(full=True)).problems
        report = await v.prune()
        assert report.maps_checked == 3  # generations 1-3 (the rekey record 3 keeps 2's root; 0 is empty)
        assert report.deleted
        assert {p.read_bytes()[2:6] for p in object_files(root)} == {(2).to_bytes(4, "big")}, "an old object is left"
        for path, data in FILES.items():
            assert await v.read_bytes(path) == data
        again = await v.prune()  # the own trees are gone: nothing to check, nothing read
        assert again.maps_checked == 0


async def test_a_second_forged_map_after_an_honest_rewrite_and_prune_is_checked_against_the_first(
        tmp_path: Path) -> None:
    """The own tree is gone after the honest rewrite's prune; a later map that remaps generation 1
    would make the first map's objects garbage: it is compared with the first map's tree instead."""
    root = tmp_path / "v"
    await history(root)
    async with await reopen(root) as v:
        await v.rekey(Passphrase.of(PASS), rewrite=True)  # 3, map 4
        await v.rewriter.run()
        assert (await v.prune()).deleted
        await hostile_rewrite(v, 1, swap_content)  # rekey 6, map 7
        before = object_files(root)
        with pytest.raises(MapMismatch, match=r"map of generation 7 shows generation 1 differently from the map "
                                              r"of generation 4 at /t/a\.bin \(content\)"):
            await v.prune()
        assert object_files(root) == before
        first = v._history.maps_of(1)[0]
        assert first[0] == 4 and await own_bytes(v, 1, "/t/a.bin", first[1]) == FILES["/t/a.bin"]


async def test_a_file_the_map_adds_stops_prune(tmp_path: Path) -> None:
    root = tmp_path / "v"
    await history(root)

    async def nothing(t: Tree) -> None:
        await t.put(split_path("/t/new.txt"), File(Meta.now(0o644), 3, inline=b"new"))

    async with await reopen(root) as v:
        await hostile_rewrite(v, 1, nothing)
        before = object_files(root)
        with pytest.raises(IntegrityError, match=r"generation 1 .*/t/new\.txt \(added\)"):
            await v.prune()
        assert object_files(root) == before


@pytest.mark.parametrize(("a", "b", "same"), [
    ([b"ab", b"cd"], [b"a", b"bcd"], True), ([b"abcd"], [b"ab", b"c", b"d"], True), ([], [], True),
    ([b"abc"], [b"ab"], False), ([b"ab"], [b"ab", b"c"], False), ([b"ab", b"cd"], [b"ab", b"ce"], False)])
async def test_two_streams_compare_piece_by_piece_whatever_their_splits(a: list[bytes], b: list[bytes],
                                                                        same: bool) -> None:
    async def stream(pieces: list[bytes]) -> AsyncIterator[bytes]:
        for p in pieces:
            yield p

    assert await _same_stream(stream(a), stream(b)) is same


async def test_restore_own_tree_gets_the_original_back_where_a_forged_map_was_refused(tmp_path: Path) -> None:
    """``restore --at G`` reads through the map (the forged bytes); ``--own-tree`` reads G's own tree."""
    root, home = tmp_path / "v", tmp_path / "home"
    await history(root)
    async with await reopen(root) as v:
        await hostile_rewrite(v, 1, swap_content)
    r = cli(root, home, "verify", "--full")
    assert r.returncode == 6 and "generation 1 " in r.stdout + r.stderr, (r.stdout, r.stderr)
    assert cli(root, home, "restore", "--at", "1", "/t", str(tmp_path / "mapped")).returncode == 0
    assert (tmp_path / "mapped" / "a.bin").read_bytes() == FILES["/t/b.bin"]  # what the forged map shows
    r = cli(root, home, "restore", "--at", "1", "--own-tree", "/t", str(tmp_path / "own"))
    assert r.returncode == 0, r.stderr
    for path, data in FILES.items():
        assert (tmp_path / "own" / path.removeprefix("/t/")).read_bytes() == data
    async with await reopen(root) as v:  # the library's way to it
        assert await (await v.at(1, own=True)).read_bytes("/t/a.bin") == FILES["/t/a.bin"]
        assert await (await v.at(1)).read_bytes("/t/a.bin") == FILES["/t/b.bin"]


async def test_restore_own_tree_after_a_prune_that_took_the_old_objects_is_one_clear_error(tmp_path: Path) -> None:
    root, home = tmp_path / "v", tmp_path / "home"
    await history(root)
    async with await reopen(root) as v:
        await v.rekey(Passphrase.of(PASS), rewrite=True)
        await v.rewriter.run()
        assert (await v.prune()).deleted
    r = cli(root, home, "restore", "--at", "1", "--own-tree", "/t", str(tmp_path / "own"))
    assert r.returncode == 6 and "Traceback" not in r.stderr
    error = r.stderr.strip().splitlines()[-1]
    assert error.startswith("sigmavault: error: generation 1's own tree is not stored whole"), r.stderr
    assert "restore without --own-tree" in error
    assert cli(root, home, "restore", "--at", "1", "/t", str(tmp_path / "mapped")).returncode == 0
    for path, data in FILES.items():
        assert (tmp_path / "mapped" / path.removeprefix("/t/")).read_bytes() == data
