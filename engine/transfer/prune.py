"""``sigmavault prune``: delete what no kept generation references, safely beside writers.

The pruner of models/prune.py, step for step (docs/format.md, "Prune beside writers"):

- P1 read the newest commit, walk every kept generation (a directory whose pages a newer one had
  is not walked again), list ``o/``: candidates are the objects nothing kept references; if there
  are any (or packs to repack), every rewrite map that gives a kept generation another root than
  its own is checked against the generation's own tree while that is still stored (:mod:`.mapcheck`):
  one that does not match stops the run before anything is written or deleted; then the packs whose
  unused share is over ``max_unused`` are repacked (``repack``: the rewrite protocol under the same
  epoch, :meth:`..rewriting.Rewriter.repack`, landing a map), and P1 is done again: the old packs are
  candidates now, and the new map is checked like any other before they can go;
- P2 write the sealed, create-only deletion record D naming them (``l/d-…``), then list the
  leases: those present now may have started before D (``L0``), any later one sees D at its W3;
- P3 wait until every lease of ``L0`` has ended or expired (none: no wait, so a run with no writer
  marks and deletes at once); records left by a pruner whose own lease is gone are closed meanwhile;
- P4 write D's sweep mark (``l/s-…``): from here the candidate set only shrinks;
- P5 re-read the newest commit (walk the generations added since P1) and the rescue records of D,
  and drop everything they reference;
- P6 delete the rest, then write D's end mark. D stays until the next run has waited (its own P3)
  for every lease older than its record — all those that existed when D ended — and then deletes
  it with its rescues: a writer that deduplicated against a candidate during the run finds D at
  its W3 however late it commits.

Commit records ``c/`` and keystores ``k/`` are never candidates (only ``o/`` is listed, and the
write-only clients' ``d/<writer>/o/`` by the protocol of :mod:`.dropgc` woven into these steps). A
directory that does not load stops the run before anything is deleted: a reference we cannot read
is a reference we cannot rule out. ``dry_run`` does P1 only and writes nothing (it counts the
packs a run would repack).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import struct
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol

from ..catalog.pagestore import Catalog
from ..errors import NotFound, ObjectLocked, VaultError
from ..format.commits import ChainHead
from ..repo.history import History
from ..repo.leases import (
    DEFAULT_TTL,
    EXPIRY_FACTOR,
    LEASE,
    Clock,
    Lease,
    Records,
    done_name,
    parse_name,
    sweep_name,
)
from ..repo.reader import BlobReader
from . import dropgc
from .dropgc import DropSource, Listing, WriterLeases
from .mapcheck import MapChecker
from .packrefs import PackUsage, Refs, to_repack

#: progress: (stage, done, total) — stages "scan", "repack", "wait", "delete"
ProgressFn = Callable[[str, int, int], None]
#: test seam: awaited with the name of each step ("repack", "P2", "P3", "P4", "P5", "P6") before it runs
StepHook = Callable[[str], Awaitable[None]]


class Repacked(Protocol):
    """What a repack reports back (:class:`..rewriting.Rewritten`)."""

    @property
    def objects(self) -> Collection[str]:
        """The objects the repack wrote (its new packs)."""


#: moves the live blobs and pages of these packs into new ones and lands the map (the vault's rewriter)
Repack = Callable[[set[str], ProgressFn], Awaitable[Repacked]]


async def kept_generations(history: History, head: ChainHead) -> list[int]:
    """The generations retention keeps, newest first. THE one place retention enters prune:
    every generation up to ``head`` that no ``forget`` recorded in the chain has forgotten."""
    return sorted((g for g in await history.kept_generations() if g <= head.gen), reverse=True)


@dataclass
class PruneReport:
    dry_run: bool
    generation: int = 0
    objects_before: int = 0
    bytes_before: int = 0
    objects_after: int = 0
    bytes_after: int = 0
    candidates: int = 0  # unreferenced at P1
    kept_back: int = 0  # dropped at P5: referenced by a newer commit or a rescue record
    deleted: int = 0
    deleted_bytes: int = 0
    leases_waited: int = 0  # leases older than the deletion record the run waited for
    stale_records_ended: int = 0  # records of killed runs, given their end mark
    records_cleared: int = 0  # records of earlier runs deleted
    locked: int = 0  # unreferenced but under a retention lock (create --lock-days): skipped
    drop_deleted: int = 0  # of ``deleted``, write-only clients' objects (``d/``)
    writers_held: int = 0  # write-only clients whose waiting drops keep all their objects for now
    markers_cleared: int = 0  # write-only clients' gone-markers of objects that are gone
    writer_leases_cleared: int = 0  # write-only clients' ended leases
    packs: int = 0
    packs_over_limit: int = 0  # packs whose unused share exceeds --max-unused (P1, before repacking)
    unused_pack_bytes: int = 0  # their unused bytes: what repacking them frees, about
    repacked: int = 0  # old packs a repack emptied and this run deleted (a dry run: the packs it would repack)
    repacked_bytes: int = 0  # their stored bytes (counted in ``deleted_bytes`` too)
    repack_written: int = 0  # bytes of the new packs the repack wrote
    max_unused: float = 0.05
    maps_checked: int = 0  # generations a rewrite map remaps, compared with their own trees (mapcheck.py)
    candidate_names: list[str] = field(default_factory=list, repr=False)


class _Leases:
    """The pruner's view of the leases: expired when the newest beat has not changed for
    ``EXPIRY_FACTOR × ttl`` of this clock (no clock agreement with the writers needed)."""

    def __init__(self, records: Records, clock: Clock, writers: WriterLeases | None = None) -> None:
        self.records = records
        self.clock = clock
        self.writers = writers  # write-only clients' leases (``writer hex/lease id``), when collecting theirs
        self.seen: dict[str, tuple[int, float, float]] = {}  # lease id -> (seq, first seen, ttl)

    async def poll(self) -> tuple[set[str], set[str]]:
        """The lease ids present, and those of them still live."""
        newest: dict[str, int] = {}
        for name in await self.records.names(LEASE):
            parsed = parse_name(name)
            if parsed is not None:
                newest[parsed[1]] = max(newest.get(parsed[1], -1), parsed[2])
        if self.writers is not None:
            newest.update(await self.writers.newest())
        live = set()
        now = self.clock()
        for lid, seq in newest.items():
            had = self.seen.get(lid)
            if had is None or had[0] != seq:
                had = self.seen[lid] = (seq, now, await self._ttl(lid, seq))
            if now - had[1] < EXPIRY_FACTOR * had[2]:
                live.add(lid)
        return set(newest), live

    async def _ttl(self, lid: str, seq: int) -> float:
        if self.writers is not None and "/" in lid:
            return await self.writers.ttl(lid, seq)
        try:
            body = await self.records.get(f"{LEASE}{lid}-{seq:08x}", LEASE)
        except VaultError:  # not ours (planted, damaged): waited for as long as a default lease
            body = None
        ttl = struct.unpack(">QQd", body)[2] if body is not None and len(body) == 24 else DEFAULT_TTL
        return float(min(max(ttl, 0.01), 86400.0))

    async def drop(self, lid: str) -> None:
        """Delete an expired lease."""
        if self.writers is not None and "/" in lid:
            await self.writers.drop(lid)
        else:
            await self.records.drop_lease(lid)


class Pruner:
    def __init__(
        self,
        *,
        history: History,
        catalog: Catalog,
        records: Records,
        head: ChainHead,
        max_unused: float = 0.05,
        dry_run: bool = False,
        ttl: float | None = None,
        clock: Clock = time.monotonic,
        poll: float = 1.0,
        progress: ProgressFn | None = None,
        hook: StepHook | None = None,
        drops: DropSource | None = None,
        reader: BlobReader | None = None,
        repack: Repack | None = None,
    ) -> None:
        self.history = history
        self.catalog = catalog
        self.records = records
        self.backend = records.backend
        self.head = head
        self.report = PruneReport(dry_run, max_unused=max_unused)
        self.clock = clock
        self.poll = poll
        self.progress = progress or (lambda stage, done, total: None)
        self.hook = hook
        self.lease = Lease(records, clock=clock) if ttl is None else Lease(records, ttl, clock)
        self.sizes: dict[str, int] = {}
        #: write-only clients' objects, when the keyring has writers (dropgc.py)
        self.drops = drops
        self.listing = Listing()
        self.writer_leases = None if drops is None else WriterLeases(self.backend, drops)
        #: compares rewrite maps with the generations' own trees (None: a caller that cannot read content)
        self.maps = None if reader is None else MapChecker(history, catalog, reader)
        self.repack = repack  # None: packs over max_unused are only counted
        self.repacked: set[str] = set()  # the old packs a repack left unreferenced

    async def _step(self, name: str) -> None:
        if self.hook is not None:
            await self.hook(name)

    async def run(self) -> PruneReport:
        r = self.report
        if not r.dry_run:
            await self.lease.begin()  # marks this run live: its records are not a killed run's while it beats
        try:
            # records ended before this run: deleted once every lease older than our record has ended
            states = await self.records.state()
            ended = {rid for rid, st in states.items() if st.done}
            refs, candidates = await self.scan()  # P1
            r.objects_before, r.bytes_before = len(self.sizes), sum(self.sizes.values())
            over = self.pack_stats(refs) if self.repack is not None else set()
            await self.check_maps(candidates | over)  # a map that does not match: nothing written
            if over and r.dry_run:
                r.repacked, r.repacked_bytes = len(over), sum(self.sizes[n] for n in over)
            elif over:
                refs, candidates = await self.repack_packs(over)
            r.candidates = len(candidates)
            r.candidate_names = sorted(candidates)
            if r.dry_run or not candidates:  # a dry run shows what a run nobody raced would leave
                r.objects_after = len(self.sizes) - len(candidates)
                r.bytes_after = sum(self.sizes.values()) - sum(self.sizes[n] for n in candidates)
                running = {await self.records.owner(st.parts[0]) for st in states.values() if not st.done and st.parts}
                if not r.dry_run and running:  # nothing to delete: wait out other runs, end a killed one's record
                    await self.settle(_Leases(self.records, self.clock), {o for o in running if o}, None)
                if not r.dry_run:
                    await self.tidy(set())
                return r  # ended records stay: only a run that leaves its own record deletes them
            rid = secrets.token_hex(16)
            await self._step("P2")
            assert self.lease.lease_id is not None
            await self.records.write_record(rid, self.lease.lease_id, candidates, int(time.time()))
            await dropgc.mark(self.backend, {n for n in candidates if n.startswith("d/")})
            await self.wait_leases(rid)  # P3
            await self.clear(ended)
            await self._step("P4")
            await self.records.mark(sweep_name(rid))
            await self._step("P5")
            keep = await self.recheck(refs, rid, candidates)
            doomed = candidates - keep
            r.kept_back = len(candidates) - len(doomed)
            await self._step("P6")
            deleted = await self.delete(doomed)
            self.count_repacked(self.repacked & deleted)  # not one a writer rescued, nor one under a lock
            r.drop_deleted = sum(1 for n in deleted if n.startswith("d/"))
            await self.records.mark(done_name(rid))  # the run ended: writers waiting on it restore now
            await self.tidy(deleted)
            r.objects_after = len(self.sizes) - r.deleted
            r.bytes_after = sum(self.sizes.values()) - r.deleted_bytes
            return r
        finally:
            await self.lease.end()

    async def check_maps(self, doomed: set[str]) -> None:
        """Every rewrite map against the earlier trees, before ``doomed`` (objects of theirs) may go."""
        if doomed and self.maps is not None:
            await self.maps.check(self.head, await self.history.kept_generations(), self.sizes.__contains__)
            self.report.maps_checked = self.maps.checked

    async def repack_packs(self, over: set[str]) -> tuple[Refs, set[str]]:
        """Repack ``over`` (their live blobs and pages move, a map lands), then P1 again: the old packs
        are candidates now (unless a writer's commit refers to them again), and the map is checked."""
        assert self.repack is not None
        await self._step("repack")
        done = await self.repack(over, self.progress)
        refs, candidates = await self.scan()
        self.repacked = over & candidates
        self.count_repacked(self.repacked)
        self.report.repack_written = sum(self.sizes.get(n, 0) for n in done.objects)
        await self.check_maps(candidates)
        return refs, candidates

    def count_repacked(self, gone: set[str]) -> None:
        self.report.repacked, self.report.repacked_bytes = len(gone), sum(self.sizes[n] for n in gone)

    async def clear(self, ended: set[str]) -> None:
        """Delete the records that had ended before this run began (every older lease has ended)."""
        for rid in sorted(ended):
            await self.records.close(rid)
            self.report.records_cleared += 1

    async def scan(self) -> tuple[Refs, set[str]]:
        """P1: what every kept generation references, and the listed objects nothing references."""
        self.head = await self.history.find_head(self.head)
        self.report.generation = self.head.gen
        self.sizes = {}
        refs = Refs(self.catalog)
        gens = await kept_generations(self.history, self.head)
        for i, gen in enumerate(gens):
            self.progress("scan", i, len(gens))
            await refs.walk(self.catalog.tree(await self.history.commit_at(gen)).root)
        self.progress("scan", len(gens), len(gens))
        names = [n async for n in self.backend.list("o/")]
        if self.drops is not None:
            self.listing = await Listing.read(self.backend)
            names += sorted(self.listing.objects)
        await self.measure(names)
        out = {n for n in self.sizes if n.startswith("o/") and n not in refs.names}
        if self.drops is not None:
            held = await self.drops.held(self.head)
            self.report.writers_held = len(held[1])
            theirs = dropgc.candidates(self.listing, refs.names, self.drops, held)
            out |= theirs & set(self.sizes)
        return refs, out

    async def measure(self, names: list[str]) -> None:
        todo = iter(names)

        async def worker() -> None:
            for name in todo:
                with contextlib.suppress(NotFound):  # deleted while we looked
                    self.sizes[name] = await self.backend.head(name)

        async with asyncio.TaskGroup() as tg:
            for _ in range(max(1, min(8, self.backend.properties.concurrency))):
                tg.create_task(worker())

    def pack_stats(self, refs: Refs) -> set[str]:
        """Count the packs and those over ``max_unused``; returns what to repack: ours over it, and the page
        packs their repack would leave over it (:func:`.packrefs.to_repack`)."""
        r = self.report
        usage = PackUsage.of(refs, self.sizes, r.max_unused)
        r.packs, r.packs_over_limit, r.unused_pack_bytes = usage.packs, len(usage.over), usage.unused
        over = {n for n in usage.over if n.startswith("o/")} if self.repack is not None else set()
        return to_repack(refs, self.sizes, r.max_unused, over) if over else over

    async def wait_leases(self, rid: str) -> None:
        """P3: every lease present after D was written (it may be older than D) ends or expires."""
        watch = _Leases(self.records, self.clock, self.writer_leases)
        present, _ = await watch.poll()
        self.report.leases_waited = len(present - {self.lease.lease_id})
        await self._step("P3")  # the leases that may be older than D are known: later ones see D at W3
        await self.settle(watch, present, rid)

    async def settle(self, watch: _Leases, older: set[str], own_rid: str | None) -> None:
        """Poll the leases until none of ``older`` is live. Meanwhile end the records of pruners
        whose lease is gone or expired (a killed run: its end mark lets waiting writers restore) and
        delete expired leases (a killed writer's or pruner's)."""
        own = self.lease.lease_id
        older = older - {own}
        while True:
            present, live = await watch.poll()
            for lid in present - live - {own}:
                await watch.drop(lid)
            for rid, st in (await self.records.state()).items():
                if rid != own_rid and not st.done and st.parts:
                    owner = await self.records.owner(st.parts[0])
                    if owner is None or owner not in live:
                        await self.records.mark(done_name(rid))
                        self.report.stale_records_ended += 1
            waiting = older & live
            self.progress("wait", len(older) - len(waiting), len(older))
            if not waiting:
                return
            await asyncio.sleep(self.poll)

    async def recheck(self, refs: Refs, rid: str, candidates: set[str]) -> set[str]:
        """P5: what the commits added since P1, the rescue records of D and the writers' drops
        (read again: those written meanwhile) reference."""
        newest = await self.history.find_head(self.head)
        fresh = Refs(self.catalog)
        fresh.seen = refs.seen  # subtrees walked at P1 are known
        for gen in range(newest.gen, self.head.gen, -1):
            await fresh.walk(self.catalog.tree(await self.history.commit_at(gen)).root)
        self.head = newest
        keep = fresh.names | await self.records.rescues(rid)
        if self.drops is not None:
            names, unsure = await self.drops.held(newest)
            self.report.writers_held = max(self.report.writers_held, len(unsure))
            keep |= names | {n for n in candidates if n[2:34] in unsure and n.startswith("d/")}
        return keep

    async def tidy(self, deleted: set[str]) -> None:
        """The writers' markers whose objects are gone, and their ended leases."""
        if self.writer_leases is None:
            return
        self.report.markers_cleared += await dropgc.tidy(self.backend, self.listing, deleted)
        await self.writer_leases.newest()
        self.report.writer_leases_cleared += await self.writer_leases.clear()

    async def delete(self, doomed: set[str]) -> set[str]:
        """P6: one object at a time per worker (a few workers); returns what went."""
        todo = iter(sorted(doomed))
        total = len(doomed)
        gone: set[str] = set()

        async def worker() -> None:
            for name in todo:
                try:
                    await self.backend.delete(name)
                except NotFound:
                    pass
                except ObjectLocked:  # create --lock-days: it goes once its lock expires (a later run)
                    self.report.locked += 1
                    continue
                gone.add(name)
                self.report.deleted += 1
                self.report.deleted_bytes += self.sizes.get(name, 0)
                self.progress("delete", self.report.deleted, total)

        async with asyncio.TaskGroup() as tg:
            for _ in range(max(1, min(8, self.backend.properties.concurrency))):
                tg.create_task(worker())
        return gone


__all__ = ["PruneReport", "Pruner", "Refs", "Repack", "kept_generations"]
