"""A backend that disperses one vault k-of-n over n other backends (issue 12; docs/format.md).

Sealed objects (``o/`` names: chunks, data packs, page packs) are erasure-coded into n shards
(:mod:`sigmavault.engine.format.shards`), shard i stored on place i under a keyed name; any k
rebuild the object. Everything else (commits ``c/``, keystores ``k/``, ``l/`` and ``s/`` records)
is replicated whole to every place and decided by the majority rule of ``models/disperse.py``
(:mod:`.places`). ``k/`` is readable before any key is known, so a vault opens through this
backend; :meth:`DispersedBackend.configure` then hands it the shard keys and the layout (which
place holds which index, from each place's tagged id record), and only then are objects served.

Reads ask the k fastest places for shards, skip a shard whose tag fails, and ask another place
when one fails or is slower than the hedge delay. A ranged ``get`` decodes the whole object (the
shard tags cover whole shards) and keeps the last two decoded objects for the next range. Writes
succeed when a write quorum of places (default max(k, ⌊n/2⌋+1)) took their shard; a put returns
then, while the other places' uploads go on (:data:`STRAGGLERS` objects at most), and every record
but a lease (a commit above all) is written only after all of them have answered (:meth:`settle`),
so a commit finds each object on every place that took it, as if each put had waited. Coding and
tag checks run on the backend's own threads (zfec and the MACs release the GIL), never on the event loop
nor queued behind the places' blocking writes in the loop's default executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ...engine.errors import BackendUnavailable, IntegrityError, NotFound, UsageError, VaultError
from ...engine.format import shards as fmt
from ..base import Backend, Properties, check_name, check_prefix
from .places import Place, Replicas, finish, first_quorum, names, reachable

HEDGE_DELAY = 0.5  # seconds before a slow shard read is also asked of another place
_CACHE = 2
STRAGGLERS = 16  # objects whose uploads to the places past the write quorum may still run
Shards = list[fmt.Shard]
Groups = dict[bytes, Shards]
T = TypeVar("T")


def default_quorum(k: int, n: int) -> int:
    return max(k, n // 2 + 1)


def _copy_and_encode(
    keys: fmt.ShardKeys, name: str, given: bytes | bytearray | memoryview, k: int, n: int
) -> tuple[bytes, list[bytes]]:
    """One thread hop per object: a copy the caller may not reuse (``bytes`` is kept as is) and the shards."""
    data = given if isinstance(given, bytes) else bytes(given)
    return data, fmt.encode(keys, name, data, k, n)


class DispersedBackend:
    """n places, k needed. Construct with the places in any order; :meth:`configure` before objects."""

    def __init__(
        self,
        backends: Sequence[Backend],
        needed: int | None = None,
        count: int | None = None,
        write_quorum: int | None = None,
        hedge_delay: float = HEDGE_DELAY,
    ) -> None:
        if not backends:
            raise UsageError("a dispersed vault needs places")
        self.given = [Place(b, i) for i, b in enumerate(backends)]
        self.slots: list[Place | None] = []
        self.replicas = Replicas(self.slots, 1)
        self.keys: fmt.ShardKeys | None = None
        self.hedge_delay = hedge_delay
        self._wanted_quorum = write_quorum
        self.unmarked: list[Place] = []
        self.on_notice: Callable[[str], None] | None = None
        self.state_id: str | None = None
        self.ids: tuple[bytes, ...] = ()
        self._decoded: OrderedDict[str, bytes] = OrderedDict()
        self._coders: ThreadPoolExecutor | None = None
        self._rest: dict[str, asyncio.Future[None]] = {}  # object name → its uploads past the quorum
        #: called when a record write starts waiting for those uploads (tests order on it)
        self.on_settle: Callable[[], None] | None = None
        # until configure() knows the layout, the places given are all there is (k/ reads only)
        self._layout(len(backends) if needed is None else needed, len(backends) if count is None else count)

    def _layout(self, needed: int, n: int) -> None:
        try:
            fmt.check_layout(needed, n)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if len(self.given) > n:
            raise UsageError(f"{len(self.given)} places given for a vault over {n}")
        quorum = default_quorum(needed, n) if self._wanted_quorum is None else self._wanted_quorum
        if not needed <= quorum <= n:
            raise UsageError(f"the write quorum must be from {needed} to {n} places (got {quorum})")
        self.k, self.n, self.quorum = needed, n, quorum
        self.slots[:] = [*self.given, *([None] * (n - len(self.given)))]
        self.replicas.n = n

    # -- layout -------------------------------------------------------------------------------

    @property
    def description(self) -> str:
        """Names the vault once known (``state_id``: this device keeps one state whichever places, in
        whatever order, the user names), else the places given."""
        if self.state_id is not None:
            return f"dispersed:{self.state_id}"
        return f"dispersed {self.k}-of-{self.n}: " + ", ".join(sorted(p.backend.description for p in self.given))

    @property
    def properties(self) -> Properties:
        return Properties(
            concurrency=max(p.backend.properties.concurrency for p in self.given),
            atomic_create=all(p.backend.properties.atomic_create for p in self.given),
            persistent=all(p.backend.properties.persistent for p in self.given),
        )

    async def mark_places(self, keys: fmt.ShardKeys, ids: Sequence[bytes]) -> None:
        """At create: write each given place's id record (place i gets ``ids[i]``), then configure."""
        for place, place_id in zip(self.given, ids, strict=False):
            record = keys.place_record(place_id)
            if not await place.backend.put_if_absent(fmt.PLACE_NAME, record):
                if await place.backend.get(fmt.PLACE_NAME) != record:
                    raise UsageError(f"{place.backend.description} already belongs to another dispersed vault")
        await self.configure(keys, ids)

    async def configure(self, keys: fmt.ShardKeys, ids: Sequence[bytes], needed: int | None = None) -> None:
        """Learn the shard keys, the layout (``needed`` of ``len(ids)``, from the vault's authenticated
        parameters) and which given place holds which index (from its tagged id record)."""
        if len(set(ids)) != len(ids):
            raise IntegrityError(IntegrityError.GENERIC)
        self._layout(self.k if needed is None else needed, len(ids))
        found: list[int | None] = []
        for place in self.given:
            try:
                found.append(ids.index(keys.place_id_of(await place.call(place.backend.get(fmt.PLACE_NAME)))))
            except ValueError:
                raise IntegrityError(f"{place.backend.description} holds the id of no place of this vault") from None
            except IntegrityError:
                raise IntegrityError(f"{place.backend.description}: its place record fails its check") from None
            except (NotFound, VaultError, OSError):
                found.append(None)  # unreachable or emptied: it may take the one index left over
        known = [i for i in found if i is not None]
        if len(known) != len(set(known)):
            raise IntegrityError(
                "two of the places given claim to be the same place: "
                "one was copied onto another; name each place of the vault once"
            )
        left = [i for i in range(self.n) if i not in known]
        self.unmarked = []
        if found.count(None) == 1 and len(left) >= 1 and len(self.given) == self.n:
            self.unmarked = [self.given[found.index(None)]]  # emptied or new: repair writes its record
            found[found.index(None)] = left[0]
        slots: list[Place | None] = [None] * self.n
        for place, index in zip(self.given, found, strict=True):
            if index is not None:
                place.index = index
                slots[index] = place
        self.slots[:] = slots
        self.keys = keys
        self.ids = tuple(ids)

    def _shard_keys(self) -> fmt.ShardKeys:
        if self.keys is None:
            raise UsageError("the dispersed backend has no shard keys yet (configure it after unlock)")
        return self.keys

    async def code(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn`` (zfec coding, shard tags: they release the GIL) on the backend's own threads, so
        it never queues behind the places' blocking writes (fsync) in the loop's default executor."""
        if self._coders is None:
            self._coders = ThreadPoolExecutor(max(2, os.cpu_count() or 2), thread_name_prefix="sigmavault-coder")
        return await asyncio.get_running_loop().run_in_executor(self._coders, functools.partial(fn, *args))

    def degraded(self) -> list[str]:
        """The places that failed, were corrupt or are missing so far (for one warning line)."""
        out = [p.label + ": its id record is missing (emptied or new place)" for p in self.unmarked]
        out += [
            p.label + f": {p.problem}" for p in self.slots if p is not None and p.problem and p not in self.unmarked
        ]
        out += [f"place {i + 1}: not given or not recognised" for i, p in enumerate(self.slots) if p is None]
        return out

    # -- the Backend protocol -----------------------------------------------------------------

    async def put_if_absent(self, name: str, data: bytes | bytearray | memoryview) -> bool:
        check_name(name)
        if name.startswith("o/"):
            await self.settle(name)
            return await self._put_object(name, data)
        if name == fmt.PLACE_NAME:
            raise UsageError(f"{name} is the dispersed backend's own record")
        if not name.startswith("l/"):  # a lease's beat references nothing and must not wait
            await self.settle()
        return await self.replicas.put_if_absent(name, bytes(data))

    async def settle(self, name: str | None = None) -> None:
        """Wait until every place asked has answered for the objects already put (or for ``name``):
        the uploads a put left running past the write quorum. A place that failed is marked, as
        when a put waited for it (the warning names it, repair fills it)."""
        rest = list(self._rest.values()) if name is None else [self._rest[name]] if name in self._rest else []
        if rest:
            if name is None and self.on_settle is not None:
                self.on_settle()
            await asyncio.wait(rest)

    async def get(self, name: str, start: int = 0, end: int | None = None) -> bytes:
        check_name(name)
        if name.startswith("o/"):
            data = await self._get_object(name)
        else:
            data = await self.replicas.get(name)
        return data[start:end]

    async def head(self, name: str) -> int:
        """An object's length from its shard headers (28-byte ranged reads; a hint, as a listing is:
        a write with k places agreeing), never a decode; a record's from its decided copy."""
        check_name(name)
        if not name.startswith("o/"):
            return len(await self.replicas.get(name))
        if name in self._decoded:
            return len(self._decoded[name])
        keys = self._shard_keys()
        places = reachable(self.slots, self.k)
        got = await asyncio.gather(
            *(p.call(p.backend.get(keys.shard_name(name, p.index), 0, fmt.HDR)) for p in places),
            return_exceptions=True,
        )
        votes: dict[bytes, int] = {}
        for p, hdr in zip(places, got, strict=True):
            if (
                isinstance(hdr, bytes)
                and len(hdr) == fmt.HDR
                and tuple(hdr[:4]) == (fmt.FORMAT, self.k, self.n, p.index)
            ):
                votes[hdr[4:]] = votes.get(hdr[4:], 0) + 1
        for key, count in votes.items():
            if count >= self.k:
                return int.from_bytes(key[:8], "big")
        if sum(isinstance(g, NotFound) for g in got) > self.n - self.k:
            raise NotFound(f"{name} not found")
        raise BackendUnavailable(f"cannot tell the size of {name}: fewer than {self.k} places agree")

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        check_prefix(prefix)
        seen: set[str] = set()
        for place in self.slots:
            if place is None or not place.up():
                continue
            try:
                async for found in place.backend.list(prefix if not prefix.startswith("o/") else "o/"):
                    if found.startswith("o/"):
                        found = self._shard_keys().object_name(found, place.index)
                    if found.startswith(prefix) and found != fmt.PLACE_NAME and found not in seen:
                        seen.add(found)
            except (VaultError, OSError):
                continue  # listing is a hint: the other places answer
        for found in sorted(seen):
            yield found

    async def delete(self, name: str) -> None:
        check_name(name)
        if not name.startswith("o/"):
            await self.replicas.delete(name)
            return
        await self.settle(name)
        self._decoded.pop(name, None)
        keys = self._shard_keys()
        places = reachable(self.slots, self.quorum)
        done = await asyncio.gather(
            *(p.call(p.backend.delete(keys.shard_name(name, p.index))) for p in places), return_exceptions=True
        )
        if sum(1 for d in done if not isinstance(d, BaseException)) < self.quorum:
            raise BackendUnavailable(f"cannot delete {name} on enough places ({names(places)})")

    async def aclose(self) -> None:
        for rest in self._rest.values():  # uploads of objects no commit names (each commit settled first)
            rest.cancel()
        await self.settle()
        bad = self.degraded()
        if bad and self.on_notice is not None:  # one warning line per session, naming the places
            self.on_notice(f"warning: degraded dispersed vault ({'; '.join(bad)}): run `sigmavault repair`")
        self.on_notice = None
        self._decoded.clear()
        if self._coders is not None:
            self._coders.shutdown(wait=False, cancel_futures=True)
            self._coders = None
        for place in self.given:
            with contextlib.suppress(VaultError, OSError):
                await place.backend.aclose()

    # -- objects --------------------------------------------------------------------------------

    async def _put_object(self, name: str, given: bytes | bytearray | memoryview) -> bool:
        keys = self._shard_keys()
        data, shards = await self.code(_copy_and_encode, keys, name, given, self.k, self.n)
        wid = shards[0][12 : fmt.HDR]
        places = reachable(self.slots, self.quorum)

        async def put(p: Place) -> bool:
            return await p.call(p.backend.put_if_absent(keys.shard_name(name, p.index), shards[p.index]))

        tasks = [asyncio.ensure_future(put(p)) for p in places]
        rest = await first_quorum(tasks, self.quorum) if len(self._rest) < STRAGGLERS else None
        if rest:  # the quorum took its shards; the other places' uploads go on until settle()
            self._rest[name] = done = asyncio.ensure_future(finish(rest))
            done.add_done_callback(lambda f: self._rest.pop(name) if self._rest.get(name) is f else None)
            self._remember(name, data)
            return True
        results = await asyncio.gather(*tasks, return_exceptions=True)
        created = [p for p, r in zip(places, results, strict=True) if r is True]
        if all(r is True or isinstance(r, BaseException) for r in results):
            if len(created) >= self.quorum:
                self._remember(name, data)
                return True
            raise BackendUnavailable(
                f"only {len(created)} of {self.n} places took {name} (need {self.quorum}); "
                f"failed or unreachable: {self._missing(created)}"
            )
        groups, answered = await self._survey(name)
        ours = groups.pop(wid, [])
        if any(len(g) >= self.k for g in groups.values()):
            return False  # the object is there (a dedup hit); our stray shards are for repair
        if len(ours) >= self.quorum:
            self._remember(name, data)
            return bool(created)
        if len(answered) < self.n:
            raise BackendUnavailable(
                f"{name} is only partly stored and places are unreachable: "
                f"{self._missing([self.slots[i] for i in answered])}"
            )
        for group in groups.values():  # leftovers of an upload no place holds enough of: replace them
            for shard in group:
                p = self.slots[shard.index]
                assert p is not None
                await p.call(p.backend.delete(keys.shard_name(name, p.index)))
                if await p.call(p.backend.put_if_absent(keys.shard_name(name, p.index), shards[p.index])):
                    ours.append(shard)
        if len(ours) >= self.quorum:
            self._remember(name, data)
            return True
        raise BackendUnavailable(f"{name}: conflicting partial uploads; retry, or run `sigmavault repair`")

    def _missing(self, ok: Sequence[Place | None]) -> str:
        got = {p.index for p in ok if p is not None}
        out = [p.label for p in self.slots if p is not None and p.index not in got]
        out += [f"place {i + 1}" for i, p in enumerate(self.slots) if p is None]
        return ", ".join(out) or "none"

    async def _fetch(self, name: str, p: Place) -> fmt.Shard:
        keys = self._shard_keys()
        raw = await p.call(p.backend.get(keys.shard_name(name, p.index)))
        try:
            return await self.code(fmt.parse, keys, name, p.index, self.k, self.n, raw)
        except IntegrityError:
            p.problem = "corrupt shard"
            raise

    async def _survey(self, name: str) -> tuple[Groups, set[int]]:
        """Every place's shard of ``name``, grouped by write; and the indexes that answered."""
        places = [p for p in self.slots if p is not None]
        got = await asyncio.gather(*(self._fetch(name, p) for p in places), return_exceptions=True)
        groups: Groups = {}
        answered: set[int] = set()
        for p, g in zip(places, got, strict=True):
            if isinstance(g, fmt.Shard):
                groups.setdefault(g.write_id, []).append(g)
            if isinstance(g, fmt.Shard | NotFound | IntegrityError):
                answered.add(p.index)
        return groups, answered

    def _remember(self, name: str, data: bytes) -> None:
        self._decoded[name] = data
        self._decoded.move_to_end(name)
        while len(self._decoded) > _CACHE:
            self._decoded.popitem(last=False)

    async def _get_object(self, name: str) -> bytes:
        cached = self._decoded.get(name)
        if cached is not None:
            return cached
        data = await self.code(fmt.decode, await self._gather_shards(name))
        self._remember(name, data)
        return data

    async def _gather_shards(self, name: str) -> Shards:
        """k shards of one write of ``name``: the fastest places first, hedged to the others."""
        order = sorted((p for p in self.slots if p is not None), key=lambda p: (not p.up(), p.latency))
        waiting = list(order)
        tasks: dict[asyncio.Task[fmt.Shard], Place] = {}
        groups: Groups = {}
        absent = corrupt = 0
        failed: list[Place] = []

        def ask() -> None:
            p = waiting.pop(0)
            tasks[asyncio.ensure_future(self._fetch(name, p))] = p

        for _ in range(min(self.k, len(waiting))):
            ask()
        try:
            while tasks:
                done, _ = await asyncio.wait(tasks, timeout=self.hedge_delay, return_when=asyncio.FIRST_COMPLETED)
                if not done and waiting:
                    ask()  # a slow place: hedge to the next one
                for task in done:
                    p = tasks.pop(task)
                    exc = task.exception()
                    if exc is None:
                        shard = task.result()
                        group = groups.setdefault(shard.write_id, [])
                        group.append(shard)
                        if len(group) == self.k:
                            return group
                        continue
                    if isinstance(exc, NotFound):
                        absent += 1
                        p.problem = p.problem or "shards missing"
                    elif isinstance(exc, IntegrityError):
                        corrupt += 1
                    failed.append(p)
                    if waiting:
                        ask()
                    elif not isinstance(exc, VaultError | OSError):
                        raise exc
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        if absent > self.n - self.k or absent == len(order):
            raise NotFound(f"{name} not found")
        if corrupt:
            raise IntegrityError(f"{name}: fewer than {self.k} good shards; bad or unreachable: {names(failed)}")
        raise BackendUnavailable(
            f"cannot read {name}: fewer than {self.k} places answered; "
            f"failed or unreachable: {self._missing([p for p in order if p not in failed])}"
        )
