"""Prune collects write-only clients' objects (models/dropgc.py) on a real local vault: what no kept
generation and no pending drop needs goes; a writer never reuses what a pruner marked; a pruner
waits for a writer whose lease it listed; a killed writer's lease expires; the owner's own clients
that refer to a drop's object from an older tree rescue it like any other."""

from __future__ import annotations

import asyncio
import struct
import time
from pathlib import Path
from typing import Any

import pytest
from test_drops_flow import drop, owner_with_writer
from vaulttools import reopen

import sigmavault
from sigmavault import Rules, Vault, WriterCredential
from sigmavault._internal import destroy_vault
from sigmavault.engine.errors import ConcurrencyError
from sigmavault.engine.format import namelists
from sigmavault.engine.repo import leases
from sigmavault.engine.repo.dropleases import WriterLease

BIG = bytes(range(256)) * (2 * 4096)  # two full 1 MiB chunks, alike: one chunk object


def folder(root: Path, cred: WriterCredential, sub: str) -> Path:
    return root / "d" / cred.writer_id.hex() / sub


def names(root: Path, cred: WriterCredential, sub: str) -> set[str]:
    f = folder(root, cred, sub) if sub else root / "d" / cred.writer_id.hex()
    return {p.name for p in f.iterdir() if p.is_file()} if f.is_dir() else set()


def chunks(root: Path, cred: WriterCredential) -> set[str]:
    """The writer's chunk objects (over 1 MiB: the packs and pages are smaller)."""
    f = folder(root, cred, "o")
    return {n for n in names(root, cred, "o") if (f / n).stat().st_size > 1 << 20}


async def two_days(root: Path, v: Vault, cred: WriterCredential) -> set[str]:
    """Drop 1 holds BIG, drop 2 no longer does; both ingested, drop 1's generation forgotten.
    Returns drop 1's objects."""
    await drop(root, cred, {"/web-1/big": BIG, "/web-1/a": b"a" * 3000})
    first = names(root, cred, "o")
    await v.commit()
    await drop(root, cred, {"/web-1/a": b"a2" * 3000})
    await v.commit()
    await v.forget(Rules(last=1))
    return first


async def test_prune_collects_what_no_kept_generation_or_drop_needs_and_the_next_drop_still_merges(
        tmp_path: Path) -> None:
    root = tmp_path / "v"
    v, cred = await owner_with_writer(root)
    try:
        first = await two_days(root, v, cred)
        assert names(root, cred, "l")  # the writers' ended leases, until a prune clears them
        second = names(root, cred, "o") - first
        report = await v.prune()
        left = names(root, cred, "o")
        # drop 1's chunk, pack and pages: nothing kept needs them
        assert report.drop_deleted == len(first) and not first & left
        assert second <= left  # drop 2's blobs are the vault's, its pages the next drop's merge base
        assert report.deleted >= len(first)
        assert not names(root, cred, "g")  # the markers of what went went after it
        assert not names(root, cred, "l") and report.writer_leases_cleared == 2
        assert await v.read_bytes("/web-1/a") == b"a2" * 3000
        # day 3 merges against drop 2 (its pages were kept): the owner's own file there stays
        await v.put("/web-1/owner-note", b"mine")
        await v.commit()
        await drop(root, cred, {"/web-1/a": b"a3" * 3000})
        await v.commit()
        assert sorted(s.name for s in await v.ls("/web-1")) == ["a", "owner-note"]
        assert (await v.verify(full=True)).ok
    finally:
        await v.aclose()


async def test_a_writer_never_reuses_an_object_a_pruner_marked(tmp_path: Path) -> None:
    """Its lease begins after the pruner listed the leases, so the pruner does not wait for it: the
    writer decides to store BIG again (the marker) before the pruner deletes drop 1's chunk, and
    writes its record after. Reusing the marked chunk would leave a drop that never loads."""
    root = tmp_path / "v"
    v, cred = await owner_with_writer(root)
    try:
        await two_days(root, v, cred)
        old = chunks(root, cred)
        assert len(old) == 1
        writer: list[Any] = []

        async def hook(step: str) -> None:
            if step == "P3":  # markers written, leases listed: a writer starts now
                w = await sigmavault.open(str(root), writer_credential=cred)
                writer.append(w)
                await w.put("/web-1/big", BIG)  # the dedup decision, before the pruner's P6

        report = await v._pruner(poll=0.01, hook=hook).run()
        assert report.leases_waited == 0 and not chunks(root, cred) & old  # drop 1's chunk is gone
        await writer[0].commit()  # the record lands after the delete
        await writer[0].aclose()
        await v.commit()
        drops = v.head_drops()
        assert drops is not None and [i.seq for i in drops.ingested] == [3]  # taken in, not waiting
        assert await v.read_bytes("/web-1/big") == BIG
        assert (await v.verify(full=True)).ok
    finally:
        await v.aclose()


