"""Known-answer vectors of dispersed vaults (tests/data/dispersal-kat.json), recomputed independently
of engine/format/shards.py where that is short: HKDF, the Feistel shard names, the tag, the header."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from pathlib import Path

import blake3
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from sigmavault.engine.errors import IntegrityError
from sigmavault.engine.format import shards as fmt

KAT = json.loads((Path(__file__).parent.parent / "data" / "dispersal-kat.json").read_text())
VAK = bytes.fromhex(KAT["vak"])
VAULT_ID = bytes.fromhex(KAT["vault_id"])


def prf(name: str, key: bytes, msg: bytes) -> bytes:
    if name == "hmac-sha256":
        return hmac.new(key, msg, hashlib.sha256).digest()
    return blake3.blake3(msg, key=key).digest()


def feistel(name: str, key: bytes, raw: bytes, index: int) -> bytes:
    left, right = raw[:16], raw[16:]
    for r in range(4):
        f = prf(name, key, b"shard\x00" + bytes([index, r]) + right)[:16]
        left, right = right, bytes(a ^ b for a, b in zip(left, f, strict=True))
    return left + right


@pytest.mark.parametrize("prf_name", sorted(KAT["prf"]))
def test_subkeys_names_and_place_record(prf_name: str) -> None:
    v = KAT["prf"][prf_name]
    for label, hexkey in v["subkeys"].items():
        assert HKDFExpand(hashes.SHA256(), 32, b"vault/v1/" + label.encode()).derive(VAK).hex() == hexkey
    keys = fmt.ShardKeys.derive(VAK, VAULT_ID, prf_name)  # type: ignore[arg-type]
    name_key = bytes.fromhex(v["subkeys"]["dispersal-shard-name"])
    raw = bytes.fromhex(v["object_name"][2:])
    for i, expected in enumerate(v["shard_names"]):
        assert "o/" + feistel(prf_name, name_key, raw, i).hex() == expected == keys.shard_name(v["object_name"], i)
        assert keys.object_name(expected, i) == v["object_name"]
    place_id = bytes.fromhex(v["place_id"])
    tag = hmac.new(
        bytes.fromhex(v["subkeys"]["dispersal-place"]), b"vault/v1/place\x00" + VAULT_ID + place_id, hashlib.sha256
    ).digest()
    assert (b"\x01\x10" + place_id + tag).hex() == v["place_record"] == keys.place_record(place_id).hex()
    assert keys.place_id_of(bytes.fromhex(v["place_record"])) == place_id


@pytest.mark.parametrize("prf_name", sorted(KAT["prf"]))
def test_one_object_as_three_shards(prf_name: str) -> None:
    v = KAT["prf"][prf_name]
    keys = fmt.ShardKeys.derive(VAK, VAULT_ID, prf_name)  # type: ignore[arg-type]
    obj, wid, name = bytes.fromhex(v["shard_object"]), bytes.fromhex(v["shard_write_id"]), v["object_name"]
    shards = [bytes.fromhex(s) for s in v["shards"]]
    assert fmt.encode(keys, name, obj, 2, 3, write_id=wid) == shards
    mac_key = bytes.fromhex(v["subkeys"]["dispersal-shard-mac"])
    half = (len(obj) + 1) // 2
    for i, shard in enumerate(shards):
        hdr = bytes([1, 2, 3, i]) + len(obj).to_bytes(8, "big") + wid
        body = shard[28:-32]
        assert shard[:28] == hdr and len(body) == half
        ctx = b"vault/v1/shard\x00" + VAULT_ID + len(name).to_bytes(2, "big") + name.encode()
        assert prf(prf_name, mac_key, ctx + hdr + body) == shard[-32:]
    assert shards[0][28:-32] + shards[1][28:-32] == obj  # systematic: the data blocks are the object
    for pair in itertools.combinations(range(3), 2):
        parsed = [fmt.parse(keys, name, i, 2, 3, shards[i]) for i in pair]
        assert fmt.decode(parsed) == obj
    bad = bytearray(shards[2])
    bad[40] ^= 1
    with pytest.raises(IntegrityError):
        fmt.parse(keys, name, 2, 2, 3, bytes(bad))
    with pytest.raises(IntegrityError):
        fmt.parse(keys, "o/" + "cd" * 32, 2, 2, 3, shards[2])  # bound to the object name
    with pytest.raises(IntegrityError):
        fmt.parse(keys, name, 1, 2, 3, shards[2])  # and to its index


def test_layout_in_the_vault_parameters() -> None:
    from sigmavault.engine.keys.keyring import Dispersal, Params

    assert "dispersal" not in Params().to_json()  # single-place keyrings are as before
    ids = tuple(bytes([i]) * 16 for i in range(3))
    p = Params(dispersal=Dispersal(2, ids))
    assert p.valid() and Params.from_json(p.to_json()) == p
    assert p.to_json()["dispersal"] == {
        "needed": 2,
        "places": ["AAAAAAAAAAAAAAAAAAAAAA", "AQEBAQEBAQEBAQEBAQEBAQ", "AgICAgICAgICAgICAgICAg"],
    }
    for bad in (
        {"needed": 3, "places": p.to_json()["dispersal"]["places"]},  # tolerates no loss
        {"needed": 2, "places": p.to_json()["dispersal"]["places"][:1] * 3},  # one place thrice
        {"needed": 0, "places": p.to_json()["dispersal"]["places"]},
        {"needed": 2, "places": p.to_json()["dispersal"]["places"], "extra": 1},
    ):
        with pytest.raises(IntegrityError):
            Params.from_json({**p.to_json(), "dispersal": bad})
