"""The places of a dispersed vault and the majority rule for its replicated records (models/disperse.py).

A :class:`Place` is one wrapped backend with what the dispersed backend learns about it: a smoothed
latency (reads go to the fastest places first) and a short cool-down after a failure, during which
it is skipped (counted as unreachable) so a dead place does not slow every request.

Commits, keystores and the other small records are replicated whole to every place with per-place
conditional creates. :func:`decide` is the model's decision rule over what was read, one entry per
place: the copy's bytes, :data:`MISSING` (the place answered with no copy) or None (no answer):

* decided for copy X when a majority of the n places hold byte-identical X;
* a split (every place answered with a copy, none has a majority): the copy with the lowest SHA-256;
* otherwise undecided (None).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

from ...engine.errors import BackendError, BackendUnavailable, IntegrityError, NotFound, VaultError
from ..base import Backend

T = TypeVar("T")


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
Seen = bytes | _Missing | None
COOL_DOWN = 15.0  # seconds a failed place is skipped before it is tried again


def decide(seen: Sequence[Seen], n: int) -> bytes | None:
    """The copy decided over ``seen`` (one entry per place), or None: undecided."""
    copies = [c for c in seen if isinstance(c, bytes)]
    for copy, count in Counter(copies).items():
        if count * 2 > n:
            return copy
    if len(seen) == n and len(copies) == n:
        return min(copies, key=lambda c: hashlib.sha256(c).digest())  # a split: lowest hash wins
    return None


class Place:
    """One place: its backend, its index in the layout, latency and health."""

    __slots__ = ("backend", "clock", "down_until", "index", "latency", "problem")

    def __init__(self, backend: Backend, index: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.backend = backend
        self.index = index
        self.latency = 0.0
        self.down_until = 0.0
        self.problem: str | None = None
        self.clock = clock

    @property
    def label(self) -> str:
        return f"place {self.index + 1} ({self.backend.description})"

    def up(self) -> bool:
        return self.clock() >= self.down_until

    async def call(self, op: Awaitable[T]) -> T:
        """Await ``op`` (a call on this place's backend), recording latency and failures.

        NotFound is an answer, not a failure. A backend error puts the place in its cool-down.
        """
        start = self.clock()
        try:
            result = await op
        except NotFound:
            self._answered(start)
            raise
        except IntegrityError:
            self.problem = "corrupt data"
            raise
        except (BackendError, OSError) as exc:
            self.down_until = self.clock() + COOL_DOWN
            self.problem = type(exc).__name__
            raise
        self._answered(start)
        return result

    def _answered(self, start: float) -> None:
        took = self.clock() - start
        self.latency = took if self.latency == 0.0 else 0.8 * self.latency + 0.2 * took


def reachable(places: Sequence[Place | None], enough: int) -> list[Place]:
    """The places not cooling down after a failure; every known place if fewer than ``enough`` are."""
    known = [p for p in places if p is not None]
    up = [p for p in known if p.up()]
    return up if len(up) >= enough else known


def names(places: Sequence[Place]) -> str:
    return ", ".join(p.label for p in places)


class Replicas:
    """Whole copies of small records on every place, decided by the majority rule."""

    def __init__(self, places: list[Place | None], n: int) -> None:
        self.places = places  # by index; None: a place of the layout nobody named or identified
        self.n = n

    def _reachable(self) -> list[Place]:
        return reachable(self.places, self.n // 2 + 1)

    def _absent(self, answered: set[int]) -> str:
        gone = [p for p in self.places if p is not None and p.index not in answered]
        unknown = sum(1 for p in self.places if p is None)
        text = names(gone)
        if unknown:
            text += (", " if text else "") + f"{unknown} place(s) not given or not recognised"
        return text

    async def read_all(self, name: str) -> list[Seen]:
        """What every place holds under ``name``: bytes, MISSING, or None (no answer)."""

        async def one(p: Place) -> Seen:
            try:
                return await p.call(p.backend.get(name))
            except NotFound:
                return MISSING
            except (VaultError, OSError):
                return None

        reachable = self._reachable()
        got = await asyncio.gather(*(one(p) for p in reachable))
        seen: list[Seen] = [None] * len(self.places)
        for p, value in zip(reachable, got, strict=True):
            seen[p.index] = value
        return seen

    async def get(self, name: str) -> bytes:
        seen = await self.read_all(name)
        copy = decide(seen, self.n)
        if copy is not None:
            return copy
        answered = {i for i, c in enumerate(seen) if c is not None}
        held = {i for i, c in enumerate(seen) if isinstance(c, bytes)}
        if name.startswith("k/") and held:  # a vault is there, but too few places show its keystore
            raise BackendUnavailable(
                f"the keystore {name} is on {len(held)} of {self.n} places, fewer than a "
                f"majority; missing or unreachable: {self._absent(held)}"
            )
        if len(answered) * 2 > self.n:
            raise NotFound(f"{name} not found (no decided copy)")  # readers use the generation before
        raise BackendUnavailable(f"cannot read {name}: too few places answered; unreachable: {self._absent(answered)}")

    async def put_if_absent(self, name: str, data: bytes) -> bool:
        async def one(p: Place) -> bool | None:
            try:
                return await p.call(p.backend.put_if_absent(name, data))
            except (VaultError, OSError):
                return None

        reachable = self._reachable()
        results = await asyncio.gather(*(one(p) for p in reachable))
        created = any(r is True for r in results)
        seen = await self.read_all(name)
        for p, r in zip(reachable, results, strict=True):
            if r is True and seen[p.index] is None:
                seen[p.index] = data  # created there, even if the read-back failed
        winner = decide(seen, self.n)
        if winner is None:
            failed = {p.index for p, r in zip(reachable, results, strict=True) if r is None}
            answered = {i for i, c in enumerate(seen) if c is not None} - failed
            raise BackendUnavailable(
                f"{name} is undecided (no majority of places holds one copy); "
                f"failed or unreachable: {self._absent(answered) or 'none'}; "
                "retry when the places answer, or run `sigmavault repair`"
            )
        await self._settle(name, seen, winner)
        return created and winner == data

    async def _settle(self, name: str, seen: list[Seen], winner: bytes) -> None:
        """The model's repair step for one decided record, done by the writer at once: a reachable
        place with no copy gets the winner (create-only); a losing copy is replaced only where the
        winner holds a majority without it. So a reader missing a place still finds the decision."""

        async def one(p: Place, copy: Seen) -> None:
            if isinstance(copy, bytes):
                others = sum(1 for j, c in enumerate(seen) if j != p.index and c == winner)
                if others * 2 <= self.n:
                    return
                await p.call(p.backend.delete(name))
            await p.call(p.backend.put_if_absent(name, winner))

        todo = [(p, seen[p.index]) for p in self.places if p is not None and seen[p.index] not in (None, winner)]
        await asyncio.gather(*(one(p, c) for p, c in todo), return_exceptions=True)

    async def delete(self, name: str) -> None:
        async def one(p: Place) -> bool:
            try:
                await p.call(p.backend.delete(name))
                return True
            except (VaultError, OSError):
                return False

        reachable = self._reachable()
        done = await asyncio.gather(*(one(p) for p in reachable))
        if sum(done) * 2 <= self.n:
            failed = {p.index for p, ok in zip(reachable, done, strict=True) if not ok}
            answered = {p.index for p in self.places if p is not None and p.index not in failed} & {
                p.index for p in reachable
            }
            raise BackendUnavailable(f"cannot delete {name}: unreachable: {self._absent(answered)}")


async def first_quorum(uploads: Sequence[asyncio.Future[bool]], quorum: int) -> set[asyncio.Future[bool]]:
    """The uploads still running once ``quorum`` of ``uploads`` created their object; an empty set if
    one failed or found its object first, or all ended first (the caller then waits for every answer,
    and decides on all of them). Cancelled, it cancels them all."""
    pending, created = set(uploads), 0
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if any(t.exception() is not None or t.result() is not True for t in done):
                return set()
            created += len(done)
            if created >= quorum:
                return pending
    except BaseException:
        for upload in uploads:
            upload.cancel()
        raise
    return set()


async def finish(uploads: set[asyncio.Future[bool]]) -> None:
    """Wait for ``uploads``; a failure has marked its place already (:meth:`Place.call`), as in a put
    that waited for it: the warning names the place and repair fills it. Cancelled, it cancels them."""
    try:
        await asyncio.wait(uploads)
    except BaseException:
        for upload in uploads:
            upload.cancel()
        await asyncio.wait(uploads)
        raise
    for upload in uploads:
        upload.exception()  # retrieved


async def gather_places(places: Sequence[Place], call: Callable[[Place], Awaitable[Any]]) -> list[Any]:
    """``call(p)`` on every place at once; each result or the exception it raised."""
    return list(await asyncio.gather(*(call(p) for p in places), return_exceptions=True))
