"""Model of ``rekey`` (issue 13): a new key epoch beside writers that still use the old one.

Mirror of the code: a change to ``engine/rekeying.py`` (``Epochs.rekey``, ``finish``, ``reload``,
``reseal``), ``engine/reseal.py``, ``engine/keys/rotate.py``, the committer's calls to them, the
chain rule ``check_epoch_order`` or the drop merge base in ``engine/ingest.py`` must be made here
too (and in ``docs/format.md``, "Rekey beside writers").

The rekeyer R: (R1) writes keystore kg+1 whose current epoch is e+1; e stays readable and is not yet
retired; (R2) reads the head g; (R3) creates the rekey record ``c/{g+1}`` under epoch e+1 (lost
race: back to R2); (R4) writes keystore kg+2 with ``retired_at_gen(e)`` = the generation before the
first commit of epoch e+1. R may be killed after R1 or R3: any client that later finds a commit of
a newer epoch and a keystore without ``retired_at_gen`` finishes R4 (the finisher).

A writer W (an owner client) uploads each file under the epoch it holds and commits: (W1) reads the
head; if the head's epoch or keystore generation is newer than its own, (W2) it reloads the keys and
re-seals what it uploaded under an older epoch (a new object under the new epoch: the old one is
garbage for prune); (W3) creates ``c/{head+1}`` under its epoch (lost race: back to W1). A
write-only client D seals its drop under the epoch of its credential; W's commit ingests it, and
re-seals the drop's objects when the drop's epoch is older than W's.

Readers accept a commit only if its epoch is at least its parent's (epochs never go back along the
chain) and, once a keystore names ``retired_at_gen(e)``, a commit of epoch e only up to it. The
chain rule is what makes the retirement race-free: CRYPTO.md's procedure fixes ``retired_at_gen``
to the head R saw before its record lands, which invalidates a writer's old-epoch commit that wins
the race for the next generation (the first mutant shows that trace).

Invariants: every commit an honest client writes stays valid under the newest keystore; epochs
never go back along the chain; a commit refers to no object of an older epoch than its own that its
parent did not refer to (a revoked party holding the old keys may have replaced such an object: only
what the history already held stays); at the end every file W wrote and D's drop are committed and
the old epoch is retired right before the first commit of the new one.
"""

from __future__ import annotations

from typing import NamedTuple

from .explore import Spec

MUTANTS = {
    "retire-at-rekey-head": "R fixes retired_at_gen to the head it saw at R1 (CRYPTO.md's literal procedure)",
    "writer-ignores-head-epoch": "W builds on a head of a newer epoch without reloading its keys (W1)",
    "writer-keeps-old-objects": "W reloads its keys but keeps what it uploaded under the old epoch (W2)",
    "ingest-keeps-old-drop": "W takes a drop of an older epoch in without re-sealing its objects",
    "no-finisher": "nobody finishes R4 after R is killed",
}


class Commit(NamedTuple):
    epoch: int
    ks: int  # keystore generation it was written with
    refs: frozenset[str]  # objects it refers to (an object's name carries its epoch: "w1@2")
    by: str


class Keystore(NamedTuple):
    current: int
    retired_at: int | None  # of epoch 1


class Writer(NamedTuple):
    pc: str  # upload | decide | create | wait | done
    epoch: int
    ks: int
    pending: frozenset[str]
    files: int
    parent: int  # the generation W read at W1 (create writes parent + 1)


class Rekeyer(NamedTuple):
    pc: str  # r1 | r2 | r3 | r4 | done | dead
    parent: int


class State(NamedTuple):
    chain: tuple[Commit, ...]
    keystores: tuple[Keystore, ...]
    objects: frozenset[str]
    ws: tuple[Writer, ...]
    r: Rekeyer
    drop: str | None  # D's waiting drop (its object), None once ingested or before it is written
    dropped: bool
    crashes: int


class Bounds(NamedTuple):
    writers: int
    files: int
    drops: int
    crashes: int
    depth: int


LEVELS = {
    "small": Bounds(1, 1, 1, 1, 40),
    "default": Bounds(2, 1, 1, 1, 60),
    "deep": Bounds(2, 2, 1, 1, 80),
}


def epoch_of(obj: str) -> int:
    return int(obj.rpartition("@")[2])


