"""Model of ``rekey --rewrite`` (issue 13; mirrors ``engine/rewriting.py``, the committer's merge with
``theirs_base`` and ``engine/reseal.py``; change them together): re-encrypt every object
the kept generations refer to under the new epoch, beside a writer, a pruner and a kill -9.

Commits are immutable and hash-chained, so a rewritten generation cannot change its own record: the
rewriter's completing commit carries a map from each kept generation to its rewritten tree (its
"effective" tree: what ``log``, ``restore --at``, ``diff`` and prune read from then on). The old
epoch's objects then go by the prune protocol. An object's name carries its epoch ("a@1" → "a@2":
names are keyed per epoch, so the rewritten object has a new name; the same content rewritten
twice gets the same name, which is what makes a killed rewrite resumable).

Rewriter X: (X1) read the head h; (X2) write the epoch-2 copy of every epoch-1 object the effective
trees of the kept generations up to h refer to (one object per step; killed: back to X1, what it
wrote stays); (X3) read the head again: newer generations → back to X2 for them; (X4) create
``c/{h+1}`` whose tree is the head's rewritten and whose map covers every kept generation up to h
(a lost race: back to X3). Writer W (an owner client that opened before the rekey's rewrite): it
renames one file and rewrites another (a new epoch-2 upload), then commits: (W1) read the head;
a newer head → three-way merge onto it, and re-seal every ref the merged tree newly holds (not in
the head's tree) that is of an older epoch (the rename's blobs, which the head holds only rewritten);
(W2) create ``c/{head+1}`` (a lost race: back to W1). A second writer V adds a new file on
whatever head it reads (so the head moves under X between X1 and X4). Pruner P: deletes every object no kept
generation's effective tree and no running actor's pending upload refers to (the prune protocol,
modelled on its own in models/prune.py, guarantees that last part: X holds a writer's lease
until its map lands); it may run at any point.

Invariants: every kept generation's effective tree refers only to objects that exist (nothing is
lost); an effective tree holds the same files with the same contents as the generation's own tree
(a rewrite changes the encryption, never the data); no commit after the map refers to an epoch-1
object; at the end, after a last prune, no epoch-1 object is left.
"""

from __future__ import annotations

from typing import NamedTuple

from .explore import Spec

MUTANTS = {
    "map-stops-at-first-head": "X maps only the generations up to the head it read at X1 (skips X3's re-read)",
    "rebase-keeps-old-refs": "W merges onto the rewritten head without re-sealing its renamed file's old refs",
    "rewriter-holds-no-lease": "X's copies are not pending for P until its map lands (X takes no writer lease)",
    "x-maps-to-head-tree": "X maps every kept generation to the head's rewritten tree",
}

Tree = frozenset[tuple[str, str]]  # (path, object "base@epoch")


def epoch_of(o: str) -> int:
    return int(o.rpartition("@")[2])


def base_of(o: str) -> str:
    return o.rpartition("@")[0]


def rewritten(t: Tree) -> Tree:
    return frozenset((p, f"{base_of(o)}@2") for p, o in t)


class Commit(NamedTuple):
    epoch: int
    tree: Tree
    mapping: tuple[tuple[int, Tree], ...]  # the rewrite's map (generation -> effective tree)
    by: str


class Writer(NamedTuple):
    pc: str  # edit | decide | create | done
    base: int
    tree: Tree
    edits: int
    pending: frozenset[str]
    head: int


class Rewriter(NamedTuple):
    pc: str  # x1 | x2 | x3 | x4 | done
    upto: int  # kept generations up to this one are being rewritten
    todo: frozenset[str]


class State(NamedTuple):
    chain: tuple[Commit, ...]
    objects: frozenset[str]
    w: Writer
    v: str  # a second writer that adds file v: decide | create@<head> | done
    x: Rewriter
    prunes: int
    kills: int


class Bounds(NamedTuple):
    edits: int
    prunes: int
    kills: int
    depth: int


LEVELS = {
    "small": Bounds(2, 1, 1, 40),
    "default": Bounds(2, 2, 1, 50),
    "deep": Bounds(2, 3, 2, 60),
}
START: Tree = frozenset({("a", "a@1"), ("b", "b@1")})


def mapping(s: State) -> dict[int, Tree]:
    out: dict[int, Tree] = {}
    for c in s.chain:
        out.update(c.mapping)
    return out


def effective(s: State, g: int, own: bool = False) -> Tree:
    return s.chain[g].tree if own else mapping(s).get(g, s.chain[g].tree)


