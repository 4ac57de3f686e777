"""Prune beside writers on local disk: each step of models/prune.py, and each mutant's bug as a
scenario that must fail when the step is taken out (the mutant is patched into the real code).

Orders are made, not hoped for: writers and the pruner pause at named steps on events.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prunetools import (
    PASS,
    Gate,
    aborted_writer,
    blind,
    blob,
    check_clean,
    close,
    listing,
    mutant_shows,
    open_vault,
    prune_task,
    settled,
    stepper,
)

import sigmavault
from sigmavault.engine import guard as guard_mod
from sigmavault.engine.errors import ConcurrencyError, UsageError
from sigmavault.engine.repo import leases as leases_mod
from sigmavault.engine.transfer import prune as prune_mod


async def _vault(tmp: Path) -> tuple[str, dict[str, bytes]]:
    url = str(tmp / "v")
    files = {"/keep/a": blob("a", 2 * (1 << 20) + 5000), "/keep/b": b"small file " * 300}
    v = await sigmavault.create(url, passphrase=PASS, kdf="minimum", chunk_size=1 << 20)
    try:
        for path, data in files.items():
            await v.put(path, data)
        await v.commit()
    finally:
        await v.aclose()
    return url, files


async def test_single_run_deletes_garbage_and_keeps_everything(tmp_path: Path) -> None:
    url, files = await _vault(tmp_path)
    await aborted_writer(url, "g1", 3 * (1 << 20) + 777)
    v = await open_vault(url)
    try:
        before = await listing(v)
        r = await v.prune()
        after = await listing(v)
        assert r.candidates == r.deleted >= 4 and r.kept_back == 0 and r.leases_waited == 0
        assert r.objects_after == r.objects_before - r.deleted == len(after["o/"])
        assert r.bytes_before - r.bytes_after == r.deleted_bytes > 3 * (1 << 20)
        # no commit deleted; one added: the run's own record, which audit lists with who ran it
        assert after["c/"][:-1] == before["c/"] and len(after["c/"]) == len(before["c/"]) + 1
        assert after["k/"] == before["k/"] and settled(after["l/"])
        runs = [e for e in await v.audit() if e.event == "prune"]
        assert [(e.counts or {}).get("deleted") for e in runs] == [r.deleted] and runs[0].slot is not None
        again = await v.prune()
        assert again.candidates == again.deleted == 0
    finally:
        await v.aclose()
    await check_clean(url, files)


async def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    url, _ = await _vault(tmp_path)
    await aborted_writer(url, "g1")
    v = await open_vault(url)
    try:
        before = await listing(v)
        r = await v.prune(dry_run=True)
        assert r.dry_run and r.candidates >= 1 and r.deleted == 0
        assert r.objects_after == r.objects_before - r.candidates
        assert await listing(v) == before
    finally:
        await v.aclose()


MUTANTS = [None, "prune-ignores-leases"]


@pytest.mark.parametrize("mutant", MUTANTS)
async def test_prune_waits_for_a_writer_older_than_its_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              mutant: str | None) -> None:
    """P3: a writer that uploaded before the deletion record commits while the pruner waits."""
    if mutant:
        async def no_wait(self: prune_mod.Pruner, rid: str) -> None:
            await self._step("P3")
        monkeypatch.setattr(prune_mod.Pruner, "wait_leases", no_wait)
    url, files = await _vault(tmp_path)
    refused: ConcurrencyError | None = None
    w = await open_vault(url)
    await w.put("/new", blob("new", (1 << 20) + 99))  # W1 lease, W2 uploads: not committed yet
    await w._data_pack.flush()
    waiting = asyncio.Event()
    p = await open_vault(url)
    try:
        task = prune_task(p, progress=lambda stage, done, total: waiting.set() if stage == "wait" and done < total
                          else None)
        await asyncio.wait([task, asyncio.ensure_future(waiting.wait())], return_when=asyncio.FIRST_COMPLETED)
        try:
            await w.commit()  # W3, W4: the lease ends; the pruner (if it waited) goes on
        except ConcurrencyError as exc:
            refused = exc  # the writer's W3 found its uploads deleted under its lease: it refuses
        else:
            refused = None
        r = await task
    finally:
        await close(w, p)
    if await mutant_shows(url, mutant, refused):
        return
    assert r.leases_waited == 1 and r.deleted == 0
    await check_clean(url, {**files, "/new": blob("new", (1 << 20) + 99)})


@pytest.mark.parametrize("mutant", [None, "writer-skips-rescue", "prune-ignores-rescues"])
async def test_writer_rescues_a_marked_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              mutant: str | None) -> None:
    """W3: a writer that started after the record dedups against a candidate, rescues it before the
    sweep mark, and commits after the pruner's last read of the head."""
    if mutant == "writer-skips-rescue":
        async def skip(*args: object, **kwargs: object) -> int:
            return 0
        monkeypatch.setattr(guard_mod, "check_marked", skip)
    if mutant == "prune-ignores-rescues":
        async def none(self: leases_mod.Records, rid: str) -> set[str]:
            return set()
        monkeypatch.setattr(leases_mod.Records, "rescues", none)
    url, files = await _vault(tmp_path)
    await aborted_writer(url, "y")  # y: a full chunk nothing references
    p3 = Gate()
    p = await open_vault(url)
    w = await open_vault(url)
    checked = Gate()
    w._guard.hook = stepper({"checked": checked})
    try:
        task = prune_task(p, hook=stepper({"P3": p3}))
        await p3.reached.wait()  # D written, its older leases listed: none
        await w.put("/dedup", blob("y"))  # W1 after D, W2: y is present, a dedup hit
        commit = asyncio.ensure_future(w.commit())
        await checked.reached.wait()  # W3 done (rescue written), c/ not yet written
        p3.go.set()
        r = await task  # P4, P5 (head has no new commit), P6
        checked.go.set()
        await commit
    finally:
        await close(w, p)
    if await mutant_shows(url, mutant):
        return
    assert r.kept_back == 1 and r.deleted == r.candidates - 1
    await check_clean(url, {**files, "/dedup": blob("y")})