def obj(base: str, epoch: int) -> str:
    return f"{base}@{epoch}"


def base_of(o: str) -> str:
    return o.rpartition("@")[0]


class Model:
    def __init__(self, b: Bounds, mutant: str | None) -> None:
        self.b = b
        self.m = mutant

    def initial(self) -> State:
        genesis = Commit(1, 0, frozenset({"o0@1"}), "init")
        w = Writer("upload", 1, 0, frozenset(), 0, 0)
        return State((genesis,), (Keystore(1, None),), frozenset({"o0@1"}), (w,) * self.b.writers,
                     Rekeyer("r1", 0), None, False, self.b.crashes)

    def step(self, s: State) -> list[tuple[str, State]]:
        out = self._rekeyer(s) + self._drop(s) + self._finisher(s)
        for i in range(len(s.ws)):
            out += [(f"{'WV'[i]}{label[1:]}", nxt) for label, nxt in self._writer(s, i)]
        return out

    def _drop(self, s: State) -> list[tuple[str, State]]:
        if s.dropped or self.b.drops == 0:
            return []
        o = obj("d1", 1)  # D's credential carries epoch 1's drop key until it is re-issued
        return [("D writes its drop under epoch 1", s._replace(objects=s.objects | {o}, drop=o, dropped=True))]

    def _writer(self, s: State, i: int) -> list[tuple[str, State]]:
        w = s.ws[i]
        name = "wv"[i]

        def put(**kw: object) -> tuple[Writer, ...]:
            return (*s.ws[:i], w._replace(**kw), *s.ws[i + 1 :])

        head = len(s.chain) - 1
        if w.pc == "upload" and w.files < self.b.files:
            o = obj(f"{name}{w.files + 1}", w.epoch)
            return [(f"W uploads {o}", s._replace(objects=s.objects | {o}, ws=put(
                pending=w.pending | {o}, files=w.files + 1, pc="upload" if w.files + 1 < self.b.files else "decide")))]
        if w.pc == "decide":
            top = s.chain[head]
            newer = top.epoch > w.epoch or top.ks > w.ks
            if newer and self.m != "writer-ignores-head-epoch":
                ks = len(s.keystores) - 1
                epoch = s.keystores[ks].current
                pending, objects = w.pending, s.objects
                if self.m != "writer-keeps-old-objects":
                    pending = frozenset(p if epoch_of(p) == epoch else obj(base_of(p), epoch) for p in w.pending)
                    objects = objects | pending
                return [(f"W1-W2 head {head} is newer: reloads keys (epoch {epoch}), re-seals {sorted(pending)}",
                         s._replace(objects=objects, ws=put(epoch=epoch, ks=ks, pending=pending)))]
            return [(f"W1 reads head {head}", s._replace(ws=put(pc="create", parent=head)))]
        if w.pc == "create":
            if len(s.chain) != w.parent + 1:
                return [(f"W3 loses the race for c/{w.parent + 1}", s._replace(ws=put(pc="decide")))]
            refs = s.chain[w.parent].refs | w.pending
            objects = s.objects
            taken = ""
            if s.drop is not None:
                d = s.drop
                if epoch_of(d) < w.epoch and self.m != "ingest-keeps-old-drop":
                    d = obj(base_of(d), w.epoch)  # re-sealed at ingest
                    objects = objects | {d}
                refs, taken = refs | {d}, f" + drop {d}"
            c = Commit(w.epoch, w.ks, refs, "W")
            return [(f"W3 creates c/{w.parent + 1} (epoch {w.epoch}){taken}", s._replace(
                chain=(*s.chain, c), objects=objects, drop=None,
                ws=put(pc="done" if s.dropped or self.b.drops == 0 else "wait", pending=frozenset())))]
        if w.pc == "wait" and s.dropped:
            return [("W's next commit, to take the drop in", s._replace(ws=put(pc="decide")))]
        return []

    def _rekeyer(self, s: State) -> list[tuple[str, State]]:
        r = s.r
        head = len(s.chain) - 1
        out: list[tuple[str, State]] = []
        if r.pc == "r1":
            retired = head if self.m == "retire-at-rekey-head" else None
            note = "" if retired is None else f", retired_at_gen {retired}"
            out.append((f"R1 writes keystore 1: epoch 2 current{note}",
                        s._replace(keystores=(*s.keystores, Keystore(2, retired)), r=r._replace(pc="r2"))))
        elif r.pc == "r2":
            out.append((f"R2 reads head {head}", s._replace(r=r._replace(pc="r3", parent=head))))
        elif r.pc == "r3":
            if len(s.chain) != r.parent + 1:
                out.append((f"R3 loses the race for c/{r.parent + 1}", s._replace(r=r._replace(pc="r2"))))
            else:
                c = Commit(2, len(s.keystores) - 1, s.chain[r.parent].refs, "R")
                out.append((f"R3 creates the rekey record c/{r.parent + 1}", s._replace(
                    chain=(*s.chain, c), r=r._replace(pc="r4"))))
        elif r.pc == "r4":
            out.append(("R4 retires epoch 1", self._retire(s)._replace(r=r._replace(pc="done"))))
        if r.pc in ("r2", "r3", "r4") and s.crashes > 0:
            out.append((f"R is killed at {r.pc.upper()}", s._replace(r=r._replace(pc="dead"), crashes=s.crashes - 1)))
        return out

    def _retire(self, s: State) -> State:
        first = next((g for g, c in enumerate(s.chain) if c.epoch > 1), None)
        ks = s.keystores[-1]
        if first is None or ks.retired_at is not None:
            return s
        return s._replace(keystores=(*s.keystores, Keystore(ks.current, first - 1)))

    def _finisher(self, s: State) -> list[tuple[str, State]]:
        """A client that finds a commit of epoch 2 and a keystore that retires nothing finishes R4."""
        if self.m == "no-finisher" or s.r.pc != "dead" or s.keystores[-1].retired_at is not None:
            return []
        if not any(c.epoch > 1 for c in s.chain):
            return []
        return [("a client finishes R4", self._retire(s))]


