"""Model of the commit protocol (CRYPTO.md §5.2; ``engine/committer.py`` ``Committer.commit``/``refresh``).

Mirror of the code: a change to ``Committer.commit``, ``Committer.refresh`` (with ``_holds``, ``_catch_up``
and the ``_unsure`` records), ``engine/catalog/tree.py`` ``merge``,
``engine/repo/history.py`` or the create-only ``put_if_absent`` contract must be made here too (and in
``docs/format.md``, "Concurrency protocols"); ``tests/models/test_commit_replay.py`` replays this
model's interesting traces against the real engine.

Actors: writers (Vault instances), each with a script of edits, and a storage that may lose a
``put_if_absent`` response (the object is created, the writer sees ``BackendUnavailable``) or fail
it outright. A writer's steps are the code's:

* ``edit`` — ``put`` uploads the content object (create-only), then changes the tree (pending);
* ``refresh`` — adopt the newest head; with pending edits, catch up (below);
* ``commit`` — seal ``c/{head+1}`` with ``parent = head`` over the current tree, ``put_if_absent``:

  - created → acknowledged: head and base move to it, the tree is clean;
  - ``False`` → fetch ``c/{gen}``: the very bytes just sent (a retried put whose first answer was
    lost) → acknowledged; otherwise catch up and try ``head+1`` again;
  - error → the retrying wrapper sends the same bytes again, or the error reaches the caller, who
    may call ``commit`` later; the bytes sent are remembered as *unsure*.

* catch up — find the head; a commit at ``head+1`` holding unsure bytes of ours is adopted as our
  base (our tree already continues it); anything newer is theirs: three-way merge (``tree.merge``:
  a path changed on both sides keeps theirs and makes ours a conflict copy).

Tree entries are edit tokens ``(writer, n, token it replaced)``, so "who had seen what" is in the
data. Invariants: an acknowledged edit is in the head or was knowingly replaced; every committed
reference exists (write ordering); an acknowledged record is never replaced; and no conflict copy
of an edit that a later edit knowingly replaced (the model found the engine doing this — a lost
response to its own commit made the writer merge its own commit as "theirs").
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar

from .explore import Spec

MUTANTS = {
    "put-overwrites": "the commit record is written with a plain PUT instead of a create-only put",
    "merge-keeps-ours": "a writer that lost the race retries with its own tree, without merging theirs",
    "commit-before-upload": "the commit record is written before the content objects it references",
    "error-means-success": "a put that failed is reported to the caller as a successful commit",
    "own-commit-is-a-race": "a writer does not recognise its own commit whose response was lost (engine before fix)",
}

T = TypeVar("T")
Token = tuple[int, int, object]  # (writer, edit index, token it replaced or None)
Tree = frozenset[tuple[str, Token]]


class Record(NamedTuple):
    writer: int
    nonce: int  # sealing is randomised: a fresh seal never has the same bytes
    parent: int
    tree: Tree


class Writer(NamedTuple):
    pc: str  # idle | put
    head: int
    base: Tree
    tree: Tree
    dirty: bool
    edits: int  # edits made so far
    nonce: int
    sending: Record | None
    unsure: frozenset[tuple[int, Record]]
    acked: frozenset[Token]
    acked_gens: frozenset[tuple[int, Record]]
    not_uploaded: frozenset[Token]


class State(NamedTuple):
    store: tuple[Record, ...]  # c/{gen} for gen = index
    objects: frozenset[Token]
    faults: int
    writers: tuple[Writer, ...]


class Bounds(NamedTuple):
    scripts: tuple[tuple[str, ...], ...]  # per writer, the paths it edits in order
    faults: int
    depth: int


LEVELS = {
    "small": Bounds((("p",), ("p",)), 1, 40),
    "default": Bounds((("p",), ("p", "q")), 2, 60),
    "deep": Bounds((("p",), ("p", "q")), 3, 80),
}


def _get(tree: Tree, name: str) -> Token | None:
    return next((t for n, t in tree if n == name), None)


def _put(tree: Tree, name: str, token: Token) -> Tree:
    return frozenset({(n, t) for n, t in tree if n != name} | {(name, token)})


def merge(base: Tree, ours: Tree, theirs: Tree) -> Tree:
    """``engine/catalog/tree.py`` ``merge`` on flat trees: theirs wins a conflict, ours becomes a copy."""
    b, o, t = dict(base), dict(ours), dict(theirs)
    out: dict[str, Token] = {}
    for name in sorted(set(b) | set(o) | set(t)):
        bn, on, tn = b.get(name), o.get(name), t.get(name)
        if on == bn:
            pick = tn
        elif tn == bn or on == tn:
            pick = on
        else:
            pick = tn
            if on is not None:
                out[f"{name}~{on[0]}.{on[1]}"] = on
        if pick is not None:
            out[name] = pick
    return frozenset(out.items())


class Model:
    def __init__(self, bounds: Bounds, mutant: str | None) -> None:
        self.b = bounds
        self.m = mutant

    def initial(self) -> State:
        root = Record(-1, 0, -1, frozenset())
        w = Writer("idle", 0, frozenset(), frozenset(), False, 0, 0, None, frozenset(), frozenset(), frozenset(),
                   frozenset())
        return State((root,), frozenset(), self.b.faults, tuple(w for _ in self.b.scripts))

    def step(self, s: State) -> list[tuple[str, State]]:
        out: list[tuple[str, State]] = []
        for i, w in enumerate(s.writers):
            for label, ns, nw in self._writer(s, i, w):
                out.append((f"{label}: W{i} {_desc(nw)}", ns._replace(writers=_set(ns.writers, i, nw))))
        return out

    def _writer(self, s: State, i: int, w: Writer) -> list[tuple[str, State, Writer]]:
        out: list[tuple[str, State, Writer]] = []
        if w.pc == "idle":
            script = self.b.scripts[i]
            if w.edits < len(script):
                path = script[w.edits]
                token: Token = (i, w.edits, _get(w.tree, path))
                nw = w._replace(tree=_put(w.tree, path, token), dirty=True, edits=w.edits + 1)
                if self.m == "commit-before-upload":
                    out.append((f"edit {path}", s, nw._replace(not_uploaded=w.not_uploaded | {token})))
                else:
                    out.append((f"edit {path} (content uploaded)", s._replace(objects=s.objects | {token}), nw))
            for token in sorted(w.not_uploaded):
                out.append((f"upload {token[:2]}", s._replace(objects=s.objects | {token}),
                            w._replace(not_uploaded=w.not_uploaded - {token})))
            if len(s.store) - 1 > w.head:
                out.append(("refresh", s, self._catch_up(s, w)))
            if w.dirty:
                rec = Record(i, w.nonce + 1, w.head, w.tree)
                out.append((f"commit: seal c/{w.head + 1}", s, w._replace(pc="put", nonce=w.nonce + 1, sending=rec)))
        elif w.pc == "put":
            out.extend(self._put(s, i, w))
        return out

    def _put(self, s: State, i: int, w: Writer) -> list[tuple[str, State, Writer]]:
        rec = w.sending
        assert rec is not None
        gen = w.head + 1
        free = len(s.store) == gen
        out: list[tuple[str, State, Writer]] = []
        if free or self.m == "put-overwrites":
            store = s.store + (rec,) if free else _set(s.store, gen, rec)
            out.append((f"put c/{gen} created", s._replace(store=store), self._acked(w, gen)))
        else:
            mine = s.store[gen] == rec  # fetch c/{gen}: the bytes we sent (a retry after a lost answer)
            if mine and self.m != "own-commit-is-a-race":
                out.append((f"put c/{gen} exists; fetch: our bytes", s, self._acked(w, gen)))
            else:
                nw = self._catch_up(s, w)._replace(pc="put", nonce=w.nonce + 1)
                nw = nw._replace(sending=Record(i, nw.nonce, nw.head, nw.tree))
                out.append((f"put c/{gen} exists; catch up, seal c/{nw.head + 1}", s, nw))
        if s.faults > 0:
            f = s.faults - 1
            lost = s._replace(store=s.store + (rec,), faults=f) if free else s._replace(faults=f)
            gave_up = w._replace(pc="idle", sending=None, unsure=w.unsure | {(gen, rec)})
            out.append((f"put c/{gen}: response lost; retried", lost, w))
            out.append((f"put c/{gen}: response lost; error to caller", lost, gave_up))
            failed = s._replace(faults=f)
            out.append((f"put c/{gen}: failed; retried", failed, w))
            if self.m == "error-means-success":
                out.append((f"put c/{gen}: failed; reported committed", failed, self._acked(w, gen)))
            else:
                out.append((f"put c/{gen}: failed; error to caller", failed, gave_up))
        return out

    def _acked(self, w: Writer, gen: int) -> Writer:
        assert w.sending is not None
        mine = frozenset(t for _, t in w.tree if t[0] == w.sending.writer)
        return w._replace(pc="idle", head=gen, base=w.tree, dirty=False, sending=None, acked=w.acked | mine,
                          acked_gens=w.acked_gens | {(gen, w.sending)})

    def _catch_up(self, s: State, w: Writer) -> Writer:
        head, base, tree = w.head, w.base, w.tree
        newest = len(s.store) - 1
        if self.m != "own-commit-is-a-race" and head < newest and (head + 1, s.store[head + 1]) in w.unsure:
            head += 1  # our own commit landed though we saw an error: it is our base, not theirs
            base = s.store[head].tree
        if newest > head:
            theirs = s.store[newest].tree
            if w.dirty and self.m != "merge-keeps-ours":
                tree = merge(base, tree, theirs)
            elif not w.dirty:
                tree = theirs
            base = theirs
            head = newest
        return w._replace(head=head, base=base, tree=tree)


def _set(items: tuple[T, ...], i: int, value: T) -> tuple[T, ...]:
    return items[:i] + (value,) + items[i + 1 :]


def _desc(w: Writer) -> str:
    return f"(head {w.head}, tree {_show_tree(w.tree)})"


def _show_tree(tree: Tree) -> str:
    return "{" + ", ".join(f"{n}={_tok(t)}" for n, t in sorted(tree)) + "}"


def _tok(t: Token) -> str:
    return f"w{t[0]}.{t[1]}"


# --- invariants --------------------------------------------------------------------------------


def _replaced_by(tree: Tree) -> set[Token]:
    """Every token some entry of ``tree`` knowingly replaced (transitively)."""
    out: set[Token] = set()
    for _, t in tree:
        prev = t[2]
        while prev is not None:
            assert isinstance(prev, tuple)
            out.add(prev)
            prev = prev[2]
    return out


def acked_not_lost(s: State) -> str | None:
    head = s.store[-1].tree
    present = {t for _, t in head} | _replaced_by(head)
    for i, w in enumerate(s.writers):
        for t in sorted(w.acked - present):
            return f"W{i}'s acknowledged edit {_tok(t)} is not in the head c/{len(s.store) - 1} {_show_tree(head)}"
    return None


def acked_record_stays(s: State) -> str | None:
    for i, w in enumerate(s.writers):
        for gen, rec in w.acked_gens:
            if s.store[gen] != rec:
                return f"W{i}'s acknowledged c/{gen} was replaced"
    return None


def refs_exist(s: State) -> str | None:
    for gen, rec in enumerate(s.store):
        for name, t in rec.tree:
            if t not in s.objects:
                return f"c/{gen} references {name}={_tok(t)} whose content object was never stored"
    return None


def no_spurious_conflict(s: State) -> str | None:
    head = s.store[-1].tree
    replaced = _replaced_by(head)
    for name, t in sorted(head):
        if "~" in name and t in replaced:
            return f"c/{len(s.store) - 1} has conflict copy {name} of {_tok(t)}, which a later edit replaced"
    return None


def spec(level: str = "default", mutant: str | None = None) -> Spec[State]:
    if mutant is not None and mutant not in MUTANTS:
        raise KeyError(mutant)
    b = LEVELS[level]
    m = Model(b, mutant)
    scripts = " ".join("W{}:{}".format(i, ",".join(p)) for i, p in enumerate(b.scripts))
    return Spec(
        name="commit",
        initial=m.initial(),
        step=m.step,
        safety=(("acknowledged commit not lost", acked_not_lost), ("acknowledged record stays", acked_record_stays),
                ("committed references exist", refs_exist), ("no conflict copy of a replaced edit",
                                                              no_spurious_conflict)),
        max_depth=b.depth,
        bounds=f"{len(b.scripts)} writers, edits {scripts}, {b.faults} faults",
        show=lambda s: " | ".join(f"c/{g}:W{r.writer}{_show_tree(r.tree)}" for g, r in enumerate(s.store)),
    )
