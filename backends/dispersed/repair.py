"""Repair and survey of a dispersed vault's places (``sigmavault repair``, ``sigmavault places``).

Repair is idempotent, resumable and safe beside writers, because every step is create-only or
replaces only what is provably wrong, and it keeps no state of its own:

* **objects**: every object any place lists is surveyed (each place's shard fetched and its tag
  checked). The write with at least k good shards is decoded and encoded again with the same write
  id, which gives byte-identical shards; each place that lacks its shard gets it (create-only),
  and a place whose shard is corrupt or of another write has it deleted and replaced. An object
  no write holds k shards of is left alone and reported: it may be an upload still in progress.
* **commits and keystores** follow ``models/disperse.py``: a reachable place with no copy of
  ``c/{g}`` gets the copy that wins over what repair read (the decided one, else the lowest hash),
  create-only; a losing copy is deleted only where the winner holds a majority without it. A
  keystore is copied only once decided by a majority (a keystore deleted by a key change on most
  places is never spread again). Other records (``l/``) are the protocols' own and left alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...engine.errors import NotFound, VaultError
from ...engine.format import shards as fmt
from .places import Place, Seen, decide

if TYPE_CHECKING:
    from . import DispersedBackend

Progress = Callable[[int, int], None]


@dataclass
class RepairReport:
    objects: int = 0
    shards_written: int = 0
    shards_replaced: int = 0
    records_copied: int = 0
    copies_removed: int = 0
    unrecoverable: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """Nothing was wrong (a second run after a successful one is clean)."""
        return not (
            self.shards_written
            or self.shards_replaced
            or self.records_copied
            or self.copies_removed
            or self.unrecoverable
            or self.unreachable
        )

    def to_json(self) -> dict[str, object]:
        return {
            "objects": self.objects,
            "shards_written": self.shards_written,
            "shards_replaced": self.shards_replaced,
            "records_copied": self.records_copied,
            "copies_removed": self.copies_removed,
            "unrecoverable": self.unrecoverable,
            "unreachable": self.unreachable,
            "clean": self.clean,
        }


async def _listing(place: Place, prefix: str) -> set[str] | None:
    try:
        return {n async for n in place.backend.list(prefix)}
    except (VaultError, OSError):
        return None


async def repair(b: DispersedBackend, on_progress: Progress | None = None) -> RepairReport:
    """Re-create every missing or corrupt shard and commit/keystore replica from the survivors."""
    report = RepairReport()
    keys = b._shard_keys()
    places = [p for p in b.slots if p is not None]
    report.unreachable = [f"place {i + 1}: not given or not recognised" for i, p in enumerate(b.slots) if p is None]
    for p in b.unmarked:  # a place emptied or replaced: it gets its id record first
        try:
            await p.call(p.backend.put_if_absent(fmt.PLACE_NAME, keys.place_record(b.ids[p.index])))
            report.records_copied += 1
        except (VaultError, OSError):
            report.unreachable.append(p.label)
    b.unmarked = []
    objects: set[str] = set()
    records: set[str] = set()
    for p in places:
        shard_names = await _listing(p, "o/")
        others = await _listing(p, "")
        if shard_names is None or others is None:
            report.unreachable.append(p.label)
            continue
        objects |= {keys.object_name(n, p.index) for n in shard_names}
        records |= {n for n in others if n[:2] in ("c/", "k/")}
    total = len(objects) + len(records)
    done = 0
    for name in sorted(records):
        await _repair_record(b, name, report)
        done += 1
        if on_progress:
            on_progress(done, total)
    sem = asyncio.Semaphore(4)

    async def one(name: str) -> None:
        nonlocal done
        async with sem:
            await _repair_object(b, name, report)
        done += 1
        if on_progress:
            on_progress(done, total)

    await asyncio.gather(*(one(n) for n in sorted(objects)))
    report.objects = len(objects)
    return report


async def _repair_object(b: DispersedBackend, name: str, report: RepairReport) -> None:
    keys = b._shard_keys()
    groups, answered = await b._survey(name)
    good = [g for g in groups.values() if len(g) >= b.k]
    if not good:
        report.unrecoverable.append(name)
        return
    group = min(good, key=lambda g: (-len(g), g[0].write_id))
    wid = group[0].write_id
    data = await b.code(fmt.decode, group[: b.k])
    shards = await b.code(fmt.encode, keys, name, data, b.k, b.n, wid)
    have = {s.index for s in group}
    for p in b.slots:
        if p is None or p.index in have or p.index not in answered:
            continue  # fine, or unknown, or unreachable (reported by the listing)
        shard_name = keys.shard_name(name, p.index)
        try:
            if await p.call(p.backend.put_if_absent(shard_name, shards[p.index])):
                report.shards_written += 1
                continue
            await p.call(p.backend.delete(shard_name))  # corrupt, or of another write
            if await p.call(p.backend.put_if_absent(shard_name, shards[p.index])):
                report.shards_replaced += 1
        except (VaultError, OSError):
            report.unreachable.append(p.label)


async def _repair_record(b: DispersedBackend, name: str, report: RepairReport) -> None:
    seen: list[Seen] = await b.replicas.read_all(name)
    copies = [c for c in seen if isinstance(c, bytes)]
    if not copies:
        return
    winner = decide(seen, b.n)
    if name.startswith("k/") and (winner is None or copies.count(winner) * 2 <= b.n):
        return  # a keystore only spreads once a majority holds it
    fill = winner if winner is not None else min(copies, key=lambda c: hashlib.sha256(c).digest())
    for i, copy in enumerate(seen):
        p = b.slots[i]
        if p is None or copy is None:
            continue
        try:
            if not isinstance(copy, bytes):
                if await p.call(p.backend.put_if_absent(name, fill)):
                    report.records_copied += 1
            elif winner is not None and copy != winner:
                others = sum(1 for j, c in enumerate(seen) if j != i and c == winner)
                if others * 2 > b.n:
                    await p.call(p.backend.delete(name))
                    report.copies_removed += 1
        except (VaultError, OSError):
            report.unreachable.append(p.label)


@dataclass
class PlaceStatus:
    place: str
    reachable: bool
    latency_ms: float | None
    objects: int
    bytes: int
    shards_missing: int

    def to_json(self) -> dict[str, object]:
        return {
            "place": self.place,
            "reachable": self.reachable,
            "latency_ms": self.latency_ms,
            "objects": self.objects,
            "bytes": self.bytes,
            "shards_missing": self.shards_missing,
        }


async def status(b: DispersedBackend) -> list[PlaceStatus]:
    """Each given place: reachable, latency of one small read, shards held and their bytes, and
    how many objects (listed anywhere) it holds no shard of."""
    keys = b._shard_keys()
    listed: dict[int, set[str] | None] = {}
    latency: dict[int, float | None] = {}
    for p in b.given:
        start = time.monotonic()
        try:
            await p.backend.get(fmt.PLACE_NAME)
            latency[p.index] = (time.monotonic() - start) * 1000
        except (VaultError, OSError):
            latency[p.index] = None
        names = await _listing(p, "o/")
        listed[p.index] = None if names is None else {keys.object_name(n, p.index) for n in names}
    every: set[str] = set().union(*(s for s in listed.values() if s is not None))
    sem = asyncio.Semaphore(16)

    async def head(p: Place, n: str) -> int:
        async with sem:
            try:
                return await p.backend.head(keys.shard_name(n, p.index))
            except (NotFound, VaultError, OSError):
                return 0

    out = []
    for p in b.given:
        names = listed[p.index]
        size = sum(await asyncio.gather(*(head(p, n) for n in names or ())))
        out.append(
            PlaceStatus(
                p.label,
                names is not None and latency[p.index] is not None,
                latency[p.index],
                len(names or ()),
                size,
                len(every - (names or set())),
            )
        )
    return out
