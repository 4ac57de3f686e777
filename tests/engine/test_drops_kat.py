"""Known-answer vectors of write-only clients (tests/data/drops-kat.json, written by tests/data/make_drops_kat.py).

Recomputed independently of engine/format/drops.py where that is short (HKDF, the PRF names, the
record layout by offsets, the body's AEAD and framing); ML-DSA signatures and X-Wing encapsulations
are randomised, so the stored ones must verify and open, and all the rest must reproduce byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import blake3
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from sigmavault.engine.errors import IntegrityError
from sigmavault.engine.format import aead as chunked
from sigmavault.engine.format import drops
from sigmavault.engine.format.framing import padme
from sigmavault.engine.format.pages import BlobRef, ref_to_json
from sigmavault.engine.keys import sign, xwing
from sigmavault.engine.keys.schedule import KIND_PAGE_PACK, EpochKeys
from sigmavault.engine.keys.secret import Secret

KAT: dict[str, Any] = json.loads((Path(__file__).parent.parent / "data" / "drops-kat.json").read_text())
VAULT_ID = bytes.fromhex(KAT["vault_id"])
EPOCH = KAT["epoch"]
WRITER_ID = bytes.fromhex(KAT["writer"]["id"])
WRITER_KEY = bytes.fromhex(KAT["writer"]["key"])
SEEDS = Secret(bytes.fromhex(KAT["signing"]["seeds"]))
DROP_SEED = Secret(bytes.fromhex(KAT["drop_kem"]["seed"]))
RECORDS = KAT["records"]
SUBKEY_LABELS = {"data_enc": "drop/data-enc", "page_enc": "drop/page-enc", "commit_enc": "drop/record",
                 "obj_name": "drop/obj-name", "shard_mac": "drop/shard-mac", "chunk_id": "writer/chunk-id",
                 "page_id": "writer/page-id", "cdc_key": "writer/cdc-key"}


def expand(key: bytes, label: str) -> bytes:
    return HKDFExpand(hashes.SHA256(), 32, b"vault/v1/" + label.encode()).derive(key)


def prf(name: str, key: bytes, msg: bytes) -> bytes:
    if name == "hmac-sha256":
        return hmac.new(key, msg, hashlib.sha256).digest()
    return blake3.blake3(msg, key=key).digest()


def drop_keys(prf_name: str, drop_key: bytes) -> EpochKeys:
    return EpochKeys.for_drop(VAULT_ID, EPOCH, prf_name, WRITER_ID, Secret(WRITER_KEY), Secret(drop_key))  # type: ignore[arg-type]


def test_the_epochs_drop_key_pair() -> None:
    prk = HKDF.extract(hashes.SHA256(), b"vault/v1/epoch\x00" + VAULT_ID + EPOCH.to_bytes(4, "big"),
                       bytes.fromhex(KAT["root_key"]))
    seed = expand(prk, "drop-kem")
    assert seed.hex() == KAT["drop_kem"]["seed"]
    ek = EpochKeys.derive(bytes.fromhex(KAT["root_key"]), VAULT_ID, EPOCH, "blake3-keyed-256")
    assert ek.drop_kem is not None and ek.drop_kem.reveal() == seed
    pk = xwing.public_key(DROP_SEED)
    assert hashlib.sha256(pk).hexdigest() == KAT["drop_kem"]["public_key_sha256"]
    x25519 = hashlib.shake_256(seed).digest(96)[64:]  # the X25519 half is the last 32 bytes of the public key
    assert pk[-32:] == X25519PrivateKey.from_private_bytes(x25519).public_key().public_bytes_raw()


def test_the_writers_verify_key() -> None:
    vk = sign.verify_key(SEEDS)
    assert hashlib.sha256(vk).hexdigest() == KAT["signing"]["verify_key_sha256"]
    ed = Ed25519PrivateKey.from_private_bytes(SEEDS.reveal()[:32]).public_key().public_bytes_raw()
    assert vk[:32] == ed and len(vk) == sign.VERIFY_KEY_LEN


def test_a_drops_key_set() -> None:
    dk = bytes.fromhex(RECORDS[0]["drop_key"])
    for prf_name, v in KAT["prf"].items():
        keys = drop_keys(prf_name, dk)
        for field, label in SUBKEY_LABELS.items():
            source = WRITER_KEY if label.startswith("writer/") else dk
            assert expand(source, label).hex() == KAT["drop_subkeys"][field] == getattr(keys, field).reveal().hex()
        chunk = bytes.fromhex(v["chunk"])
        cid = prf(prf_name, expand(WRITER_KEY, "writer/chunk-id"), chunk)
        assert cid.hex() == v["chunk_id"] == keys.chunk_id_of(chunk).hex()
        name = KAT["writer"]["prefix"] + prf(prf_name, expand(dk, "drop/obj-name"), b"\x01" + cid).hex()
        assert name == v["chunk_name"] == keys.chunk_name(cid)
        pack = KAT["writer"]["prefix"] + prf(prf_name, expand(dk, "drop/obj-name"),
                                             b"\x02" + bytes.fromhex(v["pack_id"])).hex()
        assert pack == v["page_pack_name"] == keys.pack_name(KIND_PAGE_PACK, bytes.fromhex(v["pack_id"]))


def _split(data: bytes) -> dict[str, Any]:
    """The record layout by offsets, written out here rather than taken from drops.py."""
    n = int.from_bytes(data[1265:1269], "big")
    assert len(data) == 1269 + n + 3373
    return {"magic": data[:5], "vault_id": data[5:37], "writer_id": data[37:53],
            "seq": int.from_bytes(data[53:61], "big"), "prev": data[61:93], "epoch": int.from_bytes(data[93:97], "big"),
            "enc": data[97:1265], "body_ct": data[1269:1269 + n], "signed": data[:1269 + n],
            "signature": data[1269 + n:]}


@pytest.mark.parametrize("index", range(len(RECORDS)))
def test_a_record_by_hand(index: int) -> None:
    v = RECORDS[index]
    data = bytes.fromhex(v["record"])
    seq = v["seq"]
    parts = _split(data)
    assert parts["magic"] == b"SVDR\x01" and parts["vault_id"] == VAULT_ID and parts["writer_id"] == WRITER_ID
    assert parts["seq"] == seq and parts["epoch"] == EPOCH and parts["prev"].hex() == v["prev"]
    assert v["name"] == f"d/{WRITER_ID.hex()}/{seq:016x}"
    assert hashlib.sha256(data).hexdigest() == v["record_hash"] and len(data) == v["record_len"]
    if index:
        assert v["prev"] == RECORDS[index - 1]["record_hash"]
    else:
        assert v["prev"] == "00" * 32
    binding = VAULT_ID + WRITER_ID + seq.to_bytes(8, "big") + EPOCH.to_bytes(4, "big")
    assert (b"vault/v1/drop\x00" + binding).hex() == v["info"]
    assert (b"vault/v1/drop-record\x00" + binding).hex() == v["context"]
    # the drop key opens from enc with the epoch's drop seed
    assert xwing.open(DROP_SEED, bytes.fromhex(v["info"]), parts["enc"]).hex() == v["drop_key"]
    # the body: its key, its AEAD, its frame and padding
    key = expand(bytes.fromhex(v["drop_key"]), "drop/record")
    assert key.hex() == v["record_key"]
    body = v["body"].encode()
    msg = chunked.open(key, bytes.fromhex(v["context"]), parts["body_ct"])
    assert parts["body_ct"][:24].hex() == v["salt"]
    assert msg[:8] == bytes([1, 0, 0, 0]) + len(body).to_bytes(4, "big") and msg[8:8 + len(body)] == body
    assert len(msg) == max(1024, padme(8 + len(body))) and not any(msg[8 + len(body):])
    assert chunked.seal(key, bytes.fromhex(v["context"]), msg, bytes.fromhex(v["salt"])) == parts["body_ct"]
    # the signature: both halves, over the drop-record label and the signed bytes
    vk = sign.verify_key(SEEDS)
    sign.verify(vk, b"vault/v1/drop-record-sig\x00" + parts["signed"], parts["signature"])
    with pytest.raises(IntegrityError):
        sign.verify(vk, parts["signed"], parts["signature"])  # the label is part of what is signed


@pytest.mark.parametrize("index", range(len(RECORDS)))
def test_a_record_through_the_module(index: int) -> None:
    v = RECORDS[index]
    data = bytes.fromhex(v["record"])
    rec = drops.parse_record(data, v["name"])
    assert (rec.vault_id, rec.writer_id, rec.seq, rec.epoch) == (VAULT_ID, WRITER_ID, v["seq"], EPOCH)
    assert rec.prev.hex() == v["prev"] and rec.hash.hex() == v["record_hash"]
    drops.verify_record(rec, sign.verify_key(SEEDS))
    dk = drops.open_drop_key(rec, DROP_SEED)
    assert dk.reveal().hex() == v["drop_key"]
    keys = drop_keys("blake3-keyed-256", dk.reveal())
    body = drops.open_body(rec, keys)
    assert drops.encode_body(body).decode() == v["body"]
    assert body.dest == b"/web-1" and len(body.root) == 2
    assert json.loads(v["body"])["root"] == [ref_to_json(r) for r in body.root]
    assert all(isinstance(r, BlobRef) and r.writer == WRITER_ID for r in body.root)
    # sealing again with the stored enc and salt gives the same signed bytes (only the signature differs)
    again = drops.seal_record(SEEDS, keys, WRITER_ID, v["seq"], bytes.fromhex(v["prev"]), rec.enc, body,
                              salt=bytes.fromhex(v["salt"]))
    assert again[: len(rec.signed)] == rec.signed and len(again) == len(data)
    assert drops.record_len(len(v["body"])) == len(data)
