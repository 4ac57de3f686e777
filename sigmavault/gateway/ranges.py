"""HTTP validators and byte ranges for the gateway (RFC 9110 §8.8, §13, §14): pure functions, no I/O.

:func:`parse_range` reads a ``Range`` header against a representation size; :func:`preconditions`
evaluates ``If-Match``, ``If-Unmodified-Since``, ``If-None-Match`` and ``If-Modified-Since`` in the
order RFC 9110 §13.2.2 gives; :func:`if_range_holds` decides whether a ``Range`` still applies.
Validators are a strong entity tag (``"hex"``) and a modification time in whole seconds.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

#: more ranges than this in one request is treated as abuse: the Range header is ignored (200)
MAX_RANGES = 100

_SPEC = re.compile(r"^(\d*)-(\d*)$")
_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*(?:,|$)')


class Unsatisfiable(Exception):
    """No range of a syntactically valid ``Range`` header overlaps the representation (416)."""


def parse_range(header: str | None, size: int) -> list[tuple[int, int]] | None:
    """The ``[start, end)`` spans a ``Range: bytes=…`` header asks of ``size`` bytes.

    None means "serve the whole representation" (no header, another unit, a syntax error, an
    empty file or more than :data:`MAX_RANGES` ranges: a server may ignore Range). Raises
    :class:`Unsatisfiable` when the header is valid but no range overlaps the content.
    Overlapping or adjacent spans are merged (then listed in ascending order).
    """
    if header is None or size <= 0:
        return None
    unit, eq, rest = header.partition("=")
    if not eq or unit.strip().lower() != "bytes":
        return None
    items = [s.strip() for s in rest.split(",")]
    items = [s for s in items if s]  # a list may hold empty elements (RFC 9110 §5.6.1)
    if not items or len(items) > MAX_RANGES:
        return None
    spans: list[tuple[int, int]] = []
    for item in items:
        m = _SPEC.match(item)
        if m is None or (not m[1] and not m[2]):
            return None
        if not m[1]:  # suffix: the last N bytes
            n = int(m[2])
            if n > 0:
                spans.append((max(0, size - n), size))
            continue
        first = int(m[1])
        last = int(m[2]) if m[2] else None
        if last is not None and last < first:
            return None  # invalid: the whole header is ignored
        if first < size:
            spans.append((first, size if last is None else min(last + 1, size)))
    if not spans:
        raise Unsatisfiable
    return _coalesce(spans)


def _coalesce(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    ordered = sorted(spans)
    if all(a[1] < b[0] for a, b in itertools.pairwise(ordered)):
        return spans  # disjoint: keep the order the client asked for
    out = [ordered[0]]
    for start, end in ordered[1:]:
        if start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def entity_tags(header: str) -> list[tuple[bool, str]] | None:
    """The entity tags of an ``If-Match``/``If-None-Match`` list as (weak, opaque); None for ``*``.

    A malformed list yields the tags read before the fault (the rest cannot match anything).
    """
    if header.strip() == "*":
        return None
    out = []
    pos = 0
    while pos < len(header):
        m = _TAG.match(header, pos)
        if m is None or m.end() == pos:
            break
        out.append((m[1] is not None, m[2]))
        pos = m.end()
    return out


def _matches(header: str, etag: str | None, *, weak_ok: bool) -> bool:
    tags = entity_tags(header)
    if tags is None:
        return etag is not None
    if etag is None:
        return False
    opaque = etag.strip('"')
    return any(t == opaque and (weak_ok or not weak) for weak, t in tags)


def http_date(seconds: int) -> str:
    """An IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``)."""
    return format_datetime(datetime.fromtimestamp(max(0, seconds), UTC), usegmt=True)


def parse_date(value: str | None) -> int | None:
    """Seconds since the epoch of an HTTP date, or None when absent or invalid (then ignored)."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def preconditions(method: str, headers: dict[str, str], etag: str | None, mtime: int | None) -> int | None:
    """The status the conditional headers impose (304 or 412), or None to go on.

    ``etag`` and ``mtime`` describe the current representation (None when the target does not
    exist). Order and comparisons follow RFC 9110 §13.2.2: strong comparison for If-Match,
    weak for If-None-Match; the date conditions apply only without their entity-tag counterpart.
    """
    safe = method in ("GET", "HEAD")
    if (im := headers.get("If-Match")) is not None:
        if not _matches(im, etag, weak_ok=False):
            return 412
    elif (ius := parse_date(headers.get("If-Unmodified-Since"))) is not None and mtime is not None:
        if mtime > ius:
            return 412
    if (inm := headers.get("If-None-Match")) is not None:
        if _matches(inm, etag, weak_ok=True):
            return 304 if safe else 412
    elif safe and (ims := parse_date(headers.get("If-Modified-Since"))) is not None and mtime is not None:
        if mtime <= ims:
            return 304
    return None


def if_range_holds(value: str | None, etag: str, mtime: int) -> bool:
    """Whether a ``Range`` applies under ``If-Range: value`` (absent: yes). An entity tag must
    match strongly; a date must equal the Last-Modified exactly (RFC 9110 §13.1.5)."""
    if value is None:
        return True
    value = value.strip()
    if value.startswith('"') or value.startswith("W/"):
        return not value.startswith("W/") and value == etag
    return parse_date(value) == mtime