async def test_a_pruner_waits_for_a_writer_whose_lease_it_listed_and_keeps_what_its_drop_reuses(
        tmp_path: Path) -> None:
    root = tmp_path / "v"
    v, cred = await owner_with_writer(root)
    try:
        await two_days(root, v, cred)
        old = chunks(root, cred)
        w = await sigmavault.open(str(root), writer_credential=cred)
        await w.put("/web-1/big", BIG)  # lease, then reuse of drop 1's chunk: no marker yet
        listed = asyncio.Event()

        async def hook(step: str) -> None:
            if step == "P3":
                listed.set()

        run = asyncio.get_running_loop().create_task(v._pruner(poll=0.01, hook=hook).run())
        await listed.wait()
        await asyncio.sleep(0.1)
        assert not run.done()  # waiting for the writer's lease
        assert await w.commit() == 3
        await w.aclose()
        report = await run
        assert report.leases_waited == 1 and report.kept_back >= 1
        assert old <= chunks(root, cred)  # the chunk drop 3 reuses stayed
        await v.commit()
        assert await v.read_bytes("/web-1/big") == BIG
        assert (await v.verify(full=True)).ok
        # the marker stays with the kept chunk: the next run stores BIG anew rather than reuse it
        assert old <= names(root, cred, "g")
    finally:
        await v.aclose()


@pytest.mark.parametrize("how", ["killed", "forged"])
async def test_a_killed_writers_lease_expires_and_a_forged_one_counts_as_a_default_lease(
        tmp_path: Path, how: str) -> None:
    root = tmp_path / "v"
    v, cred = await owner_with_writer(root)
    try:
        first = await two_days(root, v, cred)
        if how == "killed":
            lease = WriterLease(v._backend, cred.signing, cred.vault_id, cred.writer_id)
            await lease.begin()  # a writer run that is killed: its lease never ends
            assert lease._task is not None
            lease._task.cancel()
        else:  # the provider plants a lease that claims a day-long TTL, with no valid signature
            fake = folder(root, cred, "l") / f"{'0' * 16}-00000000"
            fake.write_bytes(b"SVWL" + struct.pack(">QQd", 0, 0, 86400.0) + bytes(3373))
        now = [0.0]

        async def hook(step: str) -> None:
            if step == "P3":
                now[0] += 1.5 * leases.DEFAULT_TTL + 1  # past expiry of a default lease, on the pruner's clock

        report = await asyncio.wait_for(v._pruner(poll=0.01, hook=hook, clock=lambda: now[0]).run(), 30)
        assert report.leases_waited == 1
        assert not first & names(root, cred, "o") and not names(root, cred, "l")
    finally:
        await v.aclose()


