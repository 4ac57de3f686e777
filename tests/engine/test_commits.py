"""Commit records (CRYPTO.md §5.1), the B.6 vectors, and rollback/fork detection (§5.3)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sigmavault.engine.errors import IntegrityError, RollbackError
from sigmavault.engine.format.canonical import b64u, dumps
from sigmavault.engine.format.commits import (
    ChainHead,
    ChainState,
    Commit,
    commit_name,
    decode_commit,
    encode_commit,
    find_head,
    object_hash,
    open_commit,
    opener,
    peek_epoch,
    seal_body,
    seal_commit,
    verify_chain,
    verify_successor,
)
from sigmavault.engine.format.envelope import Sealer
from sigmavault.engine.format.pages import BlobRef
from sigmavault.engine.keys.schedule import KIND_COMMIT, EpochKeys

CHUNK = 4 << 20
VAULT = bytes(range(32))


def sealer(epoch: int = 1, vault: bytes = VAULT, root_key: bytes = b"\x42" * 32) -> Sealer:
    return Sealer(EpochKeys.derive(root_key, vault, epoch, "blake3-keyed-256"), CHUNK, 4096)


def root_ref(tag: int) -> BlobRef:
    return BlobRef(1, 2, bytes([tag]) * 32, "o/" + f"{tag:02x}" * 32, 0, 100 + tag, None)


# --- B.6 ------------------------------------------------------------------------------------


def test_b6_commit_chain_vectors(kat: dict[str, Any]) -> None:
    v = kat["commits"]
    s = sealer()
    c1 = v["c1_plain"]
    c0 = dict(c1, gen=0, parent=None, root=b64u(b"\x01" * 32), time=1735689600)
    obj0 = seal_body(s, 0, dumps(c0), salt=b"\x44" * 24)
    obj1 = seal_body(s, 1, dumps(c1), salt=b"\x45" * 24)
    assert hashlib.sha256(obj0).hexdigest() == v["c0_sha256"]
    assert hashlib.sha256(obj1).hexdigest() == v["c1_sha256"]
    assert object_hash(obj0).hex() == v["c1_parent"]
    opened = json.loads(bytes(s.open(KIND_COMMIT, commit_name(1), obj1)))
    assert opened == c1 and opened["parent"] == b64u(object_hash(obj0))
    assert (opened["root"], opened["client"], opened["keystore_gen"]) == (b64u(b"\x02" * 32), b64u(b"\x09" * 16), 1)
    # the vectors' body shape (bare root id, root_epoch) predates blob refs: the product codec refuses it
    with pytest.raises(IntegrityError):
        open_commit(s, 1, obj1)


# --- codec ------------------------------------------------------------------------------------


def make(gen: int, parent: bytes | None, tag: int = 0, epoch: int = 1, vault: bytes = VAULT) -> Commit:
    root = (root_ref(tag + 1), root_ref(tag + 2)) if gen else ()
    return Commit(vault, gen, parent, epoch, 1, root, b"\x09" * 16, 1735689600 + gen)


def test_genesis_exact_body() -> None:
    assert encode_commit(make(0, None)) == (
        b'{"client":"CQkJCQkJCQkJCQkJCQkJCQ","epoch":1,"gen":0,"keystore_gen":1,"parent":null,"root":[],'
        b'"time":1735689600,"v":1,"vault_id":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}'
    )


def test_seal_open_round_trip_and_size() -> None:
    s = sealer()
    c = make(7, b"\x33" * 32)
    data = seal_commit(s, c)
    assert open_commit(s, 7, data) == c
    assert len(data) == 6 + 56 + 1024 + 16  # 1 KiB pad floor, one record
    assert peek_epoch(data) == 1
    assert seal_commit(s, c) != data  # fresh salt every time


def test_commit_name() -> None:
    assert commit_name(0) == "c/0000000000000000" and commit_name(0x1F) == "c/000000000000001f"
    with pytest.raises(ValueError):
        commit_name(-1)


def test_open_checks_name_vault_and_epoch() -> None:
    s = sealer()
    data = seal_commit(s, make(3, b"\x01" * 32))
    with pytest.raises(IntegrityError):
        open_commit(s, 4, data)  # replayed under another name
    with pytest.raises(IntegrityError):
        open_commit(sealer(vault=bytes(32)), 3, data)  # another vault, same root key
    with pytest.raises(IntegrityError):
        open_commit(sealer(epoch=2), 3, data)  # other epoch keys
    seen: list[tuple[int, int]] = []

    def allowed(epoch: int, gen: int) -> bool:
        seen.append((epoch, gen))
        return gen <= 2  # as if epoch 1 were retired at generation 2

    with pytest.raises(IntegrityError):
        open_commit(s, 3, data, epoch_allowed=allowed)
    assert seen == [(1, 3)]


def test_body_gen_must_match_name() -> None:
    """A key holder sealing a body whose gen differs from its name is still refused."""
    s = sealer()
    data = seal_body(s, 5, encode_commit(make(4, b"\x01" * 32)))
    with pytest.raises(IntegrityError):
        open_commit(s, 5, data)
    other_vault = seal_body(s, 4, encode_commit(make(4, b"\x01" * 32, vault=bytes(32))))
    with pytest.raises(IntegrityError):
        open_commit(s, 4, other_vault)


def test_seal_refuses_foreign_vault_or_epoch() -> None:
    with pytest.raises(ValueError):
        seal_commit(sealer(), make(1, b"\x01" * 32, epoch=2))
    with pytest.raises(ValueError):
        seal_commit(sealer(), make(1, b"\x01" * 32, vault=bytes(32)))


def test_every_bit_flip_and_truncation_is_integrity_error() -> None:
    s = sealer()
    data = seal_commit(s, make(2, b"\x01" * 32))
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x01 << (i % 8)
        with pytest.raises(IntegrityError):
            open_commit(s, 2, bytes(bad))
    for n in range(len(data)):
        with pytest.raises(IntegrityError):
            open_commit(s, 2, data[:n])
    with pytest.raises(IntegrityError):
        open_commit(s, 2, data + b"\x00")


BAD_BODIES: dict[str, Any] = {
    "parent null after genesis": {"parent": None},
    "parent at genesis": {"gen": 0},
    "short parent": {"parent": b64u(b"\x01" * 31)},
    "padded parent": {"parent": b64u(b"\x01" * 32) + "="},
    "short vault id": {"vault_id": b64u(b"\x01" * 31)},
    "short client": {"client": b64u(b"\x09" * 15)},
    "bool gen": {"gen": True},
    "negative time": {"time": -1},
    "epoch above u32": {"epoch": 2**32},
    "version 2": {"v": 2},
    "unknown field": {"root_epoch": 1},
    "bare root id": {"root": b64u(b"\x02" * 32)},
    "data ref as root": {"root": [{"e": 1, "k": 4, "id": b64u(b"\x01" * 32), "o": "o/" + "0" * 64,
                                   "off": 0, "len": 1, "ol": 4096}]},
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_bodies_rejected(case: str) -> None:
    doc = json.loads(encode_commit(make(1, b"\x01" * 32)))
    doc.update(BAD_BODIES[case])
    with pytest.raises(IntegrityError):
        decode_commit(dumps(doc))


def test_non_canonical_bodies_rejected() -> None:
    good = encode_commit(make(1, b"\x01" * 32))
    assert decode_commit(good) == make(1, b"\x01" * 32)
    doc = json.loads(good)
    for bad in (
        json.dumps(doc, sort_keys=True).encode(),  # whitespace
        json.dumps(dict(reversed(list(doc.items()))), separators=(",", ":")).encode(),  # key order
        good.replace(b'"epoch":1', b'"epoch":1.0'),
        good.replace(b'"v":1', b'"v":1,"v":1'),
        good + b" ",
    ):
        assert bad != good
        with pytest.raises(IntegrityError):
            decode_commit(bad)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bodies_end_in_integrity_error(data: bytes) -> None:
    with pytest.raises(IntegrityError):
        decode_commit(data)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 400), st.integers(0, 255), st.sampled_from(["set", "delete", "insert"]))
def test_mutated_bodies_end_in_integrity_error(pos: int, byte: int, op: str) -> None:
    good = bytearray(encode_commit(make(1, b"\x01" * 32)))
    pos %= len(good)
    if op == "set":
        good[pos] = byte
    elif op == "delete":
        del good[pos]
    else:
        good.insert(pos, byte)
    try:
        c = decode_commit(bytes(good))
    except IntegrityError:
        return
    assert encode_commit(c) == bytes(good)


# --- chains -----------------------------------------------------------------------------------


class Store:
    """What the provider serves at c/{gen}: an in-memory stand-in for a backend's commit objects."""

    def __init__(self) -> None:
        self.objects: dict[int, bytes] = {}
        self.fetched: list[int] = []

    async def fetch(self, gen: int) -> bytes | None:
        self.fetched.append(gen)
        await asyncio.sleep(0)
        return self.objects.get(gen)


