"""Format known-answer tests (CRYPTO.md §6.1, Appendix B): every format vector of crypto-kat.json, exactly."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from sigmavault.engine.format import aead as chunked
from sigmavault.engine.format import envelope as objects
from sigmavault.engine.format import framing
from sigmavault.engine.keys import schedule as keys

VAULT_ID = bytes(range(32))
RK1 = b"\x42" * 32


def epoch_keys(kat: dict[str, Any], prf: keys.PrfName = "blake3-keyed-256") -> keys.EpochKeys:
    ks = kat["key_schedule"]
    return keys.EpochKeys.derive(bytes.fromhex(ks["root_key_epoch1"]), bytes.fromhex(ks["vault_id"]), ks["epoch"], prf)


def test_inputs_are_the_documented_ones(kat: dict[str, Any]) -> None:
    assert bytes.fromhex(kat["key_schedule"]["vault_id"]) == VAULT_ID
    assert bytes.fromhex(kat["key_schedule"]["root_key_epoch1"]) == RK1
    assert kat["key_schedule"]["epoch"] == 1


# --- RFC 5869 test case 1, through the same cryptography primitives keys.py uses -------------------

RFC5869_IKM = b"\x0b" * 22
RFC5869_SALT = bytes(range(13))
RFC5869_INFO = bytes(range(0xF0, 0xFA))
RFC5869_PRK = "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"
RFC5869_OKM = "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"


def test_rfc5869_case_1_extract_then_expand() -> None:
    prk = HKDF.extract(hashes.SHA256(), RFC5869_SALT, RFC5869_IKM)
    assert prk.hex() == RFC5869_PRK
    assert HKDFExpand(hashes.SHA256(), 42, RFC5869_INFO).derive(prk).hex() == RFC5869_OKM
    assert HKDF(hashes.SHA256(), 42, RFC5869_SALT, RFC5869_INFO).derive(RFC5869_IKM).hex() == RFC5869_OKM


def test_epoch_prk_is_rfc5869_extract() -> None:
    salt = b"vault/v1/epoch\x00" + VAULT_ID + (1).to_bytes(4, "big")
    assert keys.epoch_prk(RK1, VAULT_ID, 1) == HKDF.extract(hashes.SHA256(), salt, RK1)


# --- B.1 key schedule ------------------------------------------------------------------------------


@pytest.mark.parametrize("label", keys.EPOCH_LABELS)
def test_epoch_subkey(kat: dict[str, Any], label: str) -> None:
    prk = keys.epoch_prk(RK1, VAULT_ID, 1)
    assert keys.expand(prk, label).hex() == kat["key_schedule"]["subkeys"][label]


def test_epoch_labels_cover_the_vector(kat: dict[str, Any]) -> None:
    assert set(keys.EPOCH_LABELS) == set(kat["key_schedule"]["subkeys"])
    assert len(keys.EPOCH_LABELS) == 8


def test_epoch_keys_fields_match_vector(kat: dict[str, Any]) -> None:
    ek = epoch_keys(kat)
    sub = kat["key_schedule"]["subkeys"]
    fields = {
        "data-enc": ek.data_enc, "page-enc": ek.page_enc, "commit-enc": ek.commit_enc, "chunk-id": ek.chunk_id,
        "page-id": ek.page_id, "obj-name": ek.obj_name, "shard-mac": ek.shard_mac, "cdc-key": ek.cdc_key,
    }
    for label, secret in fields.items():
        assert secret.reveal().hex() == sub[label], label
    assert ek.enc_key(keys.KIND_CHUNK).hex() == sub["data-enc"]
    assert ek.enc_key(keys.KIND_DATA_PACK).hex() == sub["data-enc"]
    assert ek.enc_key(keys.KIND_PAGE_PACK).hex() == sub["page-enc"]
    assert ek.enc_key(keys.KIND_COMMIT).hex() == sub["commit-enc"]
    for secret in fields.values():
        assert secret.reveal().hex() not in repr(ek)


@pytest.mark.parametrize("label", keys.KSK_LABELS)
def test_ksk_subkey(kat: dict[str, Any], label: str) -> None:
    ksk = bytes.fromhex(kat["ksk_schedule"]["ksk"])
    assert ksk == b"\x55" * 32
    assert keys.expand(ksk, label).hex() == kat["ksk_schedule"]["subkeys"][label]
    assert len(keys.KSK_LABELS) == len(kat["ksk_schedule"]["subkeys"]) == 2


def test_local_state_key(kat: dict[str, Any]) -> None:
    assert keys.expand(b"\xbb" * 32, "local-state").hex() == kat["local_state_key"]


def test_other_epoch_and_vault_give_other_keys(kat: dict[str, Any]) -> None:
    sub = kat["key_schedule"]["subkeys"]
    for prk in (keys.epoch_prk(RK1, VAULT_ID, 2), keys.epoch_prk(RK1, bytes(32), 1)):
        assert keys.expand(prk, "data-enc").hex() != sub["data-enc"]


# --- B.2 seal ------------------------------------------------------------------------------------


def seal_inputs(kat: dict[str, Any]) -> tuple[bytes, bytes, bytes]:
    s = kat["seal"]
    return bytes.fromhex(s["input_key"]), bytes.fromhex(s["salt"]), s["context_ascii"].encode("ascii")


def kat_msg(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


def test_seal_derived_values(kat: dict[str, Any]) -> None:
    prk, salt, ctx = seal_inputs(kat)
    d = chunked.derive(prk, salt, ctx)
    assert d.key.hex() == kat["seal"]["derived_key"]
    assert d.base_nonce.to_bytes(12, "big").hex() == kat["seal"]["base_nonce"]
    assert d.commitment.hex() == kat["seal"]["commitment"]
    assert kat["seal"]["derived_key"] not in repr(d)


def test_seal_vectors_cover_the_record_boundaries(kat: dict[str, Any]) -> None:
    assert [v["msg_len"] for v in kat["seal"]["vectors"]] == [0, 1, 16383, 16384, 16385, 40000]


@pytest.mark.parametrize("index", range(6))
def test_seal_vector(kat: dict[str, Any], index: int) -> None:
    prk, salt, ctx = seal_inputs(kat)
    v = kat["seal"]["vectors"][index]
    assert v["msg"] == "bytes(i % 251 for i in range(n))"
    msg = kat_msg(v["msg_len"])
    ct = chunked.seal(prk, ctx, msg, salt=salt)
    assert len(ct) == v["ct_len"] == chunked.sealed_len(len(msg))
    assert hashlib.sha256(ct).hexdigest() == v["ct_sha256"]
    if "ct_hex" in v:
        assert ct.hex() == v["ct_hex"]
    assert ct[:24] == salt and ct[24:56].hex() == kat["seal"]["commitment"]
    # seal_into a larger, dirty buffer writes exactly the same bytes and reports the length
    buf = bytearray(b"\xee" * (len(ct) + 100))
    assert chunked.seal_into(prk, ctx, msg, buf, salt) == len(ct)
    assert bytes(buf[: len(ct)]) == ct and buf[len(ct) :] == b"\xee" * 100
    assert chunked.open(prk, ctx, ct) == msg


# --- B.3 PRF -------------------------------------------------------------------------------------


@pytest.mark.parametrize("prf", keys.PRFS)
def test_prf_id_and_name(kat: dict[str, Any], prf: keys.PrfName) -> None:
    ek = epoch_keys(kat, prf)
    want = kat["prf"][prf]
    cid = ek.chunk_id_of(b"abc")
    assert cid.hex() == want["chunk_id(b'abc')"]
    assert ek.chunk_name(cid) == want["object_name(data, id)"]
    # the raw PRF agrees with the key schedule's chunk-id key
    assert keys.prf(prf, bytes.fromhex(kat["key_schedule"]["subkeys"]["chunk-id"]), b"abc") == cid


def test_prf_accepts_memoryview_and_bytearray(kat: dict[str, Any]) -> None:
    ek = epoch_keys(kat)
    want = kat["prf"]["blake3-keyed-256"]["chunk_id(b'abc')"]
    assert ek.chunk_id_of(bytearray(b"abc")).hex() == want
    assert ek.chunk_id_of(memoryview(b"xabcx")[1:4]).hex() == want


def test_pack_names_are_separated_by_kind(kat: dict[str, Any]) -> None:
    ek = epoch_keys(kat)
    pid = b"\x07" * 32
    names = {ek.chunk_name(pid), ek.pack_name(keys.KIND_DATA_PACK, pid), ek.pack_name(keys.KIND_PAGE_PACK, pid)}
    assert len(names) == 3
    assert all(n.startswith("o/") and len(n) == 66 for n in names)
    with pytest.raises(ValueError):
        ek.pack_name(keys.KIND_CHUNK, pid)
    with pytest.raises(ValueError):
        ek.pack_name(keys.KIND_DATA_PACK, pid[:31])


# --- B.4 PADME -----------------------------------------------------------------------------------


def test_padme_table(kat: dict[str, Any]) -> None:
    assert len(kat["padme"]) == 14
    for length, padded in kat["padme"].items():
        assert framing.padme(int(length)) == padded, length


def test_padme_cap_at_full_chunk(kat: dict[str, Any]) -> None:
    # 4194312 → 4325376 by PADME, then capped at 8 + chunk_size
    assert framing.padme(4194312) == kat["padme"]["4194312"]
    assert framing.framed_len(4 << 20, 4 << 20, 4096) == 4194312


# --- B.5 data-chunk object -----------------------------------------------------------------------


def test_chunk_object(kat: dict[str, Any]) -> None:
    co = kat["chunk_object"]
    data = co["data_ascii"].encode("ascii")
    ek = epoch_keys(kat)
    cid = ek.chunk_id_of(data)
    assert cid.hex() == co["chunk_id"]
    name = ek.chunk_name(cid)
    assert name == co["name"]
    sealer = objects.Sealer(ek, co["chunk_size"], co["pad_floor"])
    obj = sealer.seal(keys.KIND_CHUNK, name, data, salt=bytes.fromhex(co["seal_salt"]))
    assert len(obj) == co["object_len"] == objects.object_len(len(data), co["chunk_size"], co["pad_floor"])
    assert hashlib.sha256(obj).hexdigest() == co["object_sha256"]
    assert obj.startswith(bytes.fromhex(co["object_prefix_hex"]))
    assert obj[:6] == objects.header(1) == bytes.fromhex("010100000001")
    assert bytes(sealer.open(keys.KIND_CHUNK, name, obj, expected_len=co["object_len"])) == data


def test_chunk_object_context_layout(kat: dict[str, Any]) -> None:
    co = kat["chunk_object"]
    hdr = objects.header(1)
    ctx = objects.context(VAULT_ID, keys.KIND_CHUNK, co["name"], hdr)
    assert ctx == b"vault/v1/object\x00" + VAULT_ID + b"\x01" + b"\x00\x42" + co["name"].encode() + hdr
    # the object's body is exactly chunked.seal of the framed message under data-enc and that context
    ek = epoch_keys(kat)
    data = co["data_ascii"].encode("ascii")
    msg = framing.frame(data, co["chunk_size"], co["pad_floor"])
    assert len(msg) == 4096 and msg[:8] == bytes([1, 0, 0, 0, 0, 0, 0, len(data)])
    body = chunked.seal(ek.data_enc.reveal(), ctx, msg, salt=bytes.fromhex(co["seal_salt"]))
    assert hashlib.sha256(hdr + body).hexdigest() == co["object_sha256"]


def test_chunk_object_through_reused_buffers(kat: dict[str, Any]) -> None:
    co = kat["chunk_object"]
    data = co["data_ascii"].encode("ascii")
    sealer = objects.Sealer(epoch_keys(kat), co["chunk_size"], co["pad_floor"])
    out = bytearray(b"\xff" * (8 + co["chunk_size"] + 4200))  # dirty, reused, larger than needed
    n = sealer.seal_into(keys.KIND_CHUNK, co["name"], data, out, salt=bytes.fromhex(co["seal_salt"]))
    assert n == co["object_len"]
    assert hashlib.sha256(out[:n]).hexdigest() == co["object_sha256"]
    back = bytearray(b"\xff" * (8 + co["chunk_size"]))
    assert bytes(sealer.open_into(keys.KIND_CHUNK, co["name"], out[:n], back)) == data


def test_the_chunk_prf_is_the_same_digest_threaded_or_not() -> None:
    """Large inputs are hashed on several threads, small ones on one: the keyed digest never changes."""
    import blake3

    from sigmavault.engine.keys.schedule import PRF_THREADED_FROM, prf

    key = bytes(range(32))
    for n in (0, 1, 8000, PRF_THREADED_FROM - 1, PRF_THREADED_FROM, 2 * PRF_THREADED_FROM + 5):
        data = bytes(i % 251 for i in range(n))
        assert prf("blake3-keyed-256", key, data) == blake3.blake3(data, key=key).digest()
