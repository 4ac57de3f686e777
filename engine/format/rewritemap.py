"""The map a ``rekey --rewrite`` (or a repack's) completing commit carries in its ``meta`` (pure).

Commits are immutable, so a generation rewritten under a new key epoch cannot change its own record:
the rewriter's completing commit maps each kept generation to its rewritten root, its *effective*
root, which every reader of that generation uses from then on (the newest map wins; docs/format.md,
"Rewriting under the new epoch")::

    "rewrite": {"epoch": e, "map": [[first, last, [kind-2 page refs of epoch e]], …]}

Runs of consecutive generations with the same root share one entry (a record commit keeps its
parent's root); runs are ascending, disjoint and name only generations below the commit's own. The
map is part of the sealed, hash-chained commit body, so it is authenticated like the commit's own
``root``. It is bounded by the commit body limit and :data:`MAX_RUNS`, not by ``MAX_META`` (a vault
of a few hundred generations would not fit that); a rewriter writes at most :data:`MAX_MAP` bytes of
it (about 5,000 runs of one-page roots).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..keys.schedule import KIND_PAGE_PACK
from .canonical import MAX_DOCUMENT, array, fail, integer, obj
from .pages import BlobRef, ref_from_json, ref_to_json

MAX_RUNS = 1 << 16
#: the largest map a rewriter writes: the commit body (1 MiB) keeps room for the rest of the record
MAX_MAP = MAX_DOCUMENT - 128 * 1024
MAX_ROOT_PAGES = 1 << 12


@dataclass(frozen=True, slots=True)
class RewriteMap:
    """A rewrite's map: the epoch it rewrote under and runs of generations with their effective root."""

    epoch: int
    runs: tuple[tuple[int, int, tuple[BlobRef, ...]], ...]  # (first, last, root), ascending and disjoint

    def root(self, gen: int) -> tuple[BlobRef, ...] | None:
        """The effective root this map gives generation ``gen`` (None: it does not map it)."""
        i = bisect_right(self.runs, gen, key=lambda r: r[0]) - 1
        return self.runs[i][2] if i >= 0 and self.runs[i][1] >= gen else None


def to_json(epoch: int, roots: Mapping[int, Sequence[BlobRef]]) -> dict[str, Any]:
    """The ``meta.rewrite`` value of ``roots`` (runs of generations with one root joined)."""
    runs: list[list[Any]] = []
    for g in sorted(roots):
        refs = [ref_to_json(r) for r in roots[g]]
        if runs and runs[-1][1] == g - 1 and runs[-1][2] == refs:
            runs[-1][1] = g
        else:
            runs.append([g, g, refs])
    return {"epoch": epoch, "map": runs}


def parse(value: object, gen: int) -> RewriteMap:
    """Check the ``meta.rewrite`` of commit ``gen`` (untrusted). IntegrityError."""
    f = obj(value, {"epoch", "map"})
    epoch = integer(f["epoch"], 1, 0xFFFFFFFF)  # 1: a repack of a vault never rekeyed (same epoch)
    runs: list[tuple[int, int, tuple[BlobRef, ...]]] = []
    last = -1
    for run in array(f["map"], MAX_RUNS):
        if not isinstance(run, list) or len(run) != 3:
            fail("rewrite run")
        a, b = integer(run[0]), integer(run[1])
        if not last < a <= b < gen:
            fail("rewrite range")  # ascending, disjoint, only generations older than this commit
        refs = tuple(ref_from_json(r, (KIND_PAGE_PACK,)) for r in array(run[2], MAX_ROOT_PAGES))
        if any(r.epoch != epoch for r in refs):
            fail("rewrite epoch")  # a rewritten root is sealed under the rewrite's epoch alone
        runs.append((a, b, refs))
        last = b
    return RewriteMap(epoch, tuple(runs))


__all__ = ["MAX_MAP", "MAX_RUNS", "RewriteMap", "parse", "to_json"]