def build(s: Sealer, gens: range, parent: bytes | None, tag: int = 0) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for g in gens:
        data = seal_commit(s, make(g, parent, tag))
        out[g] = data
        parent = object_hash(data)
    return out


S = sealer()
OPEN = opener({1: S})
HISTORY = build(S, range(6), None)  # c/0 … c/5


def state_at(gen: int, history: dict[int, bytes] = HISTORY) -> ChainState:
    return ChainState(gen, object_hash(history[gen]))


def serve(objects: dict[int, bytes]) -> Store:
    store = Store()
    store.objects = dict(objects)
    return store


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_honest_advance_accepted() -> None:
    store = serve(HISTORY)
    head: ChainHead = run(verify_chain(state_at(2), 5, store.fetch, OPEN))
    assert (head.gen, head.hash) == (5, object_hash(HISTORY[5]))
    assert head.commit == open_commit(S, 5, HISTORY[5])
    assert store.fetched == [2, 3, 4, 5]
    assert head.state == state_at(5)
    found = run(find_head(state_at(2), store.fetch, OPEN))
    assert found == head


def test_no_change_and_fresh_client() -> None:
    store = serve(HISTORY)
    assert run(verify_chain(state_at(5), 5, store.fetch, OPEN)).state == state_at(5)
    assert run(verify_chain(None, 5, store.fetch, OPEN)).state == state_at(5)
    assert run(find_head(None, store.fetch, OPEN)).state == state_at(5)
    assert run(find_head(None, serve({}).fetch, OPEN)) is None