def valid(s: State) -> str | None:
    retired = s.keystores[-1].retired_at
    for g, c in enumerate(s.chain):
        if g and c.epoch < s.chain[g - 1].epoch:
            return f"c/{g} ({c.by}) goes back to epoch {c.epoch}"
        if c.epoch == 1 and retired is not None and g > retired:
            return f"c/{g} ({c.by}) uses epoch 1 after its retirement at {retired}"
    return None


def fresh_refs(s: State) -> str | None:
    for g in range(1, len(s.chain)):
        c = s.chain[g]
        old = {o for o in c.refs - s.chain[g - 1].refs if epoch_of(o) < c.epoch}
        if old:
            return f"c/{g} (epoch {c.epoch}) newly refers to {sorted(old)} of an older epoch"
    return None


def finished(s: State) -> str | None:
    refs = s.chain[-1].refs
    missing = [f"{'wv'[i]}{f}" for i, w in enumerate(s.ws) for f in range(1, w.files + 1)
               if not any(base_of(o) == f"{'wv'[i]}{f}" for o in refs)]
    if any(w.pc != "done" for w in s.ws) or missing or not any(base_of(o) == "d1" for o in refs):
        return f"the writers' files {missing} or D's drop are not in the last commit"
    first = next((g for g, c in enumerate(s.chain) if c.epoch > 1), None)
    if first is not None and s.keystores[-1].retired_at != first - 1:
        return f"epoch 1 is retired at {s.keystores[-1].retired_at}, not right before c/{first}"
    return None


def spec(level: str = "default", mutant: str | None = None) -> Spec[State]:
    if mutant is not None and mutant not in MUTANTS:
        raise KeyError(mutant)
    b = LEVELS[level]
    m = Model(b, mutant)
    return Spec(
        name="rekey",
        initial=m.initial(),
        step=m.step,
        safety=(("every commit stays valid under the newest keystore", valid),
                ("no commit newly refers to an object of an older epoch", fresh_refs)),
        final=(("every file and the drop are committed, epoch 1 retired right before epoch 2", finished),),
        max_depth=b.depth,
        bounds=f"{b.writers} writer(s) x {b.files} file(s), {b.drops} drop, 1 rekey ({b.crashes} kill)",
        show=lambda s: (f"chain {[(c.by, c.epoch) for c in s.chain]} keystores {list(s.keystores)} "
                        f"writers {[(w.pc, w.epoch) for w in s.ws]}"),
    )
