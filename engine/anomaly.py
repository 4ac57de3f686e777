"""The guard: score a backup, import or mount window for ransomware-like change, from signals the
write pipeline computed as the data flowed (:mod:`.content.signals`), against the vault's own baseline.

Per run, over the files that were in the vault under the backed-up roots before it (``existing``):

- ``modified``: files whose content changed (recorded, never a reason on its own);
- ``jumped``: changed files now near-random (≥ :data:`RANDOM` bits per byte sampled) that carry no
  known file-format signature and were low-entropy before (< :data:`LOW`), or started differently,
  or have no earlier signal on this device: what encrypting a document or a photo in place looks like
  (a re-saved JPEG or zip keeps its signature and is not counted);
- ``renamed``: files gone from disk with a new file beside them named like them plus an extension,
  or with the same stem and a new extension (``a.docx`` → ``a.docx.locked``, ``a.locked``), whose
  content is near-random without a known signature (a rotated ``app.log.1`` → ``app.log.2.gz`` is not);
- ``deleted``: other files gone from disk (backup does not mirror deletions: the vault keeps them);
- ``truncated``: changed files now less than half their old size (old size ≥ 1 KiB).

New files never count. A run is *suspect* when a signal reaches its fixed threshold (a minimum count
and a minimum share of the existing files, :data:`DEFAULTS`); once :data:`DEFAULTS` ``baseline_runs``
earlier clean runs are recorded, a signal must also stand out from them: a robust z-score
``(x − median) / (1.4826·MAD + z_floor)`` of at least ``z10``/10 (shares in per mille), with at
least half the fixed share. The baseline is the ``guard.run`` counts in the ``meta`` of the last
``window`` clean scored runs: sealed in the chain, so every client of the vault shares it.

Slow encryption (a few files per run, each run under the minimum): a run with ``jumped`` files is
also suspect when its ``jumped`` plus that of the clean runs since the newest mark or clear record
(at most ``slow_runs`` runs in all; 0 turns this off) reaches the fixed ``jumped`` threshold (count
and share of this run's existing files), on a vault where such rewrites are not routine (fewer than
``baseline_runs`` earlier runs, or a baseline median of 0 jumped files). The sum counts files per
run: one file rewritten to random bytes on every run counts on each.

A suspect run still commits; its commit's ``meta.guard`` says ``suspect`` and why, and records the
thresholds it was scored with. ``clear`` records lift marks; ``tune`` records set thresholds
(integers; the newest applies). ``forget`` keeps
:func:`protected_generations` unless forced.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .content.signals import FileSignal
from .errors import UsageError
from .format.commits import Commit
from .repo.history import History

LOW = 7.0
RANDOM = 7.5
SIGNALS = ("jumped", "renamed", "deleted", "truncated")
DEFAULTS: dict[str, int] = {
    "jumped_min": 3, "jumped_permille": 20,
    "renamed_min": 3, "renamed_permille": 20,
    "deleted_min": 10, "deleted_permille": 250,
    "truncated_min": 5, "truncated_permille": 50,
    "baseline_runs": 5, "window": 20, "z10": 40, "z_floor": 5, "slow_runs": 10,
}
#: leading bytes of formats that are compressed or encrypted by design: near-random yet not ransomware
MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"7z\xbc\xaf",
         b"%PDF", b"GIF8", b"BZh", b"\xfd7zXZ", b"RIFF", b"OggS", b"fLaC", b"ID3", b"\x1a\x45\xdf\xa3",
         b"Rar!", b"\x03\xd9\xa2\x9a", b"SQLite format 3", b"-----BEGIN PGP", b"\x85\x01\x0c\x03",
         b"age-encryption.org/")
WHAT = {
    "jumped": "rewritten to near-random content",
    "renamed": "renamed to a new extension",
    "deleted": "deleted",
    "truncated": "truncated to under half their size",
}


def known_format(head: bytes) -> bool:
    return head.startswith(MAGIC) or head[4:8] == b"ftyp"


def looks_renamed(gone: bytes, new: bytes) -> bool:
    """``new`` is ``gone`` plus an extension, or the same stem with another extension, in the same folder."""
    a, b = os.path.split(gone), os.path.split(new)
    if a[0] != b[0]:
        return False
    if b[1].startswith(a[1] + b"."):
        return True
    (sa, ea), (sb, eb) = os.path.splitext(a[1]), os.path.splitext(b[1])
    return sa == sb and ea != eb and bool(eb)


def run_counts(existing: Iterable[bytes], scanned: Iterable[bytes], signals: Mapping[bytes, FileSignal],
               prior: Mapping[bytes, FileSignal]) -> dict[str, int]:
    """One run's counts (see the module doc). ``existing``: vault file paths under the roots before the
    run; ``scanned``: the file paths on disk now; ``signals``: of every file read, ``prior``: the
    previous version's (this device's local cache) where known. Paths are ``b"a/b"``."""
    before = set(existing) | {p for p, s in signals.items() if s.existed}
    on_disk = set(scanned)
    out = dict.fromkeys(("existing", "added", "modified", *SIGNALS), 0)
    out["existing"] = len(before)
    for path, s in signals.items():
        if not s.existed:
            out["added"] += 1
            continue
        if s.same:
            continue
        out["modified"] += 1
        old = prior.get(path)
        was_plain = old is None or old.entropy < LOW or old.head != s.head
        if _opaque(s) and was_plain:
            out["jumped"] += 1
        if s.old_size >= 1024 and s.size < s.old_size // 2:
            out["truncated"] += 1
    gone = sorted(before - on_disk)
    fresh: dict[bytes, list[bytes]] = {}
    for p in on_disk - before:
        fresh.setdefault(os.path.split(p)[0], []).append(p)
    for g in gone:
        like = [n for n in fresh.get(os.path.split(g)[0], ()) if looks_renamed(g, n)]
        if not like:
            out["deleted"] += 1
        elif any(n in signals and _opaque(signals[n]) for n in like):
            out["renamed"] += 1  # and its content is now opaque: a rotated log (or its .gz) is not
    return out


def _opaque(s: FileSignal) -> bool:
    """Near-random content without a known format's signature: what encryption leaves."""
    return s.entropy >= RANDOM and not known_format(s.head)


