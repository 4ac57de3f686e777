"""Model of prune beside writers (issue 13: leases, deletion records, rescues).

It mirrors the code: ``engine/transfer/prune.py`` (``Pruner.run``: P1–P6, ``settle``, ``clear``),
``engine/repo/leases.py`` (``Lease``, ``check_marked``, ``_copy_and_restore``) and
``engine/guard.py`` (``WriteGuard``: W1 at the first upload, W3 before ``c/`` is written, W4).
A change to either must be made in both (and in ``docs/format.md``, "Concurrency protocols").

Objects are content-addressed: ``x`` is referenced by the head, ``y`` by a forgotten generation
only (garbage), and writers want to commit trees that dedup against ``y`` and upload new objects.
Re-uploading an object that exists does nothing, so a dedup decision can be overtaken by a delete.

Pruner (one run; ``deep`` runs two):
  P1 read the newest commit and list ``o/``: candidates = objects no kept commit references;
  P2 write a create-only deletion record D (time T) naming them;
  P3 wait until every lease that started before T has ended or expired (no writer: no wait);
  P4 write D's create-only sweep mark S — from here the candidate set only shrinks;
  P5 re-read the newest commit and the rescue records; drop what they reference;
  P6 delete the rest, one object at a time, then write D's end mark.
  A record stays after its end mark; a later run deletes the records that had ended before it
  began, once its own P3 wait is over (every lease that existed at their end has ended by then).

Writer (each holds a lease under ``l/`` from its first dedup decision until it commits):
  W1 create the lease (heartbeat with a TTL; it may expire while the writer is stalled), and note
     the records that have ended already: none of this writer's decisions can be marked by them;
  W2 per object: HEAD — present: dedup hit; absent: upload (create-only);
  W3 before committing: for each ref marked by a deletion record: if that record has no sweep
     mark, write a create-only rescue record, then look again: still no sweep mark → the pruner
     will read the rescue at P5 (it writes S before reading rescues); a sweep mark → the pruner may
     have passed P5: copy the object (already gone: give up, commit nothing), wait for the run's
     end mark, put the copy back under its own name if the pruner deleted it. (The specification
     first said "re-seal under a fresh name": a full chunk's name is its content address, so it
     cannot be renamed; the copy is put back once no run can delete it any more.)
     A writer whose lease expired (renewal failed) starts again at W1 — it never commits on it;
  W4 commit (create-only; a lost race re-reads and retries, here folded into one step), then
     end the lease.

The lease wait covers writers that decided before D existed; the rescue covers those that started
after it; the sweep mark orders a rescue against the pruner's last read. Commit time after the
last lease check is assumed shorter than the TTL margin (the writer checks its lease at W3 and
commits within the margin), so expiry is modelled only while a writer is stalled before W3.

Invariants: no committed reference to a deleted object; no kept generation's object deleted;
and (at the end) prune frees the garbage nobody took back, so a prune that never deletes fails.
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar

from .explore import Spec

MUTANTS = {
    "prune-ignores-leases": "prune deletes without waiting for the leases older than its deletion record",
    "writer-skips-rescue": "a writer commits marked refs without writing a rescue record",
    "prune-skips-recheck": "prune does not re-read the newest commit before deleting",
    "prune-ignores-rescues": "prune does not read rescue records before deleting",
    "rescues-read-before-sweep": "prune reads the rescues before it writes the sweep mark",
    "writer-ignores-expired-lease": "a writer whose lease expired commits anyway",
    "writer-trusts-rescue-after-sweep": "a writer relies on its rescue although the sweep mark exists",
}

T = TypeVar("T")
Obj = str  # an object name: content id, or content id + "'" for a re-sealed copy


class Writer(NamedTuple):
    pc: str  # start | decide | check | recheck | copy | restore | commit | done | failed (refused to commit)
    lease: int | None  # start time of the live lease (None: none or ended)
    expired: bool
    todo: tuple[str, ...]  # contents still to decide
    refs: tuple[Obj, ...]  # objects the commit will reference
    rescued: tuple[Obj, ...]
    stalls: int
    ignored: frozenset[int] = frozenset()  # records that had ended before the lease began
    copies: tuple[Obj, ...] = ()  # objects copied at W3, to put back once their run has ended


class Pruner(NamedTuple):
    pc: str  # scan | mark | wait | sweep | recheck | delete | done
    runs: int
    candidates: frozenset[Obj]
    record: int | None  # time of its deletion record
    rescues_seen: frozenset[Obj]
    ended: frozenset[int] = frozenset()  # records that had ended when this run began: cleared after P3


class State(NamedTuple):
    clock: int
    objects: frozenset[Obj]
    deleted: frozenset[Obj]
    commits: tuple[frozenset[Obj], ...]  # referenced objects of each kept commit
    records: tuple[tuple[int, frozenset[Obj], bool, bool], ...]  # time, candidates, swept, ended
    rescues: frozenset[tuple[int, Obj]]  # (the record it answers, object)
    writers: tuple[Writer, ...]
    pruner: Pruner


class Bounds(NamedTuple):
    wants: tuple[tuple[str, ...], ...]  # per writer, the contents its commit references
    runs: int
    stalls: int
    depth: int


LEVELS = {
    "small": Bounds((("y", "z"),), 1, 1, 40),
    "default": Bounds((("y", "z"), ("y",)), 1, 1, 60),
    "deep": Bounds((("y", "z"), ("y", "x")), 2, 1, 80),
}


def _set(items: tuple[T, ...], i: int, value: T) -> tuple[T, ...]:
    return items[:i] + (value,) + items[i + 1 :]


def _kept(s: State) -> frozenset[Obj]:
    out: frozenset[Obj] = frozenset()
    for refs in s.commits:
        out |= refs
    return out


class Model:
    def __init__(self, b: Bounds, mutant: str | None) -> None:
        self.b = b
        self.m = mutant

    def initial(self) -> State:
        ws = tuple(Writer("start", None, False, w, (), (), 0) for w in self.b.wants)
        p = Pruner("scan", 0, frozenset(), None, frozenset())
        # the head references x; y was referenced only by a forgotten generation
        return State(0, frozenset({"x", "y"}), frozenset(), (frozenset({"x"}),), (), frozenset(), ws, p)

    def step(self, s: State) -> list[tuple[str, State]]:
        out = []
        for i, w in enumerate(s.writers):
            for label, ns, nw in self._writer(s, i, w):
                out.append((f"W{i} {label}", ns._replace(writers=_set(ns.writers, i, nw))))
        for label, ns, np in self._pruner(s, s.pruner):
            out.append((f"prune {label}", ns._replace(pruner=np)))
        return out

    def _writer(self, s: State, i: int, w: Writer) -> list[tuple[str, State, Writer]]:
        out: list[tuple[str, State, Writer]] = []
        tick = s._replace(clock=s.clock + 1)
        live = [(t, c, sw, dn) for t, c, sw, dn in s.records if t not in w.ignored]
        if w.pc == "start":
            ended = frozenset(t for t, _, _, dn in s.records if dn)
            restart = Writer("decide", s.clock, False, self.b.wants[i], (), (), w.stalls, ended)
            out.append((f"W1 lease l/w{i} from t{s.clock}", tick, restart))
        elif w.pc == "decide":
            c, rest = w.todo[0], w.todo[1:]
            nxt = "check" if not rest else "decide"
            if c in s.objects:
                out.append((f"W2 HEAD {c}: present, dedup", s, w._replace(pc=nxt, todo=rest, refs=w.refs + (c,))))
            else:
                ns = s._replace(objects=s.objects | {c})
                out.append((f"W2 upload {c}", ns, w._replace(pc=nxt, todo=rest, refs=w.refs + (c,))))
        elif w.pc == "check":
            if w.expired and self.m != "writer-ignores-expired-lease":
                out.append(("W3 lease expired: start again", s, w._replace(pc="start", lease=None)))
                return out
            marked = [r for r in w.refs if any(r in c for _, c, _, _ in live)]
            if self.m == "writer-skips-rescue" or not marked:
                out.append(("W3 check deletion records: none applies", s, w._replace(pc="commit")))
            else:  # a rescue for each open record that marks a ref, then the marks are read again (next step)
                rescues = {(t, r) for t, c, sw, dn in live if not (sw or dn) for r in marked if r in c}
                out.append((f"W3 {','.join(marked)} marked: rescue record written", s._replace(
                    rescues=s.rescues | rescues), w._replace(pc="recheck", rescued=tuple(marked))))
        elif w.pc == "recheck":
            swept = [r for r in w.rescued if any(r in c and (sw or dn) for _, c, sw, dn in live)]
            if swept and self.m != "writer-trusts-rescue-after-sweep":
                out.append((f"W3 sweep mark seen: copy {','.join(swept)}", s,
                            w._replace(pc="copy", copies=tuple(swept))))
            else:
                out.append(("W3 no sweep mark: the rescue holds", s, w._replace(pc="commit")))
        elif w.pc == "copy":
            gone = [r for r in w.copies if r not in s.objects]
            if gone:  # deleted before the copy: the commit is refused (the files must be stored again)
                out.append((f"W3 {','.join(gone)} already deleted: give up", s,
                            w._replace(pc="failed", lease=None, refs=())))
            else:
                out.append((f"W3 copied {','.join(w.copies)}", s, w._replace(pc="restore")))
        elif w.pc == "restore":
            running = [t for t, c, _, dn in live if not dn and any(r in c for r in w.copies)]
            if not running:  # every run that marked them has its end mark: nobody deletes them now
                back = frozenset(w.copies) - s.objects
                ns = s._replace(objects=s.objects | back, deleted=s.deleted - back)
                out.append((f"W3 run ended: put back {','.join(sorted(back)) or 'nothing'}", ns,
                            w._replace(pc="commit")))
        elif w.pc == "commit":
            ns = s._replace(commits=s.commits + (s.commits[-1] | frozenset(w.refs),))
            out.append((f"W4 commit c/{len(s.commits)} referencing {','.join(w.refs)}; lease ended", ns,
                        w._replace(pc="done", lease=None)))
        if w.pc in ("decide", "check") and not w.expired and w.stalls < self.b.stalls:
            out.append(("stalls past its lease TTL", s, w._replace(expired=True, stalls=w.stalls + 1)))
        return out

    def _pruner(self, s: State, p: Pruner) -> list[tuple[str, State, Pruner]]:
        out: list[tuple[str, State, Pruner]] = []
        if p.pc == "scan" and p.runs < self.b.runs:
            cands = frozenset(s.objects - s.deleted - _kept(s))
            ended = frozenset(t for t, _, _, dn in s.records if dn)
            out.append((f"P1 scan: candidates {','.join(sorted(cands)) or 'none'}", s,
                        p._replace(pc="mark", candidates=cands, ended=ended)))
        elif p.pc == "mark":
            rec = (s.clock, p.candidates, False, False)
            ns = s._replace(clock=s.clock + 1, records=s.records + (rec,))
            out.append((f"P2 deletion record D@t{s.clock}", ns, p._replace(pc="wait", record=s.clock)))
        elif p.pc == "wait":
            assert p.record is not None
            older = [w for w in s.writers if w.lease is not None and w.lease < p.record and not w.expired]
            if not older or self.m == "prune-ignores-leases":
                nxt = "recheck" if self.m == "rescues-read-before-sweep" else "sweep"
                # the records that had ended before this run: every lease older than them has ended
                recs = tuple(r for r in s.records if r[0] not in p.ended)
                resc = frozenset(x for x in s.rescues if x[0] not in p.ended)
                out.append(("P3 no older lease is live; earlier ended records deleted",
                            s._replace(records=recs, rescues=resc), p._replace(pc=nxt)))
        elif p.pc == "sweep":
            recs = tuple((t, c, True, dn) if t == p.record else (t, c, sw, dn) for t, c, sw, dn in s.records)
            nxt = "delete" if self.m == "rescues-read-before-sweep" else "recheck"
            out.append(("P4 sweep mark", s._replace(records=recs), p._replace(pc=nxt)))
        elif p.pc == "recheck":
            rescued = frozenset(o for t, o in s.rescues if t == p.record)
            keep = (frozenset() if self.m == "prune-skips-recheck" else _kept(s)) | (
                frozenset() if self.m == "prune-ignores-rescues" else rescued)
            cands = p.candidates - keep
            nxt = "sweep" if self.m == "rescues-read-before-sweep" else "delete"
            out.append((f"P5 re-read head and rescues: delete {','.join(sorted(cands)) or 'nothing'}", s,
                        p._replace(pc=nxt, candidates=cands)))
        elif p.pc == "delete":
            if not p.candidates:
                recs = tuple((t, c, sw, True) if t == p.record else (t, c, sw, dn) for t, c, sw, dn in s.records)
                out.append(("P6 done: end mark", s._replace(records=recs),
                            p._replace(pc="scan", runs=p.runs + 1, record=None)))
            for o in sorted(p.candidates):
                ns = s._replace(objects=s.objects - {o}, deleted=s.deleted | {o})
                out.append((f"P6 delete {o}", ns, p._replace(candidates=p.candidates - {o})))
        return out


def committed_refs_exist(s: State) -> str | None:
    for g, refs in enumerate(s.commits):
        for o in sorted(refs):
            if o not in s.objects:
                return f"c/{g} references {o}, which prune deleted"
    return None


def garbage_freed(s: State) -> str | None:
    if s.pruner.pc not in ("scan", "done") or s.pruner.runs == 0:
        return None
    if any(w.pc != "done" for w in s.writers):
        return None  # a writer still running, or one that gave up (what it uploaded after the run is garbage)
    if "y" in s.objects and "y" not in _kept(s) and not any(o == "y" for _, o in s.rescues):
        return "the garbage object y outlived a finished prune that nobody raced"
    return None


def spec(level: str = "default", mutant: str | None = None) -> Spec[State]:
    if mutant is not None and mutant not in MUTANTS:
        raise KeyError(mutant)
    b = LEVELS[level]
    m = Model(b, mutant)
    wants = " ".join(f"W{i}:{','.join(w)}" for i, w in enumerate(b.wants))
    return Spec(
        name="prune",
        initial=m.initial(),
        step=m.step,
        safety=(("no committed reference to a deleted object", committed_refs_exist),),
        final=(("prune frees the garbage", garbage_freed),),
        max_depth=b.depth,
        bounds=f"{len(b.wants)} writers ({wants}), {b.runs} prune run(s), {b.stalls} lease expiry per writer",
        show=lambda s: f"objects {sorted(s.objects)} commits {[sorted(c) for c in s.commits]} "
                       f"rescues {sorted(s.rescues)} records {[(t, sorted(c), sw, dn) for t, c, sw, dn in s.records]}",
    )
