"""Model of commits on a dispersed vault (issue 12: majority, splits, repair).

This is the specification the dispersed backend's ``put_if_absent`` for ``c/`` and its readers
are to be built against: when the code lands, a change to it must be made here too (and in
``docs/format.md``, "Concurrency protocols").

n places each hold at most one copy of ``c/{g}`` (conditional create per place). Writers race for
generation 1, creating their copy on every place in turn; a place may be unreachable for a while
(its copies are kept but cannot be read or written) and a response may be lost (the copy lands,
the writer does not know). Decision rule for generation g, over what a client has read:

* decided for copy X when a majority of the n places hold X;
* a split — every one of the n places answered *with a copy* and none has a majority — is decided
  for the copy with the lowest SHA-256 (here: the lowest writer number), deterministically;
* otherwise undecided: a writer neither acknowledges nor builds on it (BackendUnavailable) and a
  reader uses the generation before.

A writer acknowledges only a decided win; a loser merges and retries at the next generation
(outside these bounds). Repair fills a reachable place that has no copy with the copy that wins
over what it read, create-only, and removes a losing copy only where the winner already holds a
majority without it. Readers read the places one at a time (each read may interleave with writes).

Code: ``backends/dispersed/places.py`` (``decide``; ``Replicas.get`` and ``put_if_absent``, whose
``_settle`` is this repair step done by the writer for the record it just decided) and
``backends/dispersed/repair.py`` (``_repair_record``, which spreads a keystore only when decided by
a majority: keystores are deleted on key changes, commits never).

Invariants: every reader decides the same copy for a generation, or none; an acknowledged copy is
the one every reader decides; a decision never changes as places fail, return or are repaired.
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar

from .explore import Spec

#: the smallest bounds that catch each mutant (a split needs three writers)
LEVEL_OF = {"repair-deletes-split-loser": "default"}

MUTANTS = {
    "reader-accepts-minority": "a reader takes the most common copy among the places it could read",
    "split-counts-empty-place": "a split is decided although a place answered with no copy",
    "writer-acks-first-create": "a writer acknowledges once one place created its copy",
    "repair-deletes-split-loser": "repair deletes a losing copy of a split to make the winner a majority",
}

T = TypeVar("T")
NONE = -1  # no copy at a place
GONE = -2  # the place did not answer


class Writer(NamedTuple):
    pc: str  # put | decide | done
    at: int  # next place to put to
    acked: bool
    lost: bool


class Reader(NamedTuple):
    seen: tuple[int | None, ...]  # per place: copy read, NONE, or None (not read yet / unreachable)
    reads: int
    decided: int | None  # copy decided (None: undecided or not finished)


class State(NamedTuple):
    places: tuple[int, ...]  # copy at each place (writer number) or NONE
    up: tuple[bool, ...]
    outages: int
    lost: int
    writers: tuple[Writer, ...]
    readers: tuple[Reader, ...]
    repairs: int
    decisions: frozenset[tuple[str, int]]  # (who, copy) for every decision made so far


class Bounds(NamedTuple):
    places: int
    writers: int
    readers: int
    reads: int
    outages: int
    lost: int
    repairs: int
    depth: int
    flaky: int  # how many places (the last ones) may become unreachable


LEVELS = {
    "small": Bounds(3, 2, 1, 1, 1, 1, 1, 40, 3),
    "default": Bounds(3, 3, 1, 1, 1, 0, 1, 60, 1),
    "deep": Bounds(3, 3, 1, 1, 1, 1, 2, 80, 3),
}


def _set(items: tuple[T, ...], i: int, value: T) -> tuple[T, ...]:
    return items[:i] + (value,) + items[i + 1 :]


def decide(seen: tuple[int | None, ...], n: int, mutant: str | None = None) -> int | None:
    """The copy decided over what was read (None: undecided). ``seen[i] is None``: no answer."""
    copies = [c for c in seen if c is not None and c >= 0]
    for c in set(copies):
        if copies.count(c) * 2 > n:
            return c
    if mutant == "reader-accepts-minority" and copies:
        return max(sorted(set(copies)), key=copies.count)
    full = all(c is not None and c >= 0 for c in seen)
    if mutant == "split-counts-empty-place":
        full = all(c is not None and c != GONE for c in seen) and bool(copies)
    if full and len(seen) == n:
        return min(copies)  # lowest hash wins a split
    return None


class Model:
    def __init__(self, b: Bounds, mutant: str | None) -> None:
        self.b = b
        self.m = mutant

    def initial(self) -> State:
        n = self.b.places
        return State(tuple(NONE for _ in range(n)), tuple(True for _ in range(n)), self.b.outages, self.b.lost,
                     tuple(Writer("put", 0, False, False) for _ in range(self.b.writers)),
                     tuple(Reader(tuple(None for _ in range(n)), 0, None) for _ in range(self.b.readers)),
                     self.b.repairs, frozenset())

    def view(self, s: State) -> tuple[int | None, ...]:
        return tuple(c if u else None for c, u in zip(s.places, s.up))

    def step(self, s: State) -> list[tuple[str, State]]:
        out: list[tuple[str, State]] = []
        n = self.b.places
        for p in range(n - self.b.flaky, n):
            if s.up[p] and s.outages > 0:
                out.append((f"place {p} goes down", s._replace(up=_set(s.up, p, False), outages=s.outages - 1)))
            if not s.up[p]:
                out.append((f"place {p} comes back", s._replace(up=_set(s.up, p, True))))
        for i, w in enumerate(s.writers):
            if w.pc == "put":
                p = w.at
                nxt = "put" if p + 1 < n else "decide"
                if not s.up[p]:
                    out.append((f"W{i} put c/1 on place {p}: unreachable", s._replace(
                        writers=_set(s.writers, i, w._replace(at=p + 1, pc=nxt)))))
                    continue
                created = s.places[p] == NONE
                ns = s._replace(places=_set(s.places, p, i)) if created else s
                nw = w._replace(at=p + 1, pc=nxt)
                if created and self.m == "writer-acks-first-create":
                    nw = nw._replace(acked=True)
                    ns = ns._replace(decisions=ns.decisions | {(f"W{i} ack", i)})
                what = "created" if created else f"exists (W{s.places[p]}'s)"
                out.append((f"W{i} put c/1 on place {p}: {what}", ns._replace(writers=_set(ns.writers, i, nw))))
                if created and s.lost > 0:
                    lost = ns._replace(lost=s.lost - 1, writers=_set(ns.writers, i, nw._replace(lost=True)))
                    out.append((f"W{i} put c/1 on place {p}: created, response lost", lost))
            elif w.pc == "decide":
                d = decide(self.view(s), n)
                if d is None:
                    continue  # undecided: blocks (BackendUnavailable) until a place returns or repair
                nw = w._replace(pc="done", acked=w.acked or d == i)
                ns = s._replace(writers=_set(s.writers, i, nw))
                if d == i:
                    ns = ns._replace(decisions=ns.decisions | {(f"W{i} ack", i)})
                out.append((f"W{i} reads every place: {'won' if d == i else f'lost to W{d}'}", ns))
        for r, rd in enumerate(s.readers):
            if rd.reads >= self.b.reads:
                continue
            unread = [p for p in range(n) if rd.seen[p] is None]
            if unread:
                p = unread[0]
                got = s.places[p] if s.up[p] else GONE
                nr = rd._replace(seen=_set(rd.seen, p, got))
                out.append((f"R{r} reads place {p}: {_copy(got)}", s._replace(readers=_set(s.readers, r, nr))))
            d = decide(rd.seen, n, self.m)
            if d is not None or not unread:
                nr = Reader(tuple(None for _ in range(n)), rd.reads + 1, d)
                ns = s._replace(readers=_set(s.readers, r, nr))
                if d is not None:
                    ns = ns._replace(decisions=ns.decisions | {(f"R{r}", d)})
                out.append((f"R{r} decides {f'W{d}' if d is not None else 'nothing (uses c/0)'}", ns))
        if s.repairs > 0:
            out.extend(self._repair(s))
        return out

    def _repair(self, s: State) -> list[tuple[str, State]]:
        out: list[tuple[str, State]] = []
        n = self.b.places
        view = self.view(s)
        copies = [c for c in view if c is not None and c >= 0]
        if not copies:
            return out
        winner = decide(view, n)
        for p in range(n):
            if view[p] == NONE:  # fill an empty reachable place, create-only
                fill = winner if winner is not None else min(copies)
                out.append((f"repair copies W{fill}'s c/1 to place {p}", s._replace(
                    places=_set(s.places, p, fill), repairs=s.repairs - 1)))
            elif winner is not None and view[p] != winner:
                others = sum(1 for q in range(n) if q != p and s.places[q] == winner)
                if others * 2 > n or self.m == "repair-deletes-split-loser":
                    out.append((f"repair deletes losing W{view[p]}'s c/1 on place {p}", s._replace(
                        places=_set(s.places, p, NONE), repairs=s.repairs - 1)))
        return out


def _copy(c: int) -> str:
    return {NONE: "no copy", GONE: "unreachable"}.get(c, f"W{c}'s copy")


def same_decision(s: State) -> str | None:
    copies = {c for _, c in s.decisions}
    if len(copies) > 1:
        return "decisions differ for c/1: " + ", ".join(f"{who}→W{c}" for who, c in sorted(s.decisions))
    return None


def stable(s: State) -> str | None:
    now = decide(tuple(s.places), len(s.places))
    for who, c in sorted(s.decisions):
        if now is not None and now != c:
            return f"{who} decided W{c}, but the places now decide W{now}"
    return None


def spec(level: str = "default", mutant: str | None = None) -> Spec[State]:
    if mutant is not None and mutant not in MUTANTS:
        raise KeyError(mutant)
    b = LEVELS[level]
    m = Model(b, mutant)
    return Spec(
        name="disperse",
        initial=m.initial(),
        step=m.step,
        safety=(("every reader decides the same generation or none", same_decision),
                ("a decision never changes", stable)),
        max_depth=b.depth,
        bounds=(f"{b.places} places, {b.writers} writers racing c/1, {b.readers} reader(s), {b.outages} outage(s), "
                f"on {b.flaky} place(s), {b.lost} lost response(s), {b.repairs} repair step(s)"),
        show=lambda s: f"places {[_copy(c) for c in s.places]} up {list(s.up)} decisions {sorted(s.decisions)}",
    )
