"""The v2 commit record: its authenticated, extensible ``meta`` (known answer, strict known keys,
unknown keys kept, bounds), and v1 records still opening."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from vaulttools import new_vault, reopen

from sigmavault.engine.errors import IntegrityError
from sigmavault.engine.format.canonical import b64u, dumps
from sigmavault.engine.format.commits import (
    MAX_COMMIT,
    Commit,
    commit_name,
    decode_commit,
    encode_commit,
    open_commit,
    seal_body,
    seal_commit,
)
from sigmavault.engine.format.envelope import Sealer
from sigmavault.engine.format.meta import MAX_META, ranges
from sigmavault.engine.keys.schedule import EpochKeys

VAULT = bytes(range(32))
META = {
    "counts": {"added": 2, "bytes": 10, "changed": 1, "removed": 0},
    "host": "build-01",
    "slot": b64u(b"\x66" * 16),
    "slot_label": "laptop",
}


def sealer() -> Sealer:
    return Sealer(EpochKeys.derive(b"\x42" * 32, VAULT, 1, "blake3-keyed-256"), 4 << 20, 4096)


def v2(gen: int = 3, meta: dict[str, Any] | None = None) -> Commit:
    return Commit(VAULT, gen, b"\x01" * 32, 1, 1, (), b"\x09" * 16, 1735689600, dict(META) if meta is None else meta)


def test_v2_known_answer_canonical_body() -> None:
    body = encode_commit(v2())
    assert body == (
        b'{"client":"CQkJCQkJCQkJCQkJCQkJCQ","epoch":1,"gen":3,"keystore_gen":1,'
        b'"meta":{"counts":{"added":2,"bytes":10,"changed":1,"removed":0},"host":"build-01",'
        b'"slot":"ZmZmZmZmZmZmZmZmZmZmZg","slot_label":"laptop"},'
        b'"parent":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE","root":[],"time":1735689600,"v":2,'
        b'"vault_id":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}'
    )
    assert dumps(json.loads(body)) == body
    assert hashlib.sha256(body).hexdigest() == "a636f81034bd4a860d87c6b625b87e6409ec43aaa22e5c64f349130aec832f6f"
    # sealed with a fixed salt the object is fixed too (the B.6 way of pinning a commit object)
    obj = seal_body(sealer(), 3, body, salt=b"\x45" * 24)
    assert hashlib.sha256(obj).hexdigest() == "6bc9cc209faa3662d31fe4e1606ec798cfe8700585f5de44584d8625071ba7ad"
    c = open_commit(sealer(), 3, obj)
    assert c == v2() and c.meta == META
    a = c.audit
    assert (a.slot, a.slot_label, a.host) == (b"\x66" * 16, "laptop", "build-01")
    assert a.counts == {"added": 2, "changed": 1, "removed": 0, "bytes": 10} and a.forget is None


def test_a_forget_record_known_answer_and_membership() -> None:
    meta = {"forget": {"gens": ranges([0, 1, 2, 5, 7, 8]), "rules": {"daily": 7, "within": "30d"}}}
    body = encode_commit(v2(9, meta))
    assert b'"meta":{"forget":{"gens":[[0,2],[5,5],[7,8]],"rules":{"daily":7,"within":"30d"}}}' in body
    f = decode_commit(body).audit.forget
    assert f is not None and f.generations() == [0, 1, 2, 5, 7, 8]
    assert [g in f for g in range(10)] == [True, True, True, False, False, True, False, True, True, False]


def test_v1_records_still_open_and_re_encode_unchanged() -> None:
    v1 = Commit(VAULT, 3, b"\x01" * 32, 1, 1, (), b"\x09" * 16, 1735689600)
    body = encode_commit(v1)
    assert b'"v":1' in body and b"meta" not in body
    c = open_commit(sealer(), 3, seal_commit(sealer(), v1))
    assert c.meta is None and c.audit.slot is None and c.audit.forget is None


def test_unknown_keys_are_kept_and_ignored() -> None:
    meta = {**META, "zz_future": {"nested": [1, "two", {"x": None}]}, "counts": {**META["counts"], "dirs": 4}}
    body = encode_commit(v2(meta=meta))
    c = decode_commit(body)
    assert c.meta == meta and encode_commit(c) == body  # re-encodes byte for byte
    assert c.audit.counts == {"added": 2, "changed": 1, "removed": 0, "bytes": 10}


BAD_META: dict[str, Any] = {
    "not an object": [],
    "label not a string": {"slot_label": 7},
    "label too long": {"slot_label": "x" * 257},
    "host not a string": {"host": ["h"]},
    "host too long": {"host": "h" * 256},
    "slot not base64": {"slot": "**"},
    "empty slot": {"slot": ""},
    "counts not an object": {"counts": "3"},
    "negative count": {"counts": {"added": -1}},
    "bool count": {"counts": {"removed": True}},
    "forget without rules": {"forget": {"gens": []}},
    "forget of itself": {"forget": {"gens": [[0, 3]], "rules": {}}},
    "forget of the future": {"forget": {"gens": [[5, 6]], "rules": {}}},
    "forget ranges unsorted": {"forget": {"gens": [[2, 2], [0, 1]], "rules": {}}},
    "forget ranges overlap": {"forget": {"gens": [[0, 1], [1, 2]], "rules": {}}},
    "forget range reversed": {"forget": {"gens": [[2, 1]], "rules": {}}},
    "forget range of three": {"forget": {"gens": [[0, 1, 2]], "rules": {}}},
    "rule of a list": {"forget": {"gens": [], "rules": {"last": [1]}}},
    "too deep": {"zz": [[[[[[[[[["deep"]]]]]]]]]]},
    "too large": {"zz": "x" * (MAX_META + 1)},
}


@pytest.mark.parametrize("case", sorted(BAD_META))
def test_known_keys_are_strictly_typed_and_meta_is_bounded(case: str) -> None:
    doc = json.loads(encode_commit(v2()))
    doc["meta"] = BAD_META[case]
    with pytest.raises(IntegrityError):
        decode_commit(dumps(doc))


def test_v2_needs_meta_and_v1_refuses_it() -> None:
    doc = json.loads(encode_commit(v2()))
    del doc["meta"]
    with pytest.raises(IntegrityError):
        decode_commit(dumps(doc))  # v2 without meta
    doc = json.loads(encode_commit(v2()))
    doc["v"] = 1
    with pytest.raises(IntegrityError):
        decode_commit(dumps(doc))  # v1 with meta
    doc["v"] = 3
    with pytest.raises(IntegrityError):
        decode_commit(dumps(doc))


def test_a_writer_cannot_build_an_invalid_meta() -> None:
    with pytest.raises(IntegrityError):
        v2(meta={"slot_label": 1})


def _forge_next(v: Any, root: Path, body: bytes) -> None:
    gen = v.generation + 1
    (root / "c" / commit_name(gen)[2:]).write_bytes(seal_body(v._store.sealer, gen, body))


async def test_a_hostile_co_writer_cannot_make_readers_allocate_much(tmp_path: Path) -> None:
    """A co-writer holding the keys writes a commit whose meta is huge (under the body limit), then
    one whose object is inflated far past any commit: readers refuse both, reading a bounded amount."""
    root = tmp_path / "v"
    async with await new_vault(root) as v:
        await v.put("f", b"data")
        await v.commit()
        h = v._history
        head = v._head
        good = Commit(
            h.vault_id,
            head.gen + 1,
            head.hash,
            v._store.epoch,
            h.keystore_gen,
            head.commit.root,
            h.client_id,
            1735689600,
            {},
        )
        doc = json.loads(encode_commit(good))
        doc["meta"] = {"zz": "x" * (MAX_COMMIT - 4096)}  # a body just under 1 MiB: meta far over its bound
        _forge_next(v, root, dumps(doc))
    assert await peak_of_a_refused_open(root) < 24 << 20  # a few copies of one bounded commit, never more
    # an object inflated to 64 MiB: only the bounded prefix is read
    path = root / "c" / commit_name(2)[2:]
    with path.open("wb") as f:
        f.write(b"\x01" * (64 << 20))
    assert await peak_of_a_refused_open(root) < 24 << 20


async def peak_of_a_refused_open(root: Path) -> int:
    """Peak Python memory of an open that must fail with IntegrityError."""
    tracemalloc.start()
    try:
        with pytest.raises(IntegrityError):
            await reopen(root)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