def test_find_head_limit() -> None:
    head = run(find_head(state_at(1), serve(HISTORY).fetch, OPEN, limit=2))
    assert head.gen == 3
    assert run(find_head(head.state, serve(HISTORY).fetch, OPEN)).gen == 5


def test_rollback_to_older_head() -> None:
    store = serve({g: d for g, d in HISTORY.items() if g <= 3})
    with pytest.raises(RollbackError):
        run(verify_chain(state_at(5), 3, store.fetch, OPEN))
    with pytest.raises(RollbackError):
        run(find_head(state_at(5), store.fetch, OPEN))  # the pinned c/5 is gone
    with pytest.raises(RollbackError):  # an observed head below the mark, even if c/5 is still served
        run(verify_chain(state_at(5), 3, serve(HISTORY).fetch, OPEN))


def test_old_commit_replayed_under_next_name() -> None:
    for old in (5, 3, 0):
        store = serve({**HISTORY, 6: HISTORY[old]})
        with pytest.raises(IntegrityError):
            run(find_head(state_at(5), store.fetch, OPEN))
        with pytest.raises(IntegrityError):
            run(verify_chain(state_at(4), 6, store.fetch, OPEN))


def test_fork_at_same_generation() -> None:
    other = build(S, range(3, 6), object_hash(HISTORY[2]), tag=50)  # another branch from c/2
    store = serve({**{g: HISTORY[g] for g in range(3)}, **other})
    with pytest.raises(RollbackError):
        run(verify_chain(state_at(5), 5, store.fetch, OPEN))
    with pytest.raises(RollbackError):
        run(find_head(state_at(5), store.fetch, OPEN))
    # a withheld c/5 reappearing with different bytes, even re-sealed from the same body
    resealed = seal_commit(S, open_commit(S, 5, HISTORY[5]))
    assert resealed != HISTORY[5]
    with pytest.raises(RollbackError):
        run(find_head(state_at(5), serve({**HISTORY, 5: resealed}).fetch, OPEN))


