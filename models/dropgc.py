"""Model of garbage collection of write-only clients' objects (issue 18; built in
engine/transfer/dropgc.py and engine/repo/dropleases.py, tested in tests/engine/test_drops_gc.py).

Without it a drop's objects that no kept generation references any more stay forever. Deleting
them safely is hard because a writer deduplicates against its own earlier drops: it may decide to
reuse an object (its HEAD finds it) just before a pruner deletes it, and the writer cannot read the
vault's sealed deletion records. The protocol modelled here needs nothing the writer cannot read:

Writer run: (W1) create its signed lease ``l/<writer>-…`` (create-only; beats keep it alive, a
killed run's lease expires); (W2) reuse an earlier drop's object X only if X is there and there is
no gone-marker ``d/<writer>/gone/<X>`` (the writer may list and read its own prefix); else store
the blob anew; (W3) write its record, then end its lease.
Pruner run: (P1) candidates = the writer's objects referenced neither by a kept generation nor by
a drop record not yet ingested; (P2) create a gone-marker for each; (P3) list the writer's leases
(L0); (P4) wait until every lease of L0 has ended or expired; (P5) re-read the records and the
kept generations and drop the candidates they reference; (P6) delete the rest.
Owner: ingests pending records (their refs become kept) and forgets generations (refs drop out).

Why it holds: a run whose lease existed at P3 has ended before P6, so its record (if any) is seen
at P5; a run whose lease began after P3 checks for markers after P2 wrote them (W1 before W2), so
it never reuses a candidate. A marker outlives a kept-back object: that object is stored again by
the writer's next run (a cost, not a loss). Assumption (as in the prune model): a writer's lease
does not lapse while its run goes on (a run whose lease lapsed starts again at W1). Owner-side
races on these objects (a client re-referencing one from an older tree) are the prune protocol's:
the candidates go into its deletion records like the vault's own.
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar

from .explore import Spec

MUTANTS = {
    "pruner-skips-lease-wait": "the pruner deletes without waiting for the leases it listed (P4)",
    "pruner-skips-record-recheck": "the pruner deletes what it chose at P1 without re-reading the records (P5)",
    "writer-ignores-markers": "the writer reuses any object that is there, marked or not (W2)",
    "writer-checks-before-lease": "the writer looks for markers before its lease exists (W2 before W1)",
}

T = TypeVar("T")
OLD = "x0"  # an earlier drop's object whose generation was forgotten: garbage, and still in the writer's index


class Run(NamedTuple):
    pc: str  # lease | (leasing: the mutant's) | check | record | end
    runs: int  # runs finished
    reused: bool  # this run reuses OLD (decided at W2)
    checked_early: bool  # the mutant's check before the lease


class Pruner(NamedTuple):
    pc: str  # p1 .. p6, done
    runs: int
    candidates: frozenset[str]
    listed: frozenset[int]  # L0: lease ids


class State(NamedTuple):
    objects: frozenset[str]
    markers: frozenset[str]
    kept: frozenset[str]  # referenced by kept generations
    pending: tuple[frozenset[str], ...]  # records not yet ingested, oldest first
    ingested: tuple[frozenset[str], ...]
    leases: frozenset[int]  # live leases (run numbers)
    writer: Run
    pruner: Pruner
    forgets: int
    crashes: int


class Bounds(NamedTuple):
    runs: int
    prunes: int
    forgets: int
    crashes: int
    depth: int


LEVELS = {
    "small": Bounds(1, 1, 1, 0, 30),
    "default": Bounds(3, 2, 2, 1, 60),
    "deep": Bounds(4, 3, 2, 1, 80),
}


class Model:
    def __init__(self, b: Bounds, mutant: str | None) -> None:
        self.b = b
        self.m = mutant

    def initial(self) -> State:
        return State(frozenset({OLD}), frozenset(), frozenset(), (), (), frozenset(),
                     Run("lease", 0, False, False), Pruner("p1", 0, frozenset(), frozenset()),
                     self.b.forgets, self.b.crashes)

    def step(self, s: State) -> list[tuple[str, State]]:
        out = self._writer(s) + self._pruner(s)
        if s.pending:
            refs = s.pending[0]
            out.append(("owner ingests the oldest pending record", s._replace(
                pending=s.pending[1:], ingested=(*s.ingested, refs), kept=s.kept | refs)))
        if s.forgets > 0 and s.ingested:
            out.append(("owner forgets all but the newest ingested generation", s._replace(
                kept=s.ingested[-1], forgets=s.forgets - 1)))
        return out

    def _reusable(self, s: State) -> bool:
        return OLD in s.objects and (self.m == "writer-ignores-markers" or OLD not in s.markers)

    def _writer(self, s: State) -> list[tuple[str, State]]:
        w = s.writer
        run = w.runs + 1
        out: list[tuple[str, State]] = []
        if w.pc == "lease" and w.runs < self.b.runs and self.m == "writer-checks-before-lease":
            out.append((f"W run {run}: looks for markers before its lease", s._replace(
                writer=w._replace(pc="leasing", checked_early=self._reusable(s)))))
        elif (w.pc == "lease" and w.runs < self.b.runs) or w.pc == "leasing":
            out.append((f"W run {run}: W1 creates its lease", s._replace(
                leases=s.leases | {run}, writer=w._replace(pc="check"))))
        elif w.pc == "check":
            reuse = w.checked_early if self.m == "writer-checks-before-lease" else self._reusable(s)
            new = s.objects if reuse else s.objects | {f"r{run}"}
            out.append((f"W run {run}: W2 " + ("reuses x0" if reuse else f"stores r{run}"), s._replace(
                objects=new, writer=w._replace(pc="record", reused=reuse))))
        elif w.pc == "record":
            refs = frozenset({OLD if w.reused else f"r{run}"})
            out.append((f"W run {run}: W3 writes its record ({sorted(refs)[0]})", s._replace(
                pending=(*s.pending, refs), writer=w._replace(pc="end"))))
        elif w.pc == "end":
            out.append((f"W run {run}: ends its lease", s._replace(
                leases=s.leases - {run}, writer=Run("lease", run, False, False))))
        if w.pc in ("check", "record") and s.crashes > 0:
            out.append((f"W run {run} is killed: its lease expires", s._replace(
                leases=s.leases - {run}, writer=Run("lease", run, False, False), crashes=s.crashes - 1)))
        return out

    def _pruner(self, s: State) -> list[tuple[str, State]]:
        p = s.pruner
        referenced = s.kept.union(*s.pending) if s.pending else s.kept
        if p.pc == "p1" and p.runs < self.b.prunes:
            cands = frozenset(o for o in s.objects if o not in referenced)
            return [(f"P1 candidates {sorted(cands)}", s._replace(pruner=p._replace(pc="p2", candidates=cands)))]
        if p.pc == "p2":
            return [("P2 writes gone-markers", s._replace(markers=s.markers | p.candidates,
                                                          pruner=p._replace(pc="p3")))]
        if p.pc == "p3":
            listed = frozenset() if self.m == "pruner-skips-lease-wait" else s.leases
            return [(f"P3 lists leases {sorted(listed)}", s._replace(pruner=p._replace(pc="p4", listed=listed)))]
        if p.pc == "p4" and not (p.listed & s.leases):
            return [("P4 every listed lease ended", s._replace(pruner=p._replace(pc="p5")))]
        if p.pc == "p5":
            cands = p.candidates if self.m == "pruner-skips-record-recheck" else p.candidates - referenced
            return [(f"P5 re-reads records: deletes {sorted(cands)}", s._replace(
                pruner=p._replace(pc="p6", candidates=cands)))]
        if p.pc == "p6":
            return [("P6 deletes", s._replace(objects=s.objects - p.candidates,
                                              pruner=Pruner("p1", p.runs + 1, frozenset(), frozenset())))]
        return []


def nothing_referenced_is_deleted(s: State) -> str | None:
    for i, refs in enumerate(s.pending + s.ingested):
        missing = refs - s.objects
        if missing and (refs in s.pending or refs <= s.kept):
            return f"a record ({i}) that is pending or kept refers to deleted {sorted(missing)}"
    gone = s.kept - s.objects
    return f"a kept generation refers to deleted {sorted(gone)}" if gone else None


def spec(level: str = "default", mutant: str | None = None) -> Spec[State]:
    if mutant is not None and mutant not in MUTANTS:
        raise KeyError(mutant)
    b = LEVELS[level]
    m = Model(b, mutant)
    return Spec(
        name="dropgc",
        initial=m.initial(),
        step=m.step,
        safety=(("no pending or kept record refers to a deleted object", nothing_referenced_is_deleted),),
        max_depth=b.depth,
        bounds=(f"1 writer x {b.runs} runs ({b.crashes} killed), {b.prunes} prune run(s), {b.forgets} forget(s)"),
        show=lambda s: (f"objects {sorted(s.objects)} markers {sorted(s.markers)} kept {sorted(s.kept)} "
                        f"pending {[sorted(r) for r in s.pending]} leases {sorted(s.leases)}"),
    )
