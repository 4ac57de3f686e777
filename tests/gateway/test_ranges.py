"""The Range parser and the precondition rules of the gateway, alone (RFC 9110 §13, §14)."""

from __future__ import annotations

import pytest

from sigmavault.gateway.ranges import (
    MAX_RANGES,
    Unsatisfiable,
    entity_tags,
    http_date,
    if_range_holds,
    parse_date,
    parse_range,
    preconditions,
)


@pytest.mark.parametrize(("header", "spans"), [
    ("bytes=0-499", [(0, 500)]), ("bytes=500-999", [(500, 1000)]), ("bytes=-500", [(500, 1000)]),
    ("bytes=0-0,-1", [(0, 1), (999, 1000)]),
    ("bytes=500-600,601-999", [(500, 1000)]), ("bytes=0-2000", [(0, 1000)]),
    ("bytes= 1-2 , ,3-4", [(1, 5)]), ("bytes=1-2,5-6", [(1, 3), (5, 7)]),
    ("bytes=900-,0-9", [(900, 1000), (0, 10)]), ("bytes=-0", "416"), ("bytes=1000-", "416"),
    ("bytes=10-5", None), ("bytes=x-5", None), ("bytes=1--2", None), ("bits=0-1", None), ("bytes", None),
    ("bytes=", None), ("bytes=-", None), ("bytes=0-1,5-2", None), ("bytes=+1-2", None), (None, None),
])
def test_parse_range(header: str | None, spans: object) -> None:
    if spans == "416":
        with pytest.raises(Unsatisfiable):
            parse_range(header, 1000)
    else:
        assert parse_range(header, 1000) == spans


def test_limits_and_empty_files() -> None:
    assert parse_range("bytes=0-5", 0) is None and parse_range("bytes=-5", 0) is None
    assert parse_range("bytes=" + ",".join(["0-0"] * (MAX_RANGES + 1)), 10) is None
    assert parse_range("bytes=" + ",".join(["0-0"] * MAX_RANGES), 10) == [(0, 1)]


def test_entity_tags_and_dates() -> None:
    assert entity_tags('"a", W/"b",  "c"') == [(False, "a"), (True, "b"), (False, "c")]
    assert entity_tags("*") is None and entity_tags("garbage") == []
    assert parse_date(http_date(1_700_000_000)) == 1_700_000_000
    assert parse_date("not a date") is None and parse_date(None) is None


def test_preconditions_order() -> None:
    tag, mtime = '"abc"', 1_700_000_000
    date = http_date(mtime)
    assert preconditions("GET", {"If-None-Match": '"abc"'}, tag, mtime) == 304
    assert preconditions("GET", {"If-None-Match": 'W/"abc"'}, tag, mtime) == 304  # weak comparison
    assert preconditions("PUT", {"If-None-Match": "*"}, tag, mtime) == 412
    assert preconditions("PUT", {"If-None-Match": "*"}, None, None) is None
    assert preconditions("PUT", {"If-Match": 'W/"abc"'}, tag, mtime) == 412  # strong comparison
    assert preconditions("PUT", {"If-Match": '"abc"'}, tag, mtime) is None
    assert preconditions("GET", {"If-Modified-Since": date}, tag, mtime) == 304
    assert preconditions("GET", {"If-Modified-Since": date, "If-None-Match": '"x"'}, tag, mtime) is None
    assert preconditions("GET", {"If-Unmodified-Since": http_date(mtime - 1)}, tag, mtime) == 412
    assert preconditions("GET", {"If-Modified-Since": "bogus"}, tag, mtime) is None
    assert if_range_holds(None, tag, mtime) and if_range_holds(tag, tag, mtime) and if_range_holds(date, tag, mtime)
    assert not if_range_holds('W/"abc"', tag, mtime) and not if_range_holds(http_date(mtime + 1), tag, mtime)
    assert not if_range_holds("junk", tag, mtime)