def test_fork_that_extends_into_later_commits() -> None:
    branch = build(S, range(3, 9), object_hash(HISTORY[2]), tag=50)
    # the client pinned our c/3; the provider keeps it but continues with the other branch
    store = serve({**{g: HISTORY[g] for g in range(4)}, **{g: branch[g] for g in range(4, 9)}})
    with pytest.raises(RollbackError):
        run(verify_chain(state_at(3), 8, store.fetch, OPEN))
    with pytest.raises(RollbackError):
        run(find_head(state_at(3), store.fetch, OPEN))
    # a client that only knew c/2 cannot tell (§5.3 limits): the other branch is an advance for it
    other = serve({**{g: HISTORY[g] for g in range(3)}, **branch})
    assert run(verify_chain(state_at(2), 8, other.fetch, OPEN)).state == ChainState(8, object_hash(branch[8]))


def test_withheld_link_is_rollback() -> None:
    store = serve({g: d for g, d in HISTORY.items() if g != 4})
    with pytest.raises(RollbackError):
        run(verify_chain(state_at(2), 5, store.fetch, OPEN))


def test_verify_successor() -> None:
    head = run(verify_chain(state_at(5), 5, serve(HISTORY).fetch, OPEN))
    nxt = seal_commit(S, make(6, head.hash))
    assert verify_successor(head, 6, nxt, OPEN).gen == 6
    with pytest.raises(RollbackError):
        verify_successor(head, 6, seal_commit(S, make(6, b"\x00" * 32)), OPEN)
    with pytest.raises(RollbackError):
        verify_successor(head, 7, seal_commit(S, make(7, head.hash)), OPEN)


def test_opener_picks_epoch_and_applies_retirement() -> None:
    s2 = sealer(epoch=2, root_key=b"\x43" * 32)
    c0 = seal_commit(S, make(0, None))
    c1 = seal_commit(S, make(1, object_hash(c0)))
    c2 = seal_commit(s2, make(2, object_hash(c1), epoch=2))
    late = seal_commit(S, make(3, object_hash(c2)))  # epoch 1 after its retirement at gen 2
    open_at = opener({1: S, 2: s2}, epoch_allowed=lambda e, g: e != 1 or g <= 2)
    assert run(find_head(None, serve({0: c0, 1: c1, 2: c2}).fetch, open_at)).commit.epoch == 2
    with pytest.raises(IntegrityError):
        run(find_head(None, serve({0: c0, 1: c1, 2: c2, 3: late}).fetch, open_at))
    with pytest.raises(IntegrityError):
        opener({2: s2})(0, c0)  # epoch unknown to the keyring
    with pytest.raises(IntegrityError):
        peek_epoch(b"\x01\x01\x00")
    with pytest.raises(IntegrityError):
        peek_epoch(b"\x02" + c0[1:])


def test_commit_dataclass_rules() -> None:
    with pytest.raises(ValueError):
        make(1, None)
    with pytest.raises(ValueError):
        make(0, b"\x01" * 32)
    with pytest.raises(ValueError):
        replace(make(1, b"\x01" * 32), root=(BlobRef(1, 4, b"\x01" * 32, "o/" + "0" * 64, 0, 1, 4096),))