@pytest.mark.parametrize("step", ["P4", "P6"])
async def test_an_owner_client_that_refers_to_a_drops_object_from_an_older_tree_rescues_it(
        tmp_path: Path, step: str) -> None:
    """The drop's chunk is in the deletion record like the vault's own objects: another owner client
    that moves the file while the pruner waits before its sweep (P4) writes a rescue the pruner
    reads; one that commits after the pruner's re-read (P6) copies the chunk and puts it back."""
    root = tmp_path / "v"
    v, cred = await owner_with_writer(root)
    other = None
    try:
        await drop(root, cred, {"/web-1/big": BIG})
        await v.commit()
        other = mover = await reopen(root)  # sees /web-1/big
        await v.rm("/web-1/big")
        await v.commit()
        await drop(root, cred, {"/web-1/a": b"a" * 3000})  # drop 2: drop 1 is no longer the merge base
        await v.commit()
        await v.forget(Rules(last=1))
        old = chunks(root, cred)
        copied = asyncio.Event()

        async def seen(what: str) -> None:
            if what == "copied":
                copied.set()

        mover._guard.hook = seen
        commit: list[asyncio.Future[int]] = []

        async def hook(at: str) -> None:
            if at == step:  # the pruner is paused here while the other client commits its move
                await mover.mv("/web-1/big", "/kept-big")
                commit.append(asyncio.ensure_future(mover.commit()))
                ready = asyncio.ensure_future(copied.wait())
                await asyncio.wait([commit[0], ready], return_when=asyncio.FIRST_COMPLETED)
                ready.cancel()

        report = await v._pruner(poll=0.01, hook=hook).run()
        await commit[0]
        assert copied.is_set() == (step == "P6")
        assert (report.kept_back >= 1) == (step == "P4") and old <= chunks(root, cred)
        await v.refresh()
        assert await v.read_bytes("/kept-big") == BIG
        assert (await v.verify(full=True)).ok
    finally:
        await v.aclose()
        if other is not None:
            await other.aclose()


async def test_a_writer_that_stalled_past_its_lease_writes_no_record(tmp_path: Path) -> None:
    root = tmp_path / "v"
    v, cred = await owner_with_writer(root)
    await v.aclose()
    w = await sigmavault.open(str(root), writer_credential=cred)
    try:
        await w.put("/web-1/a", b"A" * 3000)
        lease = w._lease
        lease._clock = lambda: time.monotonic() + lease.ttl  # the machine slept past half its TTL
        with pytest.raises(ConcurrencyError, match="stalled past its lease"):
            await w.commit()
    finally:
        await w.aclose()
    assert not [n for n in names(root, cred, "") if len(n) == 16]  # no record: a prune may take what it stored
    assert await drop(root, cred, {"/web-1/a": b"again"}) == 1  # the next run starts over at the same seq


async def test_a_drop_that_waits_for_its_objects_keeps_all_of_its_writers_objects(tmp_path: Path) -> None:
    root = tmp_path / "v"
    v, cred = await owner_with_writer(root)
    try:
        first = await two_days(root, v, cred)
        await drop(root, cred, {"/web-1/c": b"c" * 3000})
        third = names(root, cred, "o") - first
        hidden = {n: (folder(root, cred, "o") / n).read_bytes() for n in third}
        for n in hidden:
            (folder(root, cred, "o") / n).unlink()  # the provider withholds drop 3's objects
        report = await v.prune()
        assert report.writers_held == 1 and first <= names(root, cred, "o")  # nothing of that writer went
        for n, data in hidden.items():
            (folder(root, cred, "o") / n).write_bytes(data)
        await v.commit()  # drop 3 taken in
        report = await v.prune()
        assert report.writers_held == 0 and report.drop_deleted >= 1
        assert await v.read_bytes("/web-1/c") == b"c" * 3000
    finally:
        await v.aclose()


def test_deletion_records_name_write_only_clients_objects_in_version_2_only() -> None:
    own = {"o/" + "ab" * 32, "o/" + "cd" * 32}
    theirs = {"d/" + "11" * 16 + "/o/" + "ef" * 32}
    version, raw = namelists.pack_names(own)
    assert version == 1 and raw == bytes.fromhex("ab" * 32 + "cd" * 32)  # unchanged for vaults without writers
    assert namelists.unpack_names(raw) == own
    version, raw = namelists.pack_names(own | theirs)
    assert version == 2 and len(raw) == 4 + 64 + 48
    assert namelists.unpack_names(raw, 2) == own | theirs
    for bad in (raw[:-1], raw[:3], b"\x00\x00\x00\x09" + raw[4:]):
        try:
            namelists.unpack_names(bad, 2)
        except sigmavault.IntegrityError:
            continue
        raise AssertionError(f"{bad!r} parsed")


async def test_destroy_takes_the_write_only_clients_folders_too(tmp_path: Path) -> None:
    root = tmp_path / "v"
    v, cred = await owner_with_writer(root)
    await v.aclose()
    await drop(root, cred, {"/web-1/a": b"A" * 3000})
    assert names(root, cred, "o") and names(root, cred, "l")
    report = await destroy_vault(str(root))
    assert report.keystores >= 1 and not [p for p in root.rglob("*") if p.is_file()]
