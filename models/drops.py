"""Model of write-only drops and their ingest (issue 18: watermarks, ingest races, revocation).

The code that follows it: ``engine/ingest.py`` (``Ingester.plan``: the watermark+1 record, its
seq and previous hash; ``apply``) and ``engine/committer.py`` (``Committer.commit``: a plan per
head, made again after a lost race). A change to either must be made here too (and in
``docs/format.md``, "Concurrency protocols"). The model's revocation commit is, in the code, the
first commit naming the keystore whose keyring marks the writer removed (commits plan with the
newest keystore they read and name it).

Writer w writes signed drop records ``d/<w>/<seq>`` in order, create-only; each signs its seq and
the hash of the writer's previous record. It keeps writing after the owner revoked it (it cannot
know). The provider may withhold a record (a listing that misses it, a GET that 404s for a while)
and may plant a replay: an old genuine record's bytes under the next free name.

Owner clients ingest into their next commit. Ingest state lives in the chain: each commit's
``meta`` carries the watermark ``{writer: (seq, record hash)}`` and the set of revoked writers.
An owner client reads the head, and for each writer that the head does not revoke takes only the
record named watermark+1 whose signed seq is watermark+1 and whose signed previous hash equals the
watermark's hash (anything else waits or is refused); it then puts ``c/{head+1}`` create-only. On
a lost race it re-reads the new head's ``meta`` and plans again from scratch — never re-using the
drops it had picked. Revoking a writer is itself a commit (the keyring tombstone), racing the rest.

Invariants: no drop ingested twice; a writer's drops ingested in order, each the genuine record of
its seq; no drop of a writer merged by a commit whose parent (or itself) revokes that writer.
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar

from .explore import Spec

MUTANTS = {
    "ingest-skips-prev-hash-check": "ingest takes the next record it finds without checking seq and previous hash",
    "retry-keeps-plan": "an owner that lost the commit race retries with the drops it had already picked",
    "revocation-checked-once": "revocation is checked at the first plan only, not after a lost race",
}

T = TypeVar("T")
Record = tuple[int, int, int]  # (writer, signed seq, signed previous seq); genuine: name seq == signed seq


class Commit(NamedTuple):
    watermark: tuple[int, ...]  # per writer: last ingested seq (0: none)
    revoked: frozenset[int]
    ingested: tuple[tuple[int, int, int], ...]  # (writer, name seq, signed seq)


class Owner(NamedTuple):
    pc: str  # plan | put | done
    rounds: int
    head: int
    plan: tuple[tuple[int, int, int], ...]
    revoke: bool
    revoked_at_plan: frozenset[int]


class State(NamedTuple):
    records: frozenset[tuple[int, int, Record]]  # (writer, name seq, record)
    hidden: frozenset[tuple[int, int]]
    written: tuple[int, ...]  # per writer: drops written
    commits: tuple[Commit, ...]
    owners: tuple[Owner, ...]
    hides: int
    replays: int


class Bounds(NamedTuple):
    writers: int
    drops: int
    owners: int
    rounds: int
    hides: int
    replays: int
    depth: int


LEVELS = {
    "small": Bounds(1, 2, 2, 1, 1, 1, 40),
    "default": Bounds(1, 3, 2, 2, 1, 1, 60),
    "deep": Bounds(2, 2, 2, 2, 1, 1, 80),
}


def _set(items: tuple[T, ...], i: int, value: T) -> tuple[T, ...]:
    return items[:i] + (value,) + items[i + 1 :]


class Model:
    def __init__(self, b: Bounds, mutant: str | None) -> None:
        self.b = b
        self.m = mutant

    def initial(self) -> State:
        owners = tuple(Owner("plan", 0, 0, (), i == 0, frozenset()) for i in range(self.b.owners))
        c0 = Commit(tuple(0 for _ in range(self.b.writers)), frozenset(), ())
        return State(frozenset(), frozenset(), tuple(0 for _ in range(self.b.writers)), (c0,), owners,
                     self.b.hides, self.b.replays)

    def step(self, s: State) -> list[tuple[str, State]]:
        out: list[tuple[str, State]] = []
        taken = {(w, q) for w, q, _ in s.records}
        for w in range(self.b.writers):
            n = s.written[w]
            if n < self.b.drops and (w, n + 1) not in taken:  # create-only: a planted name blocks it
                rec = (w, n + 1, n)
                out.append((f"writer {w} drops d/{w}/{n + 1}", s._replace(
                    records=s.records | {(w, n + 1, rec)}, written=_set(s.written, w, n + 1))))
        for w, q, _rec in sorted(s.records):
            if s.hides > 0 and (w, q) not in s.hidden:
                out.append((f"provider withholds d/{w}/{q}", s._replace(hidden=s.hidden | {(w, q)},
                                                                         hides=s.hides - 1)))
            if s.replays > 0 and (w, s.written[w] + 1) not in taken and q == 1:
                fake = (w, s.written[w] + 1, _rec)
                out.append((f"provider replays d/{w}/{q}'s bytes as d/{w}/{fake[1]}", s._replace(
                    records=s.records | {fake}, replays=s.replays - 1)))
        for (w, q) in sorted(s.hidden):
            out.append((f"provider shows d/{w}/{q} again", s._replace(hidden=s.hidden - {(w, q)})))
        for i, o in enumerate(s.owners):
            out.extend((label, ns._replace(owners=_set(ns.owners, i, no))) for label, ns, no in self._owner(s, i, o))
        return out

    def _visible(self, s: State, w: int, q: int) -> Record | None:
        for rw, rq, rec in s.records:
            if (rw, rq) == (w, q) and (w, q) not in s.hidden:
                return rec
        return None

    def _plan(self, s: State, head: int, revoked: frozenset[int]) -> tuple[tuple[int, int, int], ...]:
        c = s.commits[head]
        plan = []
        for w in range(self.b.writers):
            if w in revoked:
                continue
            wm = c.watermark[w]
            if self.m == "ingest-skips-prev-hash-check":
                found = sorted((q, rec) for rw, q, rec in s.records if rw == w and q > wm and (w, q) not in s.hidden)
                if found:
                    plan.append((w, found[0][0], found[0][1][1]))
                continue
            rec = self._visible(s, w, wm + 1)
            if rec is not None and rec[1] == wm + 1 and rec[2] == wm:  # signed seq and previous hash
                plan.append((w, wm + 1, rec[1]))
        return tuple(plan)

    def _owner(self, s: State, i: int, o: Owner) -> list[tuple[str, State, Owner]]:
        out: list[tuple[str, State, Owner]] = []
        head = len(s.commits) - 1
        if o.pc == "plan" and o.rounds < self.b.rounds:
            revoked = s.commits[head].revoked
            plan = () if o.revoke else self._plan(s, head, revoked)
            what = "revoke writer 0" if o.revoke else ("ingest " + ", ".join(f"d/{w}/{q}" for w, q, _ in plan)
                                                       if plan else "nothing to ingest")
            out.append((f"O{i} reads c/{head}: {what}", s, o._replace(pc="put", head=head, plan=plan,
                                                                       revoked_at_plan=revoked)))
        elif o.pc == "put":
            gen = o.head + 1
            if gen == len(s.commits):
                base = s.commits[o.head]
                wm = list(base.watermark)
                for w, q, _ in o.plan:
                    wm[w] = max(wm[w], q)
                revoked = base.revoked | ({0} if o.revoke else frozenset())
                c = Commit(tuple(wm), revoked, o.plan)
                out.append((f"O{i} puts c/{gen}: created", s._replace(commits=s.commits + (c,)),
                            o._replace(pc="plan", rounds=o.rounds + 1, plan=(), revoke=False)))
            else:
                revoked = o.revoked_at_plan if self.m == "revocation-checked-once" else s.commits[head].revoked
                plan = o.plan if self.m == "retry-keeps-plan" else (
                    () if o.revoke else self._plan(s, head, revoked))
                if self.m == "revocation-checked-once" and not o.revoke:
                    plan = tuple(p for p in self._plan(s, head, frozenset()) if p[0] not in o.revoked_at_plan)
                out.append((f"O{i} puts c/{gen}: exists; re-reads c/{head}'s meta and plans again", s,
                            o._replace(head=head, plan=plan)))
        return out


def once_in_order(s: State) -> str | None:
    seen: dict[int, int] = {}
    for g, c in enumerate(s.commits):
        for w, q, signed in c.ingested:
            if q <= seen.get(w, 0):
                return f"c/{g} ingests d/{w}/{q} again (already up to {seen.get(w, 0)})"
            if q != seen.get(w, 0) + 1 or signed != q:
                return f"c/{g} ingests d/{w}/{q} (signed seq {signed}) out of order after {seen.get(w, 0)}"
            seen[w] = q
    return None


def revoked_never_merged(s: State) -> str | None:
    for g, c in enumerate(s.commits[1:], 1):
        gone = s.commits[g - 1].revoked | c.revoked
        for w, q, _ in c.ingested:
            if w in gone:
                return f"c/{g} merges d/{w}/{q} of writer {w}, which is revoked"
    return None


def spec(level: str = "default", mutant: str | None = None) -> Spec[State]:
    if mutant is not None and mutant not in MUTANTS:
        raise KeyError(mutant)
    b = LEVELS[level]
    m = Model(b, mutant)
    return Spec(
        name="drops",
        initial=m.initial(),
        step=m.step,
        safety=(("no drop ingested twice or out of order", once_in_order),
                ("a revoked writer's drop is never merged", revoked_never_merged)),
        max_depth=b.depth,
        bounds=(f"{b.writers} writer(s) x {b.drops} drops, {b.owners} owner clients x {b.rounds} commits "
                f"(owner 0 first revokes writer 0), {b.hides} withheld, {b.replays} replayed record(s)"),
        show=lambda s: " | ".join(f"c/{g}:wm{list(c.watermark)} rev{sorted(c.revoked)} in{list(c.ingested)}"
                                  for g, c in enumerate(s.commits)),
    )
