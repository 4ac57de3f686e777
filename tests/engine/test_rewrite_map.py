"""The map a ``rekey --rewrite`` completing commit carries (``meta.rewrite``, :mod:`.format.rewritemap`):
runs of generations with one root joined, the newest map wins, and every malformed map — a range at
or above its own commit, overlapping or unsorted runs, a root of another epoch or kind, a hostile
range that would make a reader allocate — fails the commit with the one IntegrityError."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sigmavault.engine.errors import IntegrityError
from sigmavault.engine.format.canonical import dumps
from sigmavault.engine.format.commits import Commit, decode_commit, encode_commit
from sigmavault.engine.format.meta import MAX_META
from sigmavault.engine.format.pages import BlobRef, ref_to_json
from sigmavault.engine.format.rewritemap import parse, to_json
from sigmavault.engine.keys.schedule import KIND_CHUNK, KIND_PAGE_PACK

VAULT = bytes(range(32))


def page(n: int, epoch: int = 2) -> BlobRef:
    return BlobRef(epoch, KIND_PAGE_PACK, bytes([n]) * 32, "o/" + f"{n:02x}" * 32, 0, 100, None)


def commit(gen: int, meta: dict[str, Any]) -> Commit:
    return Commit(VAULT, gen, b"\x01" * 32, 2, 1, (page(9),), b"\x09" * 16, 1735689600, meta)


def test_runs_of_one_root_are_joined_and_each_generation_finds_its_root() -> None:
    roots = {1: [page(1)], 2: [page(1)], 3: [page(1)], 5: [page(2), page(3)], 6: [page(4)]}
    value = to_json(2, roots)
    assert [r[:2] for r in value["map"]] == [[1, 3], [5, 5], [6, 6]]
    c = decode_commit(encode_commit(commit(7, {"rewrite": value})))
    m = c.audit.rewrite
    assert m is not None and m.epoch == 2
    assert {g: m.root(g) for g in range(8)} == {0: None, 1: (page(1),), 2: (page(1),), 3: (page(1),), 4: None,
                                                 5: (page(2), page(3)), 6: (page(4),), 7: None}


def test_a_map_may_exceed_the_meta_bound_and_the_rekey_record_says_a_rewrite_follows() -> None:
    roots = {g: [page(g % 250)] for g in range(1000)}  # ~170 KB: beyond MAX_META, inside the body limit
    assert len(dumps(to_json(2, roots))) > MAX_META
    c = decode_commit(encode_commit(commit(1000, {"rewrite": to_json(2, roots)})))
    assert c.audit.rewrite is not None and c.audit.rewrite.root(999) == (page(999 % 250),)
    r = decode_commit(encode_commit(commit(4, {"rekey": {"epoch": 2, "rewrite": True}})))
    assert r.audit.rekey == 2 and r.audit.rekey_rewrite
    assert not decode_commit(encode_commit(commit(4, {"rekey": {"epoch": 2}}))).audit.rekey_rewrite


def _run(a: int, b: int, refs: list[BlobRef] | None = None) -> list[Any]:
    return [a, b, [ref_to_json(r) for r in (refs or [page(1)])]]


BAD = {
    "not an object": [],
    "no epoch": {"map": []},
    "epoch 0": {"epoch": 0, "map": []},
    "unknown field": {"epoch": 2, "map": [], "x": 1},
    "run of two": {"epoch": 2, "map": [[1, 1]]},
    "its own generation": {"epoch": 2, "map": [_run(1, 5)]},
    "the future": {"epoch": 2, "map": [_run(6, 6)]},
    "reversed": {"epoch": 2, "map": [_run(3, 2)]},
    "unsorted": {"epoch": 2, "map": [_run(3, 3), _run(1, 1)]},
    "overlapping": {"epoch": 2, "map": [_run(1, 2), _run(2, 3)]},
    "root of another epoch": {"epoch": 2, "map": [_run(1, 1, [page(1, epoch=1)])]},
    "root not pages": {"epoch": 2, "map": [[1, 1, [dict(ref_to_json(page(1)), k=KIND_CHUNK)]]]},
    "root not a list": {"epoch": 2, "map": [[1, 1, "x"]]},
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_malformed_map_fails_the_commit(case: str) -> None:
    doc = json.loads(encode_commit(commit(5, {})))
    doc["meta"] = {"rewrite": BAD[case]}
    with pytest.raises(IntegrityError):
        decode_commit(dumps(doc))


@pytest.mark.parametrize("rekey", [{"epoch": 2, "rewrite": False}, {"epoch": 2, "rewrite": 1}, {"epoch": 2, "x": 1}])
def test_a_malformed_rekey_intent_fails_the_commit(rekey: dict[str, Any]) -> None:
    doc = json.loads(encode_commit(commit(5, {})))
    doc["meta"] = {"rekey": rekey}
    with pytest.raises(IntegrityError):
        decode_commit(dumps(doc))


def test_a_hostile_range_costs_a_reader_nothing() -> None:
    m = parse({"epoch": 2, "map": [_run(0, (1 << 62) - 1)]}, 1 << 62)  # a run per range, never per generation
    assert m.root(1 << 61) == (page(1),) and m.root(1 << 62) is None
