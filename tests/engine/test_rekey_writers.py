"""Rekey beside writers (docs/format.md, "Rekey beside writers"; models/rekey.py W1–W3 and the ingest).

A writer that uploaded under the old epoch and commits after the rekey reloads the keys (with its
credential: the rekey drew a new KSK) and re-seals what it uploaded; a drop sealed to the old
epoch is taken in re-sealed; a daily drop after that replaces what it replaced without conflict
copies. The order is made to happen: the rekey runs inside the writer's own put of ``c/{g+1}``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from vaulttools import MIB, PASS, new_vault, object_files, reopen

import sigmavault
from sigmavault import Vault
from sigmavault.backends.local import LocalBackend
from sigmavault.engine.catalog.tree import File, Meta
from sigmavault.engine.format.refs import Blob, final_ref
from sigmavault.engine.keys.credentials import Passphrase


async def blobs(v: Vault, path: str) -> list[Blob]:
    node = await v._tree.lookup([p.encode() for p in path.strip("/").split("/")])
    assert isinstance(node, File)
    return list(node.blobs)


async def test_a_writer_that_began_under_the_old_epoch_re_seals_before_committing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "v"
    data = bytes(range(256)) * (6 * MIB // 256 + 1)  # full chunks and a tail in a data pack
    async with await new_vault(root):
        pass
    writer = await reopen(root)
    rekeyer = await reopen(root)
    try:
        await writer.put("/late.bin", data)  # W: uploads under epoch 1
        assert {b.epoch for b in await blobs(writer, "/late.bin")} == {1}
        original = LocalBackend.put_if_absent
        started: list[bool] = []
        done: list[object] = []

        async def put(self: LocalBackend, name: str, obj: bytes) -> bool:
            if name.startswith("c/") and not started:  # W has read the head (W1): now the rekey lands first
                started.append(True)
                done.append(await rekeyer.rekey(Passphrase.of(PASS)))
            return await original(self, name, obj)

        monkeypatch.setattr(LocalBackend, "put_if_absent", put)
        gen = await writer.commit()
        monkeypatch.setattr(LocalBackend, "put_if_absent", original)
        assert done and gen == 2  # the rekey record took generation 1; W lost that race, merged, re-sealed
        assert {b.epoch for b in await blobs(writer, "/late.bin")} == {2}
        assert writer._history.epochs is not None
        assert {(e.epoch, e.retired_at_gen) for e in writer._history.epochs} == {(1, 0), (2, None)}
    finally:
        await writer.aclose()
        await rekeyer.aclose()
    async with await reopen(root) as v:
        c = await v._history.commit_at(2)
        assert c.epoch == 2
        assert await v.read_bytes("/late.bin") == data
        report = await v.verify(full=True)
        assert report.ok, report


async def test_a_drop_sealed_to_the_old_epoch_is_taken_in_re_sealed(tmp_path: Path) -> None:
    root = tmp_path / "v"
    async with await new_vault(root) as v:
        cred = await v.keys.add_writer("web-1", "/web-1")
    assert cred.epoch == 1
    async with await sigmavault.open(str(root), writer_credential=cred) as w:
        await w.put("/web-1/a.bin", b"a" * (MIB + 5000))
        await w.put("/web-1/b.bin", b"b" * 3000)
    async with await reopen(root) as v:
        await v.rekey(Passphrase.of(PASS))
    async with await sigmavault.open(str(root), writer_credential=cred) as w:  # still epoch 1's drop key
        await w.put("/web-1/a.bin", b"a" * (MIB + 5000))
        await w.put("/web-1/b.bin", b"b" * 3000)
        await w.put("/web-1/c.bin", b"c" * 7000)
    async with await reopen(root) as v:
        await v.commit()  # takes both drops in
        for name in ("a.bin", "b.bin", "c.bin"):
            refs = [final_ref(b) for b in await blobs(v, f"/web-1/{name}")]  # committed: every pack stored
            assert refs and all(r.epoch == 2 and r.drop_key is None and r.object_name.startswith("o/") for r in refs)
        assert await v.read_bytes("/web-1/a.bin") == b"a" * (MIB + 5000)
        assert await v.read_bytes("/web-1/c.bin") == b"c" * 7000
    # the next drop changes a file the re-sealed drop brought: replaced, no conflict copy
    async with await sigmavault.open(str(root), writer_credential=cred) as w:
        await w.put("/web-1/a.bin", b"a" * (MIB + 5000))
        await w.put("/web-1/b.bin", b"B" * 3000)
        await w.put("/web-1/c.bin", b"c" * 7000)
    async with await reopen(root) as v:
        await v.commit()
        assert sorted(s.name for s in await v.ls("/web-1")) == ["a.bin", "b.bin", "c.bin"]
        assert await v.read_bytes("/web-1/b.bin") == b"B" * 3000
        assert all(r.epoch == 2 for r in await blobs(v, "/web-1/b.bin"))
        report = await v.verify(full=True)
        assert report.ok, report


async def test_a_writer_that_finishes_first_leaves_the_rekeyer_nothing_to_retire(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "v"
    async with await new_vault(root) as v:
        await v.put("/a.bin", b"a" * 5000)
    writer = await reopen(root)
    rekeyer = await reopen(root)
    try:
        await writer.put("/w.bin", b"w" * (MIB + 10))
        original = LocalBackend.put_if_absent
        fired: list[bool] = []

        async def put(self: LocalBackend, name: str, obj: bytes) -> bool:
            landed = await original(self, name, obj)
            if name.startswith("c/") and not fired:  # the rekey record landed (R3): W commits and finishes R4
                fired.append(True)
                assert await writer.commit() == 3
            return landed

        monkeypatch.setattr(LocalBackend, "put_if_absent", put)
        done = await rekeyer.rekey(Passphrase.of(PASS))
        monkeypatch.setattr(LocalBackend, "put_if_absent", original)
        assert fired and done.record == 2 and done.retired == {1: 1} and done.exposed_through == 1
        assert {b.epoch for b in await blobs(writer, "/w.bin")} == {2}
    finally:
        await writer.aclose()
        await rekeyer.aclose()
    async with await reopen(root) as v:
        assert [(e.epoch, e.state, e.retired_at_gen) for e in v._history.epochs or ()] == [
            (1, "retired", 1), (2, "active", None)]
        assert await v.read_bytes("/w.bin") == b"w" * (MIB + 10)


async def test_what_the_parent_holds_stays_under_its_epoch_and_a_moved_file_is_re_sealed(tmp_path: Path) -> None:
    root = tmp_path / "v"
    async with await new_vault(root) as v:
        await v.put("/d/kept.bin", b"k" * 5000)
        await v.put("/d/moved.bin", b"m" * 5000)
    async with await reopen(root) as v:
        await v.rekey(PASS)
        await v.put("/d/new.bin", b"n" * 5000)  # /d is dirty: kept.bin is in a changed directory
        await v.mkdir("/e")
        await v.mv("/d/moved.bin", "/e/moved.bin")
        await v.commit()
        assert {b.epoch for b in await blobs(v, "/d/kept.bin")} == {1}  # the parent held it there: no copy
        assert {b.epoch for b in await blobs(v, "/d/new.bin")} == {2}
        assert {b.epoch for b in await blobs(v, "/e/moved.bin")} == {2}  # a new path: re-sealed
        assert await v.read_bytes("/e/moved.bin") == b"m" * 5000


def stored_epochs(root: Path, since: set[Path]) -> set[int]:
    """The header epochs of the objects stored since ``since`` (a set of object files)."""
    return {int.from_bytes(p.read_bytes()[2:6], "big") for p in object_files(root) if p not in since}


async def test_a_writer_that_adopted_a_newer_epoch_seals_under_it_from_its_next_write(tmp_path: Path) -> None:
    """Was: a client that had adopted the rekey's head still sealed its next writes under the old
    epoch until its commit re-sealed them, leaving those copies under the retired key in the store
    until a prune (readable by whoever the rekey revoked)."""
    root = tmp_path / "v"
    async with await new_vault(root):
        pass
    async with await reopen(root) as writer:
        async with await reopen(root) as rekeyer:
            await rekeyer.rekey(Passphrase.of(PASS))
        assert await writer.refresh() == 1 and writer._store.epoch == 1  # the rekey record, adopted
        before = set(object_files(root))
        await writer.put("/after.bin", bytes(range(256)) * (MIB // 128 + 7))  # two full chunks and a tail
        assert stored_epochs(root, before) == {2}
        assert await writer.commit() == 2
        assert stored_epochs(root, before) == {2}, "a copy under the retired epoch was stored"


async def test_a_write_run_under_way_keeps_its_epoch_and_one_started_beside_it_too(tmp_path: Path) -> None:
    """The switch waits for a moment with no write run under way: a run that began under the old epoch
    and another started beside it after the rekey was adopted both finish (the commit re-seals them)."""
    root = tmp_path / "v"
    async with await new_vault(root):
        pass
    async with await reopen(root) as writer:
        async with writer.ingest() as first:
            await first.add([b"first.bin"], bytes(2 * MIB), Meta.now(0o644))
            async with await reopen(root) as rekeyer:
                await rekeyer.rekey(Passphrase.of(PASS))
            await writer.refresh()
            await writer.put("/beside.bin", bytes(range(256)) * (MIB // 256 + 3))
            assert writer._store.epoch == 1  # not switched under the first run's feet
        await writer.put("/next.bin", b"x" * (MIB + 1))  # alone now: the switch
        assert writer._store.epoch == 2
        assert await writer.commit() == 2
        for path in ("/first.bin", "/beside.bin", "/next.bin"):
            assert {b.epoch for b in await blobs(writer, path)} == {2}
    async with await reopen(root) as reader:
        assert await reader.read_bytes("/first.bin") == bytes(2 * MIB)
        assert await reader.read_bytes("/next.bin") == b"x" * (MIB + 1)


async def test_a_commit_and_a_write_that_both_switch_epochs_leave_the_write_its_mixer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The order made: a commit's W2 reload waits in its flush while a write starts alone, switches the
    epoch and starts a mixer for it; the commit then finds the switch done and leaves that mixer alone
    (was: it started another, closing the one the write seals with)."""
    root = tmp_path / "v"
    async with await new_vault(root):
        pass
    async with await reopen(root) as writer:
        await writer.put("/early.bin", bytes(range(256)) * (MIB // 256 + 9))  # pending, under epoch 1
        async with await reopen(root) as rekeyer:
            await rekeyer.rekey(Passphrase.of(PASS))
        content = writer._epochs._content
        original, held, go = content.flush, asyncio.Event(), asyncio.Event()

        async def flush() -> None:
            if not held.is_set():  # the commit's reload, first
                held.set()
                await go.wait()
            await original()

        monkeypatch.setattr(content, "flush", flush)
        committing = asyncio.create_task(writer.commit())
        await held.wait()
        async with writer.ingest() as ing:  # alone: switches to epoch 2 and starts its mixer
            assert writer._store.epoch == 2
            go.set()
            assert await committing == 2  # its reload found the switch done
            await ing.add([b"late.bin"], bytes(3 * MIB + 7), Meta.now(0o644))
        assert await writer.commit() == 3
        assert {b.epoch for b in await blobs(writer, "/late.bin")} == {2}
    async with await reopen(root) as reader:
        assert await reader.read_bytes("/late.bin") == bytes(3 * MIB + 7)
