"""The ``meta`` object of a v2 commit record: who wrote it, what it changed, what it forgot (pure).

``meta`` is a JSON object inside the sealed commit body, so the hash chain authenticates it like
every other field. It is extensible: a reader keeps keys it does not know (they are part of the
canonical bytes and re-encode unchanged) and ignores them, but the known keys have strict types::

    "slot":       b64u(id of the key slot that unlocked the writer, 1–64 bytes)
    "slot_label": the slot's label (≤ 256 characters)
    "host":       the writer's host name, only if its user allowed it (≤ 255 characters)
    "counts":     {"added": files, "changed": files, "removed": files, "bytes": bytes of added or changed files}
    "forget":     {"gens": [[first, last], …] (inclusive ranges, ascending, disjoint, below this commit's gen),
                   "rules": {rule name: integer or short string}}
    "guard":      {"run": {signal name: count} (a scored backup, import or mount window),
                   "suspect": true | false, "reasons": [short text, …],
                   "clear": [generation, …] (a record: these marks are cleared, each below this gen),
                   "tune": {threshold name: integer} (a record: the thresholds from here on)}
    "prune":      {"deleted": objects, "bytes": bytes, "candidates": objects} (a record: a prune run)
    "repair":     {count name: integer} (a record: a repair of a dispersed vault's places)
    "rekey":      {"epoch": e[, "rewrite": true]} (a rekey record: the first commit of key epoch e by its
                  rekeyer; ``rewrite``: a ``rekey --rewrite``, finished by a commit carrying ``rewrite``)
    "rewrite":    the map of a ``rekey --rewrite``'s or a repack's completing commit (:mod:`.rewritemap`;
                  outside :data:`MAX_META`, bounded by the commit body limit)
    "repack":     {count name: integer} (beside ``rewrite``: the map is a repack's, under the same epoch,
                  moving the live blobs of packs over prune's ``--max-unused``: ``packs``, ``blobs``, ``pages``)
    "keys":       [{"op": "add" | "remove" | "passwd", "slot": b64u(id), "type": slot type,
                    "label": slot label}, …] (key slot changes made by the writer since its last commit)
    "drops":      write-only clients' watermark, and the drops this commit ingested or refused
                  (:mod:`.dropmeta`)

The whole object is bounded (:data:`MAX_META` bytes canonical, :data:`MAX_DEPTH` levels), so a
co-writer holding the keys cannot make readers allocate much: the body itself is bounded by the
commit size limit, and an oversized or mistyped ``meta`` fails the commit with the generic
IntegrityError like any malformed field. Control characters in strings are allowed here (they are
data); whoever prints them must escape them.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import dropmeta, rewritemap
from .canonical import array, dumps, fail, integer, string, unb64u
from .dropmeta import Drops
from .rewritemap import RewriteMap

MAX_META = 64 * 1024  # bytes of the canonical encoding of ``meta``
MAX_DEPTH = 8  # nesting levels of objects and arrays below ``meta`` itself
MAX_LABEL = 256
MAX_HOST = 255
MAX_RULE_TEXT = 64
MAX_SLOT_ID = 64
COUNT_KEYS = ("added", "changed", "removed", "bytes")
MAX_REASONS = 16
MAX_REASON = 200
MAX_GUARD_KEYS = 32


@dataclass(frozen=True, slots=True)
class Forget:
    """A forget decision: the generations it forgot (inclusive ranges) and the rules that chose them."""

    ranges: tuple[tuple[int, int], ...]
    rules: Mapping[str, int | str]

    def __contains__(self, gen: object) -> bool:
        i = bisect_right(self.ranges, (gen, 1 << 64)) - 1 if type(gen) is int else -1
        return i >= 0 and self.ranges[i][0] <= gen <= self.ranges[i][1]  # type: ignore[operator]

    def generations(self) -> list[int]:
        return [g for a, b in self.ranges for g in range(a, b + 1)]


@dataclass(frozen=True, slots=True)
class Audit:
    """The known keys of one commit's ``meta``, typed (None where absent, and for a v1 commit)."""

    slot: bytes | None = None
    slot_label: str | None = None
    host: str | None = None
    counts: Mapping[str, int] | None = None
    forget: Forget | None = None
    guard: Guard | None = None
    drops: Drops | None = None
    keys: tuple[Mapping[str, str], ...] = ()
    prune: Mapping[str, int] | None = None
    repair: Mapping[str, int] | None = None
    rekey: int | None = None  # a rekey record: the epoch it started
    rekey_rewrite: bool = False  # that rekey is a ``rekey --rewrite`` (finished by a commit with ``rewrite``)
    rewrite: RewriteMap | None = None  # a rewrite's completing commit: each kept generation's effective root
    repack: Mapping[str, int] | None = None  # that map is a repack's (prune): what it moved


KEY_OPS = ("add", "remove", "passwd")


def _keys(value: object) -> tuple[Mapping[str, str], ...]:
    out = []
    for item in array(value, MAX_REASONS):
        if not isinstance(item, dict) or not {"op"} <= set(item) <= {"op", "slot", "type", "label"}:
            fail("meta keys")
        if string(item["op"], 16) not in KEY_OPS:
            fail("meta keys op")
        if "slot" in item and not 1 <= len(unb64u(item["slot"])) <= MAX_SLOT_ID:
            fail("meta keys slot")
        string(item.get("type", ""), 32)
        string(item.get("label", ""), MAX_LABEL)
        out.append(dict(item))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Guard:
    """The guard's part of a commit: a scored run (its counts, whether it looks suspect and why),
    or a record clearing marks or setting thresholds."""

    run: Mapping[str, int] | None = None
    suspect: bool = False
    reasons: tuple[str, ...] = ()
    clear: tuple[int, ...] = ()
    tune: Mapping[str, int] | None = None