def thresholds(tune: Mapping[str, int] | None) -> dict[str, int]:
    t = dict(DEFAULTS)
    t.update({k: v for k, v in (tune or {}).items() if k in DEFAULTS})
    return t


def score(run: Mapping[str, int], baseline: Sequence[Mapping[str, int]], t: Mapping[str, int],
          recent: Sequence[Mapping[str, int]] = ()) -> list[str]:
    """The reasons ``run`` is suspect (empty: clean) given earlier clean runs' counts and thresholds;
    ``recent``: the clean runs since the newest mark or clear record, newest first (slow encryption)."""
    from statistics import median  # here: statistics pulls in decimal and fractions, which most commands never need

    n = max(1, run.get("existing", 0))
    reasons = []
    for name in SIGNALS:
        x = run.get(name, 0)
        share = 1000 * x / n
        hit = x >= t[f"{name}_min"] and share >= t[f"{name}_permille"]
        why = f"fixed threshold {t[f'{name}_min']} files and {t[f'{name}_permille'] / 10:g}%"
        if len(baseline) >= t["baseline_runs"]:
            past = [1000 * r.get(name, 0) / max(1, r.get("existing", 0)) for r in baseline]
            med = median(past)
            mad = median(abs(p - med) for p in past)
            z = (share - med) / (1.4826 * mad + t["z_floor"])
            hit = x >= t[f"{name}_min"] and share >= t[f"{name}_permille"] / 2 and 10 * z >= t["z10"]
            why = f"z={z:.1f} against {len(baseline)} earlier runs (median {med / 10:.1f}%)"
        if hit:
            reasons.append(f"{x} of {n} existing files ({share / 10:.1f}%) {WHAT[name]} ({why})")
    jumped = run.get("jumped", 0)
    if not reasons and jumped and t["slow_runs"] > 1:
        past = [r.get("jumped", 0) for r in recent[: t["slow_runs"] - 1]]
        total = jumped + sum(past)
        quiet = len(baseline) < t["baseline_runs"] or median(r.get("jumped", 0) for r in baseline) == 0
        if quiet and total > jumped and total >= t["jumped_min"] and 1000 * total >= t["jumped_permille"] * n:
            runs = 1 + max(i + 1 for i, x in enumerate(past) if x)
            reasons.append(f"{total} of {n} existing files ({100 * total / n:.1f}%) {WHAT['jumped']} over the last "
                           f"{runs} runs (slow encryption; fixed threshold {t['jumped_min']} files and "
                           f"{t['jumped_permille'] / 10:g}%)")
    return reasons


@dataclass(slots=True)
class GuardState:
    """What the chain says: uncleared suspect marks (kept generations), clean scored runs (newest
    first, the baseline), the thresholds in force, and which generations are snapshots."""

    marks: dict[int, tuple[str, ...]] = field(default_factory=dict)
    cleared: dict[int, int] = field(default_factory=dict)  # mark -> the record that cleared it
    baseline: list[dict[str, int]] = field(default_factory=list)
    recent: list[dict[str, int]] = field(default_factory=list)  # clean runs since the newest mark or clear
    tune: dict[str, int] | None = None
    tune_at: int = 0  # the generation of the record the thresholds in force come from (0: defaults)
    head: int = -1  # the head this state was read at
    snapshots: list[int] = field(default_factory=list)  # kept, ascending

    @property
    def thresholds(self) -> dict[str, int]:
        return thresholds(self.tune)