@pytest.mark.parametrize("mutant", [None, "prune-skips-recheck"])
async def test_prune_rereads_the_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mutant: str | None) -> None:
    """P5: a writer that committed between P1 and D (no record to see) keeps its dedup hit."""
    if mutant:
        async def rescues_only(self: prune_mod.Pruner, refs: object, rid: str, candidates: object) -> set[str]:
            return await self.records.rescues(rid)
        monkeypatch.setattr(prune_mod.Pruner, "recheck", rescues_only)
    url, files = await _vault(tmp_path)
    await aborted_writer(url, "y")
    p2 = Gate()
    p = await open_vault(url)
    try:
        task = prune_task(p, hook=stepper({"P2": p2}))
        await p2.reached.wait()  # P1 done: y is a candidate
        w = await open_vault(url)
        await w.put("/dedup", blob("y"))
        await w.commit()  # no deletion record yet: nothing to rescue
        await w.aclose()
        p2.go.set()
        r = await task
    finally:
        await close(p)
    if await mutant_shows(url, mutant):
        return
    assert r.kept_back == 1
    await check_clean(url, {**files, "/dedup": blob("y")})


@pytest.mark.parametrize("mutant", [None, "writer-trusts-rescue-after-sweep"])
async def test_writer_after_the_sweep_copies_and_restores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          mutant: str | None) -> None:
    """W3 after P5: the sweep mark is there, so the rescue may be too late: the writer copies the
    object, waits for the run to end, and restores it if the pruner deleted it."""
    url, files = await _vault(tmp_path)
    await aborted_writer(url, "y")
    p6 = Gate()
    p = await open_vault(url)
    w = await open_vault(url)
    copied = Gate()
    copied.go.set()  # only a signal: the copy is taken, the writer waits for the run
    w._guard.hook = stepper({"copied": copied})
    if mutant:  # this writer does not look at the sweep and end marks: it trusts its rescue
        blind(w._guard.records)
    try:
        task = prune_task(p, hook=stepper({"P6": p6}))
        await p6.reached.wait()  # P5 read the rescues: none
        await w.put("/dedup", blob("y"))
        commit = asyncio.ensure_future(w.commit())
        if not mutant:
            await copied.reached.wait()
        else:
            await asyncio.wait([commit])
        p6.go.set()
        r = await task
        await commit
    finally:
        await close(w, p)
    if await mutant_shows(url, mutant):
        return
    assert r.kept_back == 0 and r.deleted == r.candidates  # the pruner did delete y; the writer put it back
    await check_clean(url, {**files, "/dedup": blob("y")})


@pytest.mark.parametrize("mutant", [None, "writer-ignores-expired-lease"])
async def test_a_lapsed_lease_never_commits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            mutant: str | None) -> None:
    """A writer stalled past its TTL: the pruner takes the lease for expired and deletes its uploads;
    the writer finds its lease lapsed at W3, starts again and refuses to commit the lost objects."""
    if mutant:
        monkeypatch.setattr(leases_mod.Lease, "valid", lambda self: True)
    url, files = await _vault(tmp_path)
    now = {"w": 0.0, "p": 0.0}
    w = await open_vault(url)
    w._guard.lease = leases_mod.Lease(w._guard.records, 10.0, clock=lambda: now["w"])
    await w.put("/stalled", blob("stalled"))
    await w._data_pack.flush()
    p = await open_vault(url)
    try:
        def progress(stage: str, done: int, total: int) -> None:
            if stage == "wait":
                now["p"] += 20.0  # the writer's beat never changes: after 1.5 TTL it is expired
        r = await p._pruner(poll=0.01, clock=lambda: now["p"], progress=progress).run()
        assert r.leases_waited == 1 and r.deleted >= 1
        await aborted_writer(url, "more")  # a second run: it waits out the lapsed lease again, then
        r = await p._pruner(poll=0.01, clock=lambda: now["p"], progress=progress).run()
        assert r.records_cleared == 1  # deletes the first run's record: nothing marks /stalled any more
        now["w"] += 20.0  # the writer's own clock: its last beat started over TTL/2 ago
        if mutant:
            await w.commit()
        else:
            with pytest.raises(ConcurrencyError, match="deleted by prune"):
                await w.commit()
    finally:
        await close(w, p)
    if await mutant_shows(url, mutant):
        return
    await check_clean(url, files)


