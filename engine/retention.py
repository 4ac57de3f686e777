"""Retention rules for ``forget``: which generations to keep, with restic's semantics (pure).

Mirrors restic's ``ApplyPolicy`` (internal/restic/snapshot_policy.go) on a list of generations,
newest first (chain order: the highest generation is the newest, whatever the clocks said):

- ``within`` keeps every generation whose time is after (strictly) the newest one's time minus the
  duration; a duration is ``1y5m7d2h``-style (years, months, days, hours), and years, months and
  days move the calendar date like Go's ``AddDate`` (Mar 31 minus one month is Mar 3).
- ``last``, ``hourly``, ``daily``, ``weekly`` (ISO week), ``monthly``, ``yearly`` each keep, from the
  newest, the first generation of each new bucket until N buckets are taken (``-1``: unlimited);
  buckets are of the local time (``tz``, default the machine's), as restic buckets by the
  snapshot's own zone. A rule with counts left also keeps the oldest generation (restic ≥ 0.14:
  "if there are not enough snapshots to keep one for each duration related option, the oldest
  snapshot is kept additionally").
- A generation is kept if any rule keeps it; the newest is always kept (an addition of ours: restic
  keeps it through any non-empty rule anyway). No rule at all is refused (UsageError), never
  "forget everything".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo

from .errors import UsageError

_DURATION = re.compile(r"(?:\d+[ymdh])+")
_PART = re.compile(r"(\d+)([ymdh])")
BUCKETS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
UNLIMITED = -1


@dataclass(frozen=True, slots=True)
class Duration:
    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    @classmethod
    def parse(cls, text: str) -> Duration:
        """``30d``, ``1y5m7d2h``: restic's units (y, m = months, d, h). UsageError otherwise."""
        if not isinstance(text, str) or not _DURATION.fullmatch(text):
            raise UsageError(
                f"invalid duration {text!r}: use a number and a unit, e.g. 30d, 2y6m, 1y5m7d2h "
                "(y years, m months, d days, h hours)"
            )
        got = {"y": 0, "m": 0, "d": 0, "h": 0}
        for number, unit in _PART.findall(text):
            got[unit] += int(number)
        if got["y"] > 9999 or got["m"] > 9999 * 12 or got["d"] > 9999 * 366 or got["h"] > 9999 * 8784:
            raise UsageError(f"duration {text!r} is longer than any vault's history")
        return cls(got["y"], got["m"], got["d"], got["h"])

    def before(self, t: datetime) -> float:
        """Unix time of ``t`` moved back by this duration (calendar part like Go's AddDate, then hours)."""
        y, m = t.year - self.years, t.month - self.months
        y, m = y + (m - 1) // 12, (m - 1) % 12 + 1
        if y < 1:
            return float("-inf")
        first = t.replace(year=y, month=m, day=1)
        try:
            day = first + timedelta(days=t.day - 1 - self.days)  # overflowing days roll on, as in Go
        except OverflowError:
            return float("-inf")
        return day.timestamp() - self.hours * 3600


@dataclass(frozen=True, slots=True)
class Rules:
    """The keep rules; 0 turns a rule off, -1 is unlimited."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: str | None = None

    def __post_init__(self) -> None:
        for name in BUCKETS:
            n = getattr(self, name)
            if type(n) is not int or n < UNLIMITED:
                raise UsageError(f"--keep-{name} must be a count of 0 or more, or 'unlimited'")
        if self.within is not None:
            Duration.parse(self.within)

    @property
    def empty(self) -> bool:
        return not any(getattr(self, n) for n in BUCKETS) and not self.within

    def as_meta(self) -> dict[str, int | str]:
        """The rules given, as recorded in the forget record's ``meta.forget.rules``."""
        out: dict[str, int | str] = {n: getattr(self, n) for n in BUCKETS if getattr(self, n)}
        if self.within:
            out["within"] = self.within
        return out


@dataclass(frozen=True, slots=True)
class Decision:
    #: kept generation -> the rules that keep it (``newest`` for the always-kept newest)
    keep: dict[int, list[str]] = field(default_factory=dict)
    forget: list[int] = field(default_factory=list)  # ascending


def _bucketers() -> dict[str, Callable[[datetime, int], object]]:
    return {
        "last": lambda d, nr: nr,
        "hourly": lambda d, nr: (d.year, d.month, d.day, d.hour),
        "daily": lambda d, nr: (d.year, d.month, d.day),
        "weekly": lambda d, nr: d.isocalendar()[:2],
        "monthly": lambda d, nr: (d.year, d.month),
        "yearly": lambda d, nr: d.year,
    }


def apply(generations: Sequence[tuple[int, int]], rules: Rules, tz: tzinfo | None = None) -> Decision:
    """Decide over ``generations`` (``(gen, unix time)``; any order). UsageError for empty rules."""
    if rules.empty:
        raise UsageError("no keep rule given: name at least one --keep-* option (forget never forgets everything)")
    gens = sorted(generations, key=lambda g: g[0], reverse=True)
    decision = Decision()
    if not gens:
        return decision
    local = [datetime.fromtimestamp(t, tz) for _, t in gens]
    since = Duration.parse(rules.within).before(local[0]) if rules.within else None
    counts = {name: getattr(rules, name) for name in BUCKETS}
    last: dict[str, object] = {}
    bucket = _bucketers()
    oldest = len(gens) - 1
    for nr, ((gen, _), when) in enumerate(zip(gens, local, strict=True)):
        reasons = ["newest"] if nr == 0 else []
        if since is not None and when.timestamp() > since:
            reasons.append("within")
        for name in BUCKETS:
            if counts[name] == 0:
                continue
            value = bucket[name](when, nr)
            if name not in last or value != last[name] or nr == oldest:
                last[name] = value
                reasons.append(name)
                if counts[name] > 0:
                    counts[name] -= 1
        if reasons:
            decision.keep[gen] = reasons
        else:
            decision.forget.append(gen)
    decision.forget.sort()
    return decision


__all__ = ["BUCKETS", "UNLIMITED", "Decision", "Duration", "Rules", "apply"]