def merge(base: Tree, ours: Tree, theirs: Tree) -> Tree:
    """Per path: ours where ours changed it, else theirs (the writer's changes win; enough here)."""
    b, o, t = dict(base), dict(ours), dict(theirs)
    out = {}
    for p in set(b) | set(o) | set(t):
        mine = o.get(p)
        if mine != b.get(p):
            if mine is not None:
                out[p] = mine
        elif p in t:
            out[p] = t[p]
    return frozenset(out.items())


class Model:
    def __init__(self, b: Bounds, mutant: str | None) -> None:
        self.b = b
        self.m = mutant

    def initial(self) -> State:
        chain = (Commit(1, START, (), "init"), Commit(2, START, (), "rekey"))
        return State(chain, frozenset(o for _, o in START), Writer("edit", 1, START, 0, frozenset(), 0), "decide",
                     Rewriter("x1", 0, frozenset()), self.b.prunes, self.b.kills)

    def step(self, s: State) -> list[tuple[str, State]]:
        return self._writer(s) + self._second(s) + self._rewriter(s) + self._pruner(s)

    def _second(self, s: State) -> list[tuple[str, State]]:
        """V adds a new file v on whatever head it reads (its upload first, then a create race)."""
        head = len(s.chain) - 1
        if s.v == "decide":
            return [(f"V uploads v@2 and reads head {head}", s._replace(objects=s.objects | {"v@2"},
                                                                      v=f"create@{head}"))]
        if s.v.startswith("create@"):
            at = int(s.v[7:])
            if len(s.chain) != at + 1:
                return [(f"V loses the race for c/{at + 1}", s._replace(v="decide"))]
            tree = s.chain[at].tree | {("v", "v@2")}
            return [(f"V creates c/{at + 1}", s._replace(chain=(*s.chain, Commit(2, tree, (), "V")), v="done"))]
        return []

    def _writer(self, s: State) -> list[tuple[str, State]]:
        w = s.w
        head = len(s.chain) - 1
        if w.pc == "edit":
            if w.edits == 0:  # rename a -> c (its blobs stay what they were)
                t = dict(w.tree)
                t["c"] = t.pop("a")
                nxt = w._replace(tree=frozenset(t.items()), edits=1)
                label = "W renames a to c"
            else:  # rewrite b: a new upload under the current epoch
                t = dict(w.tree)
                t["b"] = "b2@2"
                nxt = w._replace(tree=frozenset(t.items()), edits=2, pending=w.pending | {"b2@2"})
                return [("W writes b anew (b2@2)", s._replace(objects=s.objects | {"b2@2"},
                                                             w=nxt._replace(pc="decide")))]
            return [(label, s._replace(w=nxt._replace(pc="edit" if self.b.edits > 1 else "decide")))]
        if w.pc == "decide":
            if head == w.base:
                return [(f"W1 reads head {head}", s._replace(w=w._replace(pc="create", head=head)))]
            theirs = s.chain[head].tree
            merged = merge(s.chain[w.base].tree, w.tree, theirs)
            held = {o for _, o in theirs}
            stale = {o for _, o in merged if o not in held and epoch_of(o) < 2}
            objects, pending = s.objects, w.pending
            if stale and self.m != "rebase-keeps-old-refs":
                merged = frozenset((p, f"{base_of(o)}@2" if o in stale else o) for p, o in merged)
                fresh = {f"{base_of(o)}@2" for o in stale}
                objects, pending = objects | fresh, pending | fresh
            return [(f"W1 merges onto head {head}" + (f", re-seals {sorted(stale)}" if stale else ""), s._replace(
                objects=objects, w=w._replace(pc="create", base=head, tree=merged, pending=pending, head=head)))]
        if w.pc == "create":
            if len(s.chain) != w.head + 1:
                return [(f"W2 loses the race for c/{w.head + 1}", s._replace(w=w._replace(pc="decide")))]
            return [(f"W2 creates c/{w.head + 1}", s._replace(
                chain=(*s.chain, Commit(2, w.tree, (), "W")), w=w._replace(pc="done", pending=frozenset())))]
        return []

    def _old_objects(self, s: State, upto: int) -> frozenset[str]:
        return frozenset(o for g in range(upto + 1) for _, o in effective(s, g) if epoch_of(o) < 2)

    def _rewriter(self, s: State) -> list[tuple[str, State]]:
        x = s.x
        head = len(s.chain) - 1
        out: list[tuple[str, State]] = []
        if x.pc == "x1":
            out.append((f"X1 reads head {head}", s._replace(x=Rewriter("x2", head, self._old_objects(s, head)))))
        elif x.pc == "x2":
            if x.todo:
                o = min(x.todo)
                new = f"{base_of(o)}@2"
                out.append((f"X2 writes {new}", s._replace(objects=s.objects | {new}, x=x._replace(todo=x.todo - {o}))))
            else:
                nxt = "x4" if self.m == "map-stops-at-first-head" else "x3"
                out.append(("X2 done", s._replace(x=x._replace(pc=nxt))))
        elif x.pc == "x3":
            if head > x.upto:
                out.append((f"X3 head {head} is newer: rewrite what it adds", s._replace(
                    x=Rewriter("x2", head, self._old_objects(s, head)))))
            else:
                out.append((f"X3 head {head} unchanged", s._replace(x=x._replace(pc="x4"))))
        elif x.pc == "x4":
            if len(s.chain) != x.upto + 1 and self.m != "map-stops-at-first-head":
                out.append((f"X4 loses the race for c/{x.upto + 1}", s._replace(x=x._replace(pc="x3"))))
            else:
                top = len(s.chain) - 1
                tree = rewritten(effective(s, top))
                if self.m == "x-maps-to-head-tree":
                    m = tuple((g, tree) for g in range(x.upto + 1))
                else:
                    m = tuple((g, rewritten(effective(s, g))) for g in range(x.upto + 1))
                out.append((f"X4 creates c/{top + 1} with the map of 0..{x.upto}", s._replace(
                    chain=(*s.chain, Commit(2, tree, m, "X")), x=x._replace(pc="done"))))
        if x.pc in ("x2", "x3", "x4") and s.kills > 0:
            out.append((f"X is killed at {x.pc.upper()}", s._replace(x=Rewriter("x1", 0, frozenset()),
                                                                       kills=s.kills - 1)))
        return out

    def _pruner(self, s: State) -> list[tuple[str, State]]:
        if s.prunes == 0:
            return []
        used = {o for g in range(len(s.chain)) for _, o in effective(s, g)} | s.w.pending
        if s.v != "done":
            used.add("v@2")
        if s.x.pc in ("x2", "x3", "x4") and self.m != "rewriter-holds-no-lease":
            used |= {o for o in s.objects if epoch_of(o) == 2}  # its lease: what it wrote is pending
        gone = s.objects - used
        return [(f"P deletes {sorted(gone)}", s._replace(objects=s.objects - gone, prunes=s.prunes - 1))]