async def test_a_dedup_row_of_a_pruned_object_is_looked_up_again(tmp_path: Path) -> None:
    """This device uploaded y, removed the file before committing (its cache still lists y as
    committed), prune deleted y: storing the same bytes again uploads y again, never refers to nothing."""
    url, files = await _vault(tmp_path)
    v = await open_vault(url)
    try:
        await v.put("/gone", blob("y"))
        await v.rm("/gone")
        await v.commit()  # the dedup index now trusts y without a look
        r = await v.prune()
        assert r.deleted >= 1
        await v.put("/again", blob("y"))  # a new lease: the index looks its rows up again
        await v.commit()
    finally:
        await close(v)
    await check_clean(url, {**files, "/again": blob("y")})


async def test_prune_refuses_over_pending_edits(tmp_path: Path) -> None:
    url, files = await _vault(tmp_path)
    v = await open_vault(url)
    try:
        await v.put("/pending", blob("pending"))
        with pytest.raises(UsageError, match="commit the pending changes"):
            await v.prune()
        await v.commit()
        assert (await v.prune()).deleted == 0
    finally:
        await close(v)
    await check_clean(url, {**files, "/pending": blob("pending")})


async def test_packs_with_dead_members_are_repacked(tmp_path: Path) -> None:
    """A file removed before the commit leaves a dead member between live ones in a data pack: a
    prune under a limit above its unused share leaves it; one under a lower limit repacks it (its
    live members move into a new pack, a map lands) and deletes it, and the files read back whole."""
    url, files = await _vault(tmp_path)
    v = await open_vault(url)
    try:
        for name in ("one", "two", "three"):
            await v.put(f"/p/{name}", blob(name, 40_000))
        await v.rm("/p/two")
        await v.commit()
        r = await v.prune(max_unused=0.5)
        assert r.packs_over_limit == 0 and r.repacked == 0 and r.deleted == 0
        r = await v.prune(max_unused=0.01)
        assert r.packs_over_limit == 1 and 40_000 <= r.unused_pack_bytes < 41_000
        assert r.repacked == 1 and r.repack_written > 0 and r.deleted >= 1
        assert (await v.prune(max_unused=0.01)).packs_over_limit == 0
    finally:
        await close(v)
    await check_clean(url, {**files, "/p/one": blob("one", 40_000), "/p/three": blob("three", 40_000)})


async def test_forgotten_generations_through_the_retention_seam(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Until ``forget`` lands, a test marks every generation but the head forgotten through
    ``kept_generations``: an overwritten file's old chunk is garbage. A writer that dedups against
    it while prune runs rescues it; without the writer it is deleted, and the head stays whole."""
    async def head_only(history: object, head: prune_mod.ChainHead) -> list[int]:
        return [head.gen]
    monkeypatch.setattr(prune_mod, "kept_generations", head_only)
    url, files = await _vault(tmp_path)
    v = await open_vault(url)
    try:
        await v.put("/f", blob("v1"))
        await v.commit()
        await v.put("/f", blob("v2"))  # generation 1's chunk of /f is referenced only by it now
        await v.commit()
    finally:
        await close(v)
    p3, checked = Gate(), Gate()
    p, w = await open_vault(url), await open_vault(url)
    w._guard.hook = stepper({"checked": checked})
    try:
        task = prune_task(p, hook=stepper({"P3": p3}))
        await p3.reached.wait()
        await w.put("/again", blob("v1"))  # this device's index knows the chunk as committed: a dedup hit
        commit = asyncio.ensure_future(w.commit())
        await checked.reached.wait()  # the rescue is written
        p3.go.set()
        r = await task
        checked.go.set()
        await commit
        assert r.kept_back == 1
        assert await w.read_bytes("/again") == blob("v1") and await w.read_bytes("/f") == blob("v2")
        await w.put("/f", b"short now")  # v2's chunk becomes garbage of a forgotten generation too
        await w.commit()
        r = await p._pruner(poll=0.01).run()
        assert r.deleted >= 1
    finally:
        await close(w, p)
    v = await open_vault(url)
    try:
        for path, data in {**files, "/again": blob("v1"), "/f": b"short now"}.items():
            assert await v.read_bytes(path) == data, path
    finally:
        await close(v)
