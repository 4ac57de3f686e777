"""Write-only clients through the library on a real local vault: a writer drops, the owner's next
commit takes the drop in; and the attacks — a provider that tampers, replays or withholds records,
a writer that writes outside its folder or refers to objects not its own, a removed writer."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from pathlib import Path

import pytest
from vaulttools import new_vault, reopen

import sigmavault
from sigmavault import IntegrityError, NotFound, Rules, UsageError, Vault, WriterCredential
from sigmavault.engine.catalog.tree import File, split_path
from sigmavault.engine.format.envelope import Sealer
from sigmavault.engine.format.pages import BlobRef
from sigmavault.engine.keys.schedule import KIND_CHUNK, KIND_DATA_PACK, KIND_PAGE_PACK, EpochKeys
from sigmavault.engine.keys.secret import Secret


async def owner_with_writer(root: Path, prefix: str = "/web-1") -> tuple[Vault, WriterCredential]:
    v = await new_vault(root)
    await v.put("/owner/notes.txt", b"the owner's own file")
    await v.commit()
    cred = await v.keys.add_writer("web-1", prefix)
    return v, cred


async def drop(root: Path, cred: WriterCredential, files: dict[str, bytes], dest: str | None = None) -> int:
    async with await sigmavault.open(str(root), writer_credential=cred, dest=dest) as w:
        for path, data in files.items():
            await w.put(path, data)
        return await w.commit()


def record_files(root: Path, cred: WriterCredential) -> list[Path]:
    folder = root / "d" / cred.writer_id.hex()
    return sorted(p for p in folder.iterdir() if p.is_file() and len(p.name) == 16)


async def test_a_drop_lands_where_the_writer_put_it_at_the_owners_next_commit(tmp_path: Path) -> None:
    root = tmp_path / "v"
    v, cred = await owner_with_writer(root)
    try:
        big = bytes(range(256)) * 9000  # two full chunks and a tail: chunks, a data pack and pages
        assert await drop(root, cred, {"/web-1/index.html": b"<h1>hi</h1>", "/web-1/data/blob": big}) == 1
        assert record_files(root, cred)[0].name == f"{1:016x}"
        before = v.generation
        gen = await v.commit()  # nothing pending: the drop alone makes the commit
        assert gen == before + 1
        assert await v.read_bytes("/web-1/index.html") == b"<h1>hi</h1>"
        assert await v.read_bytes("/web-1/data/blob") == big
        assert await v.read_bytes("/owner/notes.txt") == b"the owner's own file"
        drops = v.head_drops()
        assert drops is not None and [(i.seq, i.dest, i.files) for i in drops.ingested] == [(1, b"/web-1", 2)]
        assert await v.commit() == gen  # nothing new: no commit
    finally:
        await v.aclose()
    async with await reopen(root) as again:  # another client reads the ingested files (keys in the refs)
        assert await again.read_bytes("/web-1/data/blob") == big
        report = await again.verify(full=True)
        assert report.ok, report
        events = [e for e in await again.audit() if e.event == "drop"]
        assert [(e.drop, e.dest, e.writer_label) for e in events] == [(1, "/web-1", "web-1")]


async def test_daily_drops_replace_what_they_replaced_and_only_the_owners_own_edits_become_copies(
        tmp_path: Path) -> None:
    root = tmp_path / "v"
    v, cred = await owner_with_writer(root)
    try:
        await drop(root, cred, {"/web-1/a": b"a1", "/web-1/b": b"b1", "/web-1/c": b"c1", "/web-1/d": b"d1"})
        await v.commit()
        await v.put("/web-1/owner-note", b"the owner added this")  # owner edits inside the prefix
        await v.put("/web-1/c", b"c edited by the owner")  # … one the next drop changes too
        await v.commit()
        # day 2: b changed, c changed, d gone, e new, a unchanged
        await drop(root, cred, {"/web-1/a": b"a1", "/web-1/b": b"b2", "/web-1/c": b"c2", "/web-1/e": b"e2"})
        await v.commit()
        names = sorted(s.name for s in await v.ls("/web-1"))
        copies = [n for n in names if "conflict" in n]
        assert len(copies) == 1 and copies[0].startswith("c (conflict"), names
        assert await v.read_bytes(f"/web-1/{copies[0]}") == b"c edited by the owner"
        assert sorted(set(names) - set(copies)) == ["a", "b", "c", "e", "owner-note"]
        assert await v.read_bytes("/web-1/b") == b"b2"
        assert await v.read_bytes("/web-1/c") == b"c2"
        assert await v.read_bytes("/web-1/owner-note") == b"the owner added this"
        # day 3: the same tree again: no change, no conflict copies
        await drop(root, cred, {"/web-1/a": b"a1", "/web-1/b": b"b2", "/web-1/c": b"c2", "/web-1/e": b"e2"})
        await v.commit()
        assert len([n for n in (s.name for s in await v.ls("/web-1")) if "conflict" in n]) == 1
    finally:
        await v.aclose()


async def test_a_writer_cannot_write_outside_its_folder(tmp_path: Path) -> None:
    root = tmp_path / "v"
    v, cred = await owner_with_writer(root)
    await v.aclose()
    with pytest.raises(UsageError, match="only inside /web-1"):
        await sigmavault.open(str(root), writer_credential=cred, dest="/owner")
    async with await sigmavault.open(str(root), writer_credential=cred) as w:
        await w.put("/owner/evil", b"x")
        with pytest.raises(UsageError, match="only inside /web-1"):
            await w.commit()
        w.dropped = True  # nothing to write on the way out
    assert not (root / "d" / cred.writer_id.hex()).exists() or record_files(root, cred) == []


async def test_a_writer_holds_no_key_that_opens_the_owners_objects_or_its_earlier_drops(tmp_path: Path) -> None:
    root = tmp_path / "v"
    v, cred = await owner_with_writer(root)
    await v.put("/owner/secret", b"S" * 5000)
    await v.commit()
    await drop(root, cred, {"/web-1/f": b"F" * 5000})
    await v.aclose()
    owner_objects = [p for p in (root / "o").rglob("*") if p.is_file()]
    drop_objects = [p for p in (root / "d" / cred.writer_id.hex() / "o").rglob("*") if p.is_file()]
    commits = [p for p in (root / "c").iterdir() if p.is_file()]
    assert owner_objects and drop_objects and commits
    secrets = [cred.key.reveal(), cred.signing.reveal()[:32], cred.signing.reveal()[32:]]
    async with await sigmavault.open(str(root), writer_credential=cred) as w:  # run 2 holds its own drop key
        secrets.append(w._keys.data_enc.reveal())
        secrets.append(w._keys.page_enc.reveal())
        w.dropped = True
    tried = 0
    for raw in secrets:
        candidates = [
            EpochKeys.derive(raw, cred.vault_id, cred.epoch, cred.params.prf),  # as an epoch root key
            EpochKeys.for_drop(cred.vault_id, cred.epoch, cred.params.prf, cred.writer_id, cred.key,
                               Secret(raw)),  # as a drop key
        ]
        for keys in candidates:
            sealer = Sealer(keys, cred.params.chunk_size)
            for path in owner_objects + drop_objects:
                name = path.relative_to(root).as_posix()
                for kind in (KIND_CHUNK, KIND_DATA_PACK, KIND_PAGE_PACK):
                    tried += 1
                    with pytest.raises(IntegrityError):
                        sealer.open(kind, name, path.read_bytes())
    assert tried > 50


async def tamper_next(root: Path, cred: WriterCredential, how: str) -> None:
    """Make record 2 hostile: a flipped byte, a replay of record 1, or record 1's bytes re-signed as 2."""
    first = record_files(root, cred)[0]
    second = first.with_name(f"{2:016x}")
    if how == "flip":
        data = bytearray(second.read_bytes())
        data[len(data) // 2] ^= 1
        second.write_bytes(bytes(data))
    elif how == "replay":
        second.write_bytes(first.read_bytes())


@pytest.mark.parametrize("how", ["flip", "replay"])
async def test_a_tampered_or_replayed_record_is_refused_recorded_and_not_damage(tmp_path: Path, how: str) -> None:
    root = tmp_path / "v"
    v, cred = await owner_with_writer(root)
    try:
        await drop(root, cred, {"/web-1/a": b"one"})
        await v.commit()
        if how == "flip":
            await drop(root, cred, {"/web-1/a": b"two"})
        await tamper_next(root, cred, how)
        gen = await v.commit()
        drops = v.head_drops()
        assert drops is not None and [(r.seq, r.writer) for r in drops.refused] == [(2, cred.writer_id)]
        assert await v.read_bytes("/web-1/a") == b"one"
        assert await v.commit() == gen  # said once: the same bytes are not reported again
        with pytest.raises(IntegrityError, match="tampered"):  # the writer will not chain onto it either
            await sigmavault.open(str(root), writer_credential=cred)
        report = await v.verify(full=True)
        assert report.ok, report
        assert [n for n in report.notes if "refused drop 2" in n]
        refused = [e for e in await v.audit() if e.event == "refused"]
        assert [(e.drop, e.writer) for e in refused] == [(2, cred.writer_id.hex())]
    finally:
        await v.aclose()


async def test_a_removed_writers_later_drop_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "v"
    v, cred = await owner_with_writer(root)
    try:
        await drop(root, cred, {"/web-1/a": b"one"})
        await v.commit()
        slot = next(s.id for s in v.keys.slots() if s.type == "writer")
        await v.keys.remove(slot)
        await drop(root, cred, {"/web-1/a": b"after removal"})  # the writer cannot know
        await v.commit()
        drops = v.head_drops()
        assert drops is not None and [(r.seq, r.why) for r in drops.refused] == [(2, "writer removed")]
        assert await v.read_bytes("/web-1/a") == b"one"
    finally:
        await v.aclose()


async def forged_drop(root: Path, cred: WriterCredential, *, dest: str = "/web-1",
                      foreign_ref: str | None = None) -> None:
    """A drop its writer signed but built by hand: another destination than its folder, or a file
    whose blob refers to an object that is not the drop's own."""
    async with await sigmavault.open(str(root), writer_credential=cred) as w:
        w.dest = split_path(dest)  # past open_writer's own check: as a modified client would
        await w.put(f"{dest}/f", b"F" * (1 << 20))  # one full chunk: a plain ref
        if foreign_ref is not None:
            node = await w._tree.lookup(split_path(f"{dest}/f"))
            assert isinstance(node, File) and isinstance(node.blobs[0], BlobRef)
            node.blobs = [dataclasses.replace(node.blobs[0], object_name=foreign_ref)]
        await w.commit()


@pytest.mark.parametrize("attack", ["owner object", "other writer's object", "outside the folder"])
async def test_a_drop_outside_the_writers_folder_or_with_foreign_refs_is_refused(tmp_path: Path,
                                                                                attack: str) -> None:
    root = tmp_path / "v"
    v, cred = await owner_with_writer(root)
    try:
        if attack == "owner object":
            mine = next(p for p in (root / "o").rglob("*") if p.is_file())
            await forged_drop(root, cred, foreign_ref=f"o/{mine.name}")
        elif attack == "other writer's object":
            other = await v.keys.add_writer("web-2", "/web-2")
            await drop(root, other, {"/web-2/x": b"X" * (1 << 20)})
            theirs = next(p for p in (root / "d" / other.writer_id.hex() / "o").rglob("*") if p.is_file())
            await forged_drop(root, cred, foreign_ref=f"d/{other.writer_id.hex()}/o/{theirs.name}")
        else:
            await forged_drop(root, cred, dest="/owner")
        await v.commit()
        drops = v.head_drops()
        assert drops is not None and [(r.writer, r.seq) for r in drops.refused] == [(cred.writer_id, 1)], drops
        with pytest.raises(NotFound):
            await v.stat("/web-1/f")
        assert sorted(s.name for s in await v.ls("/owner")) == ["notes.txt"]
    finally:
        await v.aclose()


async def test_two_owner_clients_ingesting_at_once_take_each_drop_once(tmp_path: Path) -> None:
    root = tmp_path / "v"
    v, cred = await owner_with_writer(root)
    await v.aclose()
    await drop(root, cred, {"/web-1/a": b"one", "/web-1/b": b"two"})
    a, b = await reopen(root), await reopen(root)
    try:
        await a.put("/from-a", b"a")
        await b.put("/from-b", b"b")
        ga, gb = await asyncio.gather(a.commit(), b.commit())
        assert ga != gb
        await a.refresh()
        ingested = []
        for g in range(a.generation + 1):
            c = await a._history.commit_at(g)
            if c.audit.drops is not None:
                ingested += [(i.writer, i.seq) for i in c.audit.drops.ingested]
        assert ingested == [(cred.writer_id, 1)]
        names = sorted(s.name for s in await a.ls("/web-1"))
        assert names == ["a", "b"]
        assert sorted(s.name for s in await a.ls("/")) == ["from-a", "from-b", "owner", "web-1"]
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_withheld_record_is_a_gap_the_later_drops_wait_behind_then_all_are_taken_in_order(
        tmp_path: Path) -> None:
    root = tmp_path / "v"
    v, cred = await owner_with_writer(root)
    try:
        await drop(root, cred, {"/web-1/a": b"1", "/web-1/gone-in-2": b"x"})
        await v.commit()
        await drop(root, cred, {"/web-1/a": b"2", "/web-1/new-in-2": b"y"})
        await drop(root, cred, {"/web-1/a": b"3", "/web-1/new-in-2": b"y", "/web-1/new-in-3": b"z"})
        second = record_files(root, cred)[1]
        held = second.read_bytes()
        second.unlink()  # the provider withholds record 2
        gen = await v.commit()
        assert v.head_drops() is not None and await v.read_bytes("/web-1/a") == b"1"
        notes = (await v.verify()).notes
        assert [n for n in notes if "drop 2 is missing but drops 3" in n], notes
        second.write_bytes(held)  # … and serves it again: 2 then 3, in one commit
        assert await v.commit() == gen + 1
        drops = v.head_drops()
        assert drops is not None and [i.seq for i in drops.ingested] == [2, 3]
        assert sorted(s.name for s in await v.ls("/web-1")) == ["a", "new-in-2", "new-in-3"]
        assert await v.read_bytes("/web-1/a") == b"3"
        assert not [n for n in (await v.verify()).notes if "wait" in n]
    finally:
        await v.aclose()


async def test_records_swapped_by_the_provider_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "v"
    v, cred = await owner_with_writer(root)
    try:
        await drop(root, cred, {"/web-1/a": b"1"})
        await drop(root, cred, {"/web-1/a": b"2"})
        first, second = record_files(root, cred)
        a, b = first.read_bytes(), second.read_bytes()
        first.write_bytes(b)
        second.write_bytes(a)
        await v.commit()
        drops = v.head_drops()
        assert drops is not None and [r.seq for r in drops.refused] == [1] and not drops.ingested
        with pytest.raises(NotFound):
            await v.stat("/web-1/a")
        notes = (await v.verify()).notes
        assert [n for n in notes if "drop 1 was refused" in n], notes
    finally:
        await v.aclose()


async def test_drops_of_a_writer_the_vault_does_not_know_are_never_taken_in(tmp_path: Path) -> None:
    root = tmp_path / "v"
    v, _mine = await owner_with_writer(root)
    other_root = tmp_path / "other"
    other, stranger = await owner_with_writer(other_root)  # a credential of another vault
    await other.aclose()
    try:
        with pytest.raises(UsageError, match="belongs to another vault"):
            await drop(root, stranger, {"/web-1/a": b"planted"})
        await drop(other_root, stranger, {"/web-1/a": b"planted"})  # planted by the provider, then:
        shutil.copytree(other_root / "d", root / "d", dirs_exist_ok=True)
        before = v.generation
        assert await v.commit() == before
        with pytest.raises(NotFound):
            await v.stat("/web-1/a")
        assert [n for n in (await v.verify()).notes if "does not know" in n]
    finally:
        await v.aclose()


async def test_prune_beside_a_pending_drop_deletes_none_of_it_and_after_ingest_none_that_is_used(
        tmp_path: Path) -> None:
    root = tmp_path / "v"
    v, cred = await owner_with_writer(root)
    try:
        await v.put("/owner/old", b"O" * (1 << 20))
        await v.commit()
        await v.rm("/owner/old")  # garbage for prune to find, once forgotten
        await v.commit()
        await v.forget(Rules(last=1))
        await drop(root, cred, {"/web-1/big": b"B" * (3 << 20), "/web-1/small": b"s" * 3000})
        dropped = drop_objects(root, cred)
        report = await v.prune()
        assert report.deleted >= 1  # the owner's garbage went …
        assert drop_objects(root, cred) == dropped and record_files(root, cred)  # … nothing of the drop
        await v.commit()  # taken in after the prune
        await v.forget(Rules(last=1))
        await v.prune()
        assert await v.read_bytes("/web-1/big") == b"B" * (3 << 20)
        report = await v.verify(full=True)
        assert report.ok, report
    finally:
        await v.aclose()


def drop_objects(root: Path, cred: WriterCredential) -> set[str]:
    return {p.name for p in (root / "d" / cred.writer_id.hex() / "o").iterdir()}


async def test_a_writer_dedups_against_its_own_earlier_drops_and_the_owner_reads_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "v"
    v, cred = await owner_with_writer(root)
    try:
        big = bytes(range(256)) * (3 * 4096)  # three full 1 MiB chunks, all alike: one object
        tree = {"/web-1/big": big, "/web-1/small": b"s" * 3000, "/web-1/other": b"o" * 3000}
        await drop(root, cred, tree)
        first = drop_objects(root, cred)
        await drop(root, cred, {**tree, "/web-1/small": b"changed" * 500})
        second = drop_objects(root, cred) - first
        assert len(second) <= 2  # the changed file's pack and the pages' pack: no chunk again
        await v.commit()
        drops = v.head_drops()
        assert drops is not None and [i.seq for i in drops.ingested] == [1, 2]
        assert await v.read_bytes("/web-1/big") == big
        assert await v.read_bytes("/web-1/small") == b"changed" * 500
        report = await v.verify(full=True)
        assert report.ok, report
        # the provider deletes a chunk of drop 1: the next run's HEAD finds it gone and stores it again
        victim = next(n for n in first if (root / "d" / cred.writer_id.hex() / "o" / n).stat().st_size > 1 << 20)
        folder = root / "d" / cred.writer_id.hex() / "o"
        (folder / victim).unlink()
        before = drop_objects(root, cred)
        await drop(root, cred, {**tree, "/web-1/small": b"third" * 500})
        again = drop_objects(root, cred) - before
        assert [n for n in again if (folder / n).stat().st_size > 1 << 20]  # the chunk, stored anew
        await v.commit()
        # another machine with the same credential has no index: it stores everything (an object that
        # merely exists is never a hit, and names are keyed per drop anyway)
        monkeypatch.setenv("SIGMAVAULT_HOME", str(tmp_path / "elsewhere"))
        before = drop_objects(root, cred)
        await drop(root, cred, tree)
        fresh = drop_objects(root, cred) - before
        assert len(fresh) == 3 and [n for n in fresh if (folder / n).stat().st_size > 1 << 20]  # chunk, 2 packs
        await v.commit()
        assert await v.read_bytes("/web-1/small") == b"s" * 3000
    finally:
        await v.aclose()


async def test_a_writer_reads_back_only_what_it_wrote_in_this_run(tmp_path: Path) -> None:
    root = tmp_path / "v"
    v, cred = await owner_with_writer(root)
    await v.aclose()
    await drop(root, cred, {"/web-1/yesterday": b"from the last run"})
    async with await sigmavault.open(str(root), writer_credential=cred) as w:
        await w.put("/web-1/today", b"T" * 5000)
        assert await w.read_bytes("/web-1/today") == b"T" * 5000
        for path in ("/web-1/yesterday", "/owner/notes.txt"):
            with pytest.raises(NotFound):
                await w.read_bytes(path)
        assert [s.name for s in await w.ls("/")] == ["web-1"]
        with pytest.raises(UsageError, match="nothing was written"):
            async with await sigmavault.open(str(root), writer_credential=cred) as empty:
                await empty.commit()


async def test_a_drop_whose_objects_are_withheld_waits_and_is_taken_in_when_they_are_back(tmp_path: Path) -> None:
    root = tmp_path / "v"
    v, cred = await owner_with_writer(root)
    try:
        await drop(root, cred, {"/web-1/a": b"A" * 3000})
        folder = root / "d" / cred.writer_id.hex() / "o"
        held = {p: p.read_bytes() for p in folder.iterdir()}
        for p in held:
            p.unlink()  # the provider withholds the drop's objects (its pages among them)
        gen = await v.commit()
        drops = v.head_drops()
        assert drops is None or not drops.refused  # not refused: it waits
        assert [n for n in (await v.verify()).notes if "wait to be taken in" in n]
        for p, data in held.items():
            p.write_bytes(data)
        assert await v.commit() == gen + 1
        assert await v.read_bytes("/web-1/a") == b"A" * 3000
    finally:
        await v.aclose()


async def test_a_drop_to_a_folder_whose_name_is_not_utf8_lands_there(tmp_path: Path) -> None:
    root = tmp_path / "v"
    v, cred = await owner_with_writer(root)
    try:
        async with await sigmavault.open(str(root), writer_credential=cred, dest=b"/web-1/caf\xe9") as w:
            await w.put(b"/web-1/caf\xe9/r\xe9sum\xe9", b"latin-1 names")
        await v.commit()
        assert await v.read_bytes(b"/web-1/caf\xe9/r\xe9sum\xe9") == b"latin-1 names"
        drops = v.head_drops()
        assert drops is not None and [i.dest for i in drops.ingested] == [b"/web-1/caf\xe9"]
    finally:
        await v.aclose()


async def test_a_writer_notices_its_last_record_hidden_by_the_storage(tmp_path: Path) -> None:
    root = tmp_path / "v"
    v, cred = await owner_with_writer(root)
    await v.aclose()
    await drop(root, cred, {"/web-1/a": b"1"})
    await drop(root, cred, {"/web-1/a": b"2"})
    last = record_files(root, cred)[-1]
    held = last.read_bytes()
    last.unlink()  # the provider hides drop 2 (a rollback of the writer's own chain)
    with pytest.raises(sigmavault.RollbackError, match="drop 2 is gone"):
        await sigmavault.open(str(root), writer_credential=cred)
    last.write_bytes(held)
    assert await drop(root, cred, {"/web-1/a": b"3"}) == 3