def is_record(c: Commit) -> bool:
    """A commit that is about the history, not a snapshot: a forget, a guard clear or tune."""
    g = c.audit.guard
    return c.audit.forget is not None or (g is not None and g.run is None)


async def state(history: History, *, scoring: bool = False) -> GuardState:
    """Read the chain (verified) from the head down and gather the guard's state.

    The thresholds in force are the newest ``tune`` record's. Every scored run also records the
    thresholds it used with ``set_at``, the generation of the record they came from (0: the
    defaults), and ``scored_on``, the head it was scored against: no tune record lies in
    ``(set_at, scored_on]``. So ``scoring`` (only the baseline and the thresholds: no marks, no
    snapshots) stops once ``window`` clean runs are found and the walk is below a run's
    ``scored_on``: a backup reads a few dozen commits, not the whole history, and a run scored with
    older thresholds that lands after a tune record does not undo it."""
    st = GuardState(head=history.top)
    if history.top < 0:
        return st
    kept = frozenset() if scoring else await history.kept_generations()
    known_below = -1  # every tune record at or below this generation is accounted for
    settled = False  # below the newest mark or clear record: no longer recent
    for gen in range(history.top, -1, -1):
        if scoring and gen <= known_below and len(st.baseline) >= st.thresholds["window"]:
            break
        c = await history.commit_at(gen)
        g = c.audit.guard
        if gen in kept and not is_record(c):
            st.snapshots.append(gen)
        if g is None:
            continue
        for x in g.clear:
            st.cleared.setdefault(x, gen)
        if g.tune is not None:
            at = gen if g.run is None else min(g.tune.get("set_at", 0), gen)
            if g.run is not None:
                known_below = max(known_below, min(g.tune.get("scored_on", -1), gen - 1))
            if st.tune is None or at > st.tune_at:
                st.tune, st.tune_at = dict(g.tune), at
        if g.suspect and gen not in st.cleared and gen in kept:
            st.marks[gen] = g.reasons
        settled = settled or g.suspect or bool(g.clear)
        if not settled and g.run is not None and "existing" in g.run:
            st.recent.append(dict(g.run))
        if g.run is not None and "existing" in g.run and (not g.suspect or gen in st.cleared):  # a backup's
            st.baseline.append(dict(g.run))
    st.snapshots.reverse()
    st.baseline = st.baseline[: st.thresholds["window"]]
    st.recent = st.recent[: st.thresholds["window"]]
    return st


def protected_in(st: GuardState) -> frozenset[int]:
    out = set()
    for s in st.marks:
        older = [g for g in st.snapshots if g < s and g not in st.marks]
        if older:
            out.add(older[-1])
    return frozenset(out)


async def protected_generations(history: History) -> frozenset[int]:
    """The newest clean snapshot older than each suspect (uncleared, kept) generation: what ``forget``
    and ``prune`` must keep unless forced (the last good copy before a suspected attack)."""
    return protected_in(await state(history))


class GuardRefusal(UsageError):
    """``forget`` (or ``prune``) would drop the last clean generation before a suspect one."""


def refuse(st: GuardState, dropping: Iterable[int], verb: str = "forget") -> None:
    """GuardRefusal if ``dropping`` holds a protected generation (:func:`protected_in`)."""
    hit = sorted(set(dropping) & protected_in(st))
    if hit:
        g = hit[-1]
        s = min(m for m in st.marks if m > g)
        raise GuardRefusal(f"generation {g} is the newest clean generation before suspect generation {s}: "
                           f"{verb} keeps it unless --force (nothing was changed; see `sigmavault guard status`)")


def run_meta(counts: Mapping[str, int], reasons: list[str], st: GuardState) -> dict[str, Any]:
    """``meta.guard`` of a scored run: its counts, its mark, and the thresholds it was scored with."""
    out: dict[str, Any] = {"run": dict(counts), "suspect": bool(reasons),
                           "tune": {**st.thresholds, "set_at": st.tune_at, "scored_on": max(0, st.head)}}
    if reasons:
        out["reasons"] = [r[:200] for r in reasons[:16]]
    return {"guard": out}


__all__ = [
    "DEFAULTS", "GuardRefusal", "GuardState", "is_record", "known_format", "looks_renamed", "protected_generations",
    "protected_in", "refuse", "run_counts", "run_meta", "score", "state", "thresholds",
]
