"""Prune beside writers: the ``l/`` records and the writer's side (models/prune.py W1–W4).

Object names (all sealed like a commit, kind 3 under the epoch's commit key, the name bound in
the AEAD context, so no record can be replayed under another name or as a commit):

- ``l/w-{lease id, 32 hex}-{seq, 8 hex}`` a writer's lease; each heartbeat creates the next
  ``seq`` and then deletes the previous one, so a live lease never vanishes between beats;
- ``l/d-{record id, 32 hex}-{part, 4 hex}`` a pruner's deletion record: the candidate object
  names (raw 32 bytes each), split into parts that fit one object; part ``fffe`` is its sweep mark
  (P4) and part ``ffff`` its end mark (written after P6), so one LIST of ``l/d-`` shows every
  record and its state;
- ``l/r-{record id}-{16 hex}`` a writer's rescue record: the marked names it will reference.

A finished record stays until the next run has waited for every lease older than its own record
(which includes every lease that existed when the end mark was written); only then is it deleted.
A writer that deduplicated against a candidate during the run therefore always finds the record at
its W3, and one whose lease began after the end mark ignores it (it lists the ended records at W1).

Everything is create-only (``put_if_absent``); commit records ``c/`` and keystores ``k/`` are never
deleted by prune. Expiry needs no clock agreement between machines: a pruner declares a lease
expired when its newest ``seq`` has not changed for ``EXPIRY_FACTOR × ttl`` of the pruner's own
monotonic clock, and a writer treats its lease as lost when its last successful beat *started*
more than ``ttl / 2`` ago (or two beats started more than ``ttl / 2`` apart). A writer that checked
its lease at W3 commits within the other ``ttl / 2`` (the model's TTL-margin assumption).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import struct
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from ...backends.base import get_bounded
from ..errors import ConcurrencyError, IntegrityError, NotFound, ObjectLocked, VaultError
from ..format.canonical import fail
from ..format.commits import peek_epoch
from ..format.namelists import DROP_NAME_LEN, NAME_LEN, pack_names, unpack_names
from ..keys.schedule import KIND_COMMIT
from .store import ObjectStore

log = logging.getLogger(__name__)

LEASE, RECORD, RESCUE = "l/w-", "l/d-", "l/r-"
SWEPT, DONE = 0xFFFE, 0xFFFF  # the reserved parts of a record: its sweep mark (P4) and its end mark (after P6)
DEFAULT_TTL = 120.0  # seconds; a beat every ttl/4
EXPIRY_FACTOR = 1.5  # a pruner waits this many TTLs without a new beat before a lease counts as expired
_MAGIC = {LEASE: b"SVL1", RECORD: b"SVD1", RESCUE: b"SVR1"}
_MAGIC2 = {RECORD: b"SVD2", RESCUE: b"SVR2"}  # name lists of version 2 (with write-only clients' objects)
_PAD_FLOOR = 1024  # as commits: a lease, mark or small record is one 1 KiB object

Clock = Callable[[], float]


def lease_name(lid: str, seq: int) -> str:
    return f"{LEASE}{lid}-{seq:08x}"


def record_name(rid: str, part: int) -> str:
    return f"{RECORD}{rid}-{part:04x}"


def sweep_name(rid: str) -> str:
    return record_name(rid, SWEPT)


def done_name(rid: str) -> str:
    return record_name(rid, DONE)


def rescue_name(rid: str) -> str:
    return f"{RESCUE}{rid}-{secrets.token_hex(8)}"


def parse_name(name: str) -> tuple[str, str, int] | None:
    """``(prefix, id, number)`` of an ``l/`` protocol name, or None (the probe, anything else)."""
    for prefix in (LEASE, RECORD, RESCUE):
        if name.startswith(prefix):
            rid, _, tail = name[len(prefix) :].partition("-")
            if len(rid) != 32 or rid.strip("0123456789abcdef"):
                return None
            try:
                return prefix, rid, int(tail, 16) if tail else 0
            except ValueError:
                return None
    return None


@dataclass
class RecordState:
    parts: list[str] = field(default_factory=list)
    swept: bool = False
    done: bool = False


class Records:
    """Seals, stores and reads the ``l/`` protocol objects of one vault."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.backend = store.backend
        self._parts: dict[str, set[str]] = {}  # record part name -> candidates (create-only: cache forever)

    @property
    def per_part(self) -> int:
        """How many names one deletion-record part holds."""
        return max(1, (self.store.chunk_size - 64) // NAME_LEN)

    async def put(self, name: str, prefix: str, body: bytes, version: int = 1) -> bool:
        stored = (_MAGIC2 if version == 2 else _MAGIC)[prefix] + body
        obj = await asyncio.to_thread(self.store.sealer.seal, KIND_COMMIT, name, stored, pad_floor=_PAD_FLOOR)
        return await self.backend.put_if_absent(name, obj)

    async def get(self, name: str, prefix: str) -> bytes | None:
        """The body of ``name``, authenticated; None if it is gone. IntegrityError if it does not open."""
        got = await self.get_versioned(name, prefix)
        return None if got is None else got[1]

    async def get_versioned(self, name: str, prefix: str) -> tuple[int, bytes] | None:
        """(version, body) of ``name`` (see :func:`pack_names`), as :meth:`get`."""
        try:
            data = await get_bounded(self.backend, name, self.store.max_object)
        except NotFound:
            return None
        sealer = self.store.sealer_for(peek_epoch(data))
        stored = bytes(await asyncio.to_thread(sealer.open, KIND_COMMIT, name, data))
        if stored.startswith(_MAGIC[prefix]):
            return 1, stored[4:]
        if stored.startswith(_MAGIC2.get(prefix, b"-")):
            return 2, stored[4:]
        fail("record kind")

    async def names(self, prefix: str) -> list[str]:
        return [n async for n in self.backend.list(prefix)]

    async def exists(self, name: str) -> bool:
        try:
            await self.backend.head(name)
            return True
        except NotFound:
            return False

    async def candidates(self, rid: str, parts: Iterable[str]) -> set[str]:
        """The union of the named parts of record ``rid`` (parts deleted meanwhile count as empty)."""
        out: set[str] = set()
        for name in parts:
            hit = self._parts.get(name)
            if hit is None:
                got = await self.get_versioned(name, RECORD)
                if got is None:
                    continue
                hit = self._parts[name] = unpack_names(got[1][24:], got[0])
            out |= hit
        return out

    async def write_record(self, rid: str, owner: str, names: set[str], when: int) -> None:
        """P2: the deletion record ``rid`` of the pruner holding lease ``owner``, naming ``names``,
        in parts (part 0 last: a record is open while its part 0 exists); create-only."""
        ordered = sorted(names)
        n = self.per_part
        if any(o.startswith("d/") for o in ordered):
            n = max(1, n * NAME_LEN // DROP_NAME_LEN)
        chunks = [ordered[i : i + n] for i in range(0, len(ordered), n)] or [[]]
        for part in range(len(chunks) - 1, -1, -1):
            version, packed = pack_names(chunks[part])
            body = struct.pack(">Q", when) + bytes.fromhex(owner) + packed
            await self.put(record_name(rid, part), RECORD, body, version)

    async def owner(self, part: str) -> str | None:
        """The lease id of the pruner that wrote record part ``part`` (None: it is gone)."""
        body = await self.get(part, RECORD)
        return None if body is None else body[8:24].hex()

    async def drop_lease(self, lid: str) -> None:
        """Delete an expired lease (its writer, if alive, finds it lapsed and starts again)."""
        for name in await self.names(f"{LEASE}{lid}-"):
            with contextlib.suppress(NotFound, ObjectLocked):
                await self.backend.delete(name)

    async def state(self) -> dict[str, RecordState]:
        """Every deletion record in the store (one LIST of ``l/d-``): its parts and marks."""
        out: dict[str, RecordState] = {}
        for name in await self.names(RECORD):
            parsed = parse_name(name)
            if parsed is None:
                continue
            st = out.setdefault(parsed[1], RecordState())
            if parsed[2] == SWEPT:
                st.swept = True
            elif parsed[2] == DONE:
                st.done = True
            else:
                st.parts.append(name)
        return out

    async def mark(self, name: str) -> None:
        """A sweep or end mark (create-only; a second writer of the same mark finds it there)."""
        await self.put(name, RECORD, struct.pack(">Q", int(time.time())) + bytes(16))

    async def close(self, rid: str) -> None:
        """Delete ended record ``rid``: its rescues, its parts, its marks (the end mark last)."""
        for name in await self.names(f"{RESCUE}{rid}-"):
            with contextlib.suppress(NotFound, ObjectLocked):
                await self.backend.delete(name)
        for name in sorted(await self.names(f"{RECORD}{rid}-")):
            with contextlib.suppress(NotFound, ObjectLocked):
                await self.backend.delete(name)

    async def rescues(self, rid: str) -> set[str]:
        out: set[str] = set()
        for name in await self.names(f"{RESCUE}{rid}-"):
            got = await self.get_versioned(name, RESCUE)
            if got is not None:
                out |= unpack_names(got[1], got[0])
        return out


@dataclass
class _Beat:
    seq: int
    started: float  # the writer's monotonic clock when the request that created ``seq`` started


class Heartbeat:
    """A lease's life, whatever its objects: created (``begin``), renewed on a background task every
    ``ttl / 4`` (each beat a new object), ended (``end``); ``valid`` while no beat came late."""

    ID_HEX = 32  # hex digits of a lease id

    def __init__(self, ttl: float = DEFAULT_TTL, clock: Clock = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._id: str | None = None
        self._beat: _Beat | None = None
        self._broken = False
        self._task: asyncio.Task[None] | None = None
        self._renewing = False

    @property
    def held(self) -> bool:
        return self._id is not None

    @property
    def lease_id(self) -> str | None:
        return self._id

    def valid(self) -> bool:
        """True while the lease may be relied on: no beat gap over ``ttl / 2`` and the last beat recent."""
        return self._beat is not None and not self._broken and self._clock() - self._beat.started < self.ttl / 2

    async def begin(self) -> None:
        """W1: create the lease if none is held (idempotent)."""
        if self._id is not None:
            return
        lid = secrets.token_hex(self.ID_HEX // 2)
        started = self._clock()
        await self._put(lid, 0)
        await self._started()
        self._id, self._beat, self._broken = lid, _Beat(0, started), False
        self._task = asyncio.get_running_loop().create_task(self._heartbeat(lid))

    async def _started(self) -> None:
        """After the first beat, before the lease counts as held."""

    async def _put(self, lid: str, seq: int) -> None:
        raise NotImplementedError

    async def _drop_beat(self, lid: str, seq: int) -> None:
        """A beat superseded by the next one."""

    async def _finish(self, lid: str, seq: int, cut: bool) -> None:
        """The lease ended with beat ``seq`` (``cut``: a renewal was cut mid-way, ``seq + 1`` may exist)."""

    async def _heartbeat(self, lid: str) -> None:
        while True:
            await asyncio.sleep(self.ttl / 4)
            await self.renew(lid)

    async def renew(self, lid: str | None = None) -> None:
        """One heartbeat: the next ``seq`` first, then the previous one deleted."""
        lid = lid or self._id
        beat = self._beat
        if lid is None or beat is None or lid != self._id:
            return
        started = self._clock()
        self._renewing = True
        try:
            await self._put(lid, beat.seq + 1)
        except VaultError as exc:
            log.warning("lease renewal failed: %s", exc.message)
            return
        finally:
            self._renewing = False
        if started - beat.started > self.ttl / 2:
            self._broken = True  # a gap a pruner may have taken for expiry: never commit on this lease
        self._beat = _Beat(beat.seq + 1, started)
        await self._drop_beat(lid, beat.seq)

    async def end(self) -> None:
        """W4 (and abort, close): stop the heartbeat and delete the lease."""
        lid, beat, task = self._id, self._beat, self._task
        self._id, self._beat, self._task = None, None, None
        cut = self._renewing  # a renewal cancelled mid-way may have landed the next beat
        cancelled = False  # our own caller was cancelled meanwhile: the lease is still ended, then that goes on
        if task is not None:
            task.cancel()
            current = asyncio.current_task()
            before = current.cancelling() if current is not None else 0  # a TaskGroup may have asked earlier
            try:
                await task
            except asyncio.CancelledError:
                cancelled = current is not None and current.cancelling() > before
            except Exception as exc:  # a beat that failed oddly (a closed connection): the lease ends anyway
                log.warning("lease heartbeat ended with %s", type(exc).__name__)
        if lid is not None and beat is not None:
            await self._finish(lid, beat.seq, cut)
        if cancelled:
            raise asyncio.CancelledError


class Lease(Heartbeat):
    """A writer's lease (W1): created before its first upload or dedup decision, renewed on a
    background task every ``ttl / 4``, ended at commit, abort or close."""

    def __init__(self, records: Records, ttl: float = DEFAULT_TTL, clock: Clock = time.monotonic) -> None:
        super().__init__(ttl, clock)
        self._records = records
        #: records that had ended before this lease began: none of its decisions can be marked by them
        self.ignored: set[str] = set()
        #: names the deletion records and their end marks seen at the lease's start (-1: none)
        self.records_key = -1

    async def _started(self) -> None:
        """After the first beat: note the deletion records that had ended before it."""
        states = await self._records.state()
        self.ignored = {rid for rid, st in states.items() if st.done}
        seen = sorted((rid, st.done) for rid, st in states.items())
        self.records_key = int.from_bytes(hashlib.sha256(repr(seen).encode()).digest()[:7]) if seen else -1

    async def _put(self, lid: str, seq: int) -> None:
        body = struct.pack(">QQd", seq, int(time.time()), self.ttl)
        await self._records.put(lease_name(lid, seq), LEASE, body)

    async def _drop_beat(self, lid: str, seq: int) -> None:
        """A beat superseded by the next one."""
        with contextlib.suppress(VaultError):
            await self._records.backend.delete(lease_name(lid, seq))

    async def _finish(self, lid: str, seq: int, cut: bool) -> None:
        """The lease ended: its newest beat goes (and the next, if a renewal was cut mid-way)."""
        for s in (seq + 1, seq) if cut else (seq,):
            with contextlib.suppress(NotFound, VaultError):
                await self._records.backend.delete(lease_name(lid, s))


#: the object names a pending commit references that are not necessarily in a kept generation
RefsFn = Callable[[], Awaitable[set[str]]]


async def check_marked(records: Records, lease: Lease, refs: RefsFn, *, wait: float = 600.0,
                       poll: float = 0.5, hook: Callable[[str], Awaitable[None]] | None = None) -> int:
    """W3: before committing, check the pending refs against the deletion records.

    Returns how many marked refs were rescued or restored. One LIST of ``l/d-`` when no record
    applies. Raises LeaseLost (the caller starts again at W1), ConcurrencyError when a marked
    object was deleted before it could be copied (the files that need it must be stored again).
    """
    done = 0
    settled: set[str] = set()  # records whose marked refs this check restored already
    for _round in range(16):
        skip = lease.ignored | settled
        states = {rid: st for rid, st in (await records.state()).items() if rid not in skip}
        if not lease.valid():
            raise LeaseLost("this writer's lease lapsed (stalled past its TTL)")
        if not states:
            return done
        ours = await refs()
        marked = {rid: hits for rid, st in states.items() if (hits := ours & await records.candidates(rid, st.parts))}
        if not marked:
            return done
        restored = False
        for rid, hits in sorted(marked.items()):
            st = states[rid]
            if not (st.swept or st.done):
                version, packed = pack_names(hits)
                await records.put(rescue_name(rid), RESCUE, packed, version)  # W3: the rescue first
                if hook is not None:
                    await hook("rescued")
                # then look again: no sweep mark → the pruner reads the rescue at P5 (it marks first)
                if not await records.exists(sweep_name(rid)) and not await records.exists(done_name(rid)):
                    done += len(hits)
                    continue
            # the pruner may be past P5: copy, wait for its run to end, restore what it deleted
            await _copy_and_restore(records, rid, hits, wait, poll, hook)
            done += len(hits)
            settled.add(rid)
            restored = True  # look again: a newer record may mark what was restored
        if not restored:
            return done
    raise ConcurrencyError("deletion records keep marking this commit's objects; try again")


async def _copy_and_restore(records: Records, rid: str, hits: set[str], wait: float, poll: float,
                            hook: Callable[[str], Awaitable[None]] | None) -> None:
    copies: dict[str, bytes] = {}
    for name in sorted(hits):
        try:
            copies[name] = await get_bounded(records.backend, name, records.store.max_object)
        except NotFound:
            raise ConcurrencyError(f"prune deleted object {name} this commit deduplicated against "
                                   "before it could be rescued: store the affected files again") from None
    if hook is not None:
        await hook("copied")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while not await records.exists(done_name(rid)) and await records.exists(sweep_name(rid)):
        if loop.time() > deadline:
            raise ConcurrencyError("a prune run holds objects this commit needs and did not finish; try again")
        await asyncio.sleep(poll)
    for name, data in copies.items():
        await records.backend.put_if_absent(name, data)  # the same bytes under the same name


class LeaseLost(ConcurrencyError):
    default_message = "this writer's lease lapsed"


__all__ = ["IntegrityError", "Lease", "LeaseLost", "Records", "check_marked"]