def _counts(value: object, what: str) -> dict[str, int]:
    if not isinstance(value, dict) or len(value) > MAX_GUARD_KEYS:
        fail(what)
    return {string(k, MAX_RULE_TEXT): integer(v) for k, v in value.items()}


def _guard(value: object, gen: int) -> Guard:
    if not isinstance(value, dict) or not set(value) <= {"run", "suspect", "reasons", "clear", "tune"}:
        fail("guard")
    suspect = value.get("suspect", False)
    if not isinstance(suspect, bool):
        fail("guard suspect")
    reasons = tuple(string(r, MAX_REASON) for r in array(value.get("reasons", []), MAX_REASONS))
    clear = tuple(integer(g) for g in array(value.get("clear", []), 1024))
    if any(g >= gen for g in clear):
        fail("guard clear")  # only marks of older generations
    run = _counts(value["run"], "guard run") if "run" in value else None
    tune = _counts(value["tune"], "guard tune") if "tune" in value else None
    return Guard(run, suspect, reasons, clear, tune)


def ranges(gens: Iterable[int]) -> list[list[int]]:
    """Sorted generations as inclusive ``[first, last]`` ranges (the ``forget.gens`` encoding)."""
    out: list[list[int]] = []
    for g in sorted(set(gens)):
        if out and out[-1][1] == g - 1:
            out[-1][1] = g
        else:
            out.append([g, g])
    return out


def _depth(value: object) -> int:
    """Nesting depth of a parsed JSON value (iterative: a hostile value cannot blow the stack here)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if d > MAX_DEPTH:
            break
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return deepest


def _forget(value: object, gen: int) -> Forget:
    if not isinstance(value, dict) or not {"gens", "rules"} <= set(value):
        fail("forget")
    out: list[tuple[int, int]] = []
    for pair in array(value["gens"]):
        if not isinstance(pair, list) or len(pair) != 2:
            fail("forget range")
        a, b = integer(pair[0]), integer(pair[1])
        if not a <= b < gen or (out and a <= out[-1][1]):
            fail("forget range")  # ascending, disjoint, and only generations older than this commit
        out.append((a, b))
    rules = value["rules"]
    if not isinstance(rules, dict):
        fail("forget rules")
    for k, v in rules.items():
        string(k, MAX_RULE_TEXT)
        if isinstance(v, str):
            string(v, MAX_RULE_TEXT)
        else:
            integer(v, -1)
    return Forget(tuple(out), dict(rules))


def check(value: object, gen: int) -> Audit:
    """Validate the ``meta`` of commit ``gen`` (untrusted): bounds, then the types of the known keys.
    Returns them typed; the caller keeps ``value`` itself (unknown keys included). IntegrityError."""
    if not isinstance(value, dict):
        fail("meta")
    if _depth(value) > MAX_DEPTH:
        fail("meta depth")
    try:
        size = len(dumps({k: v for k, v in value.items() if k != "rewrite"}))
    except (ValueError, RecursionError):
        fail("meta")
    if size > MAX_META:
        fail("meta size")
    slot = unb64u(value["slot"]) if "slot" in value else None
    if slot is not None and not 1 <= len(slot) <= MAX_SLOT_ID:
        fail("meta slot")
    label = string(value["slot_label"], MAX_LABEL) if "slot_label" in value else None
    host = string(value["host"], MAX_HOST) if "host" in value else None
    counts = None
    if "counts" in value:
        c = value["counts"]
        if not isinstance(c, dict):
            fail("meta counts")
        counts = {k: integer(c[k]) for k in COUNT_KEYS if k in c}
    forget = _forget(value["forget"], gen) if "forget" in value else None
    guard = _guard(value["guard"], gen) if "guard" in value else None
    drops = dropmeta.parse(value["drops"], gen) if "drops" in value else None
    keys = _keys(value["keys"]) if "keys" in value else ()
    prune = _counts(value["prune"], "meta prune") if "prune" in value else None
    repair = _counts(value["repair"], "meta repair") if "repair" in value else None
    rekey, rewrite = None, False
    if "rekey" in value:
        r = value["rekey"]
        if not isinstance(r, dict) or not {"epoch"} <= set(r) <= {"epoch", "rewrite"}:
            fail("meta rekey")
        if "rewrite" in r and r["rewrite"] is not True:
            fail("meta rekey rewrite")
        rekey, rewrite = integer(r["epoch"], 2, 0xFFFFFFFF), "rewrite" in r
    mapped = rewritemap.parse(value["rewrite"], gen) if "rewrite" in value else None
    repack = _counts(value["repack"], "meta repack") if "repack" in value else None
    return Audit(slot, label, host, counts, forget, guard, drops, keys, prune, repair, rekey, rewrite, mapped, repack)


def audit_of(meta: Mapping[str, Any] | None, gen: int) -> Audit:
    """The typed known keys of a decoded commit's ``meta`` (an empty :class:`Audit` for v1)."""
    return Audit() if meta is None else check(meta, gen)


__all__ = ["COUNT_KEYS", "MAX_META", "Audit", "Forget", "Guard", "audit_of", "check", "ranges"]