def nothing_lost(s: State) -> str | None:
    for g in range(len(s.chain)):
        missing = {o for _, o in effective(s, g)} - s.objects
        if missing:
            return f"generation {g} refers to deleted {sorted(missing)}"
    return None


def same_files(s: State) -> str | None:
    for g, t in mapping(s).items():
        own = s.chain[g].tree
        if {(p, base_of(o)) for p, o in t} != {(p, base_of(o)) for p, o in own}:
            return f"the map changes what generation {g} holds: {sorted(own)} -> {sorted(t)}"
    return None


def only_new_epoch_after_map(s: State) -> str | None:
    first = next((g for g, c in enumerate(s.chain) if c.mapping), None)
    if first is None:
        return None
    for g in range(first, len(s.chain)):
        old = {o for _, o in s.chain[g].tree if epoch_of(o) < 2}
        if old:
            return f"c/{g} after the map refers to epoch-1 {sorted(old)}"
    return None


def old_epoch_gone(s: State) -> str | None:
    if s.x.pc != "done" or s.w.pc != "done" or s.v != "done":
        return "the rewrite or a writer did not finish"
    used = {o for g in range(len(s.chain)) for _, o in effective(s, g)}
    old = {o for o in used if epoch_of(o) < 2}
    return f"epoch-1 objects still referenced: {sorted(old)}" if old else None


def spec(level: str = "default", mutant: str | None = None) -> Spec[State]:
    if mutant is not None and mutant not in MUTANTS:
        raise KeyError(mutant)
    b = LEVELS[level]
    m = Model(b, mutant)
    return Spec(
        name="rewrite",
        initial=m.initial(),
        step=m.step,
        safety=(("no kept generation loses an object", nothing_lost),
                ("the map keeps every generation's files", same_files),
                ("no commit after the map refers to the old epoch", only_new_epoch_after_map)),
        final=(("every generation reads under the new epoch alone", old_epoch_gone),),
        max_depth=b.depth,
        bounds=f"2 writers ({b.edits} edits, 1 new file), the rewrite ({b.kills} kill), {b.prunes} prune(s)",
        show=lambda s: (f"chain {[(c.by, sorted(c.tree)) for c in s.chain]} objects {sorted(s.objects)} "
                        f"map {sorted((g, sorted(t)) for g, t in mapping(s).items())}"),
    )
