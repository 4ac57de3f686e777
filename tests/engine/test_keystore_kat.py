"""Keystore known-answer tests: RFC 9106 §5.3, RFC 5869 TC1, B.7, B.8, recovery code (CRYPTO.md §6.1)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sigmavault.engine.errors import IntegrityError
from sigmavault.engine.format import aead as chunked
from sigmavault.engine.format.canonical import unb64u
from sigmavault.engine.keys import keyring, keystore, slots
from sigmavault.engine.keys.credentials import Passphrase, RecoveryCode
from sigmavault.engine.keys.schedule import expand
from sigmavault.engine.keys.secret import Secret

VAULT_ID = bytes(range(32))
KSK = Secret(b"\x55" * 32, "ksk")


# --- library checks ----------------------------------------------------------------------------


def test_rfc9106_argon2id_vector() -> None:
    argon2 = pytest.importorskip("cryptography.hazmat.primitives.kdf.argon2")
    kdf = argon2.Argon2id(
        salt=b"\x02" * 16, length=32, iterations=3, lanes=4, memory_cost=32, ad=b"\x04" * 12, secret=b"\x03" * 8
    )
    assert kdf.derive(b"\x01" * 32).hex() == "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"


def test_rfc5869_case_1_with_the_hkdf_the_two_factor_kek_uses() -> None:
    okm = HKDF(hashes.SHA256(), 42, bytes(range(13)), bytes(range(0xF0, 0xFA))).derive(b"\x0b" * 22)
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


# --- B.7 passphrase slot (test-only Argon2 parameters, through the bare primitive) --------------


def _b7(kat: dict[str, Any]) -> dict[str, Any]:
    vec: dict[str, Any] = kat["passphrase_slot_TEST_PARAMS"]
    return vec


def test_b7_kek_with_argon2_cffi(kat: dict[str, Any]) -> None:
    v = _b7(kat)
    kek = slots.derive_kek(v["passphrase"].encode(), bytes.fromhex(v["argon2_salt"]), v["m_KiB"], v["t"], v["p"])
    assert kek.hex() == v["kek"]
    direct = hash_secret_raw(v["passphrase"].encode(), b"\x77" * 16, 2, 256, 1, 32, Type.ID)
    assert direct == kek


def test_b7_kek_with_cryptography_argon2id(kat: dict[str, Any]) -> None:
    argon2 = pytest.importorskip("cryptography.hazmat.primitives.kdf.argon2")
    v = _b7(kat)
    kdf = argon2.Argon2id(salt=bytes.fromhex(v["argon2_salt"]), length=32, iterations=2, lanes=1, memory_cost=256)
    assert kdf.derive(v["passphrase"].encode()).hex() == v["kek"]


def test_b7_slot_context_and_wrapped(kat: dict[str, Any]) -> None:
    v = _b7(kat)
    slot = slots.slot_from_json(v["slot"])
    assert isinstance(slot, slots.PassSlot)
    assert (slot.id, slot.m, slot.t, slot.p, slot.salt) == (b"\x66" * 16, 256, 2, 1, b"\x77" * 16)
    assert slot.context(VAULT_ID).hex() == v["seal_context_hex"]
    kek = bytes.fromhex(v["kek"])
    assert chunked.seal(kek, slot.context(VAULT_ID), KSK.reveal(), salt=b"\x88" * 24) == slot.wrapped
    assert len(slot.wrapped) == 104
    assert slots.open_with_kek(kek, VAULT_ID, slot) == KSK
    assert slot.to_json() == v["slot"]


def test_b7_slot_is_below_the_floor_so_the_product_path_refuses_it(kat: dict[str, Any]) -> None:
    slot = slots.slot_from_json(_b7(kat)["slot"])
    assert isinstance(slot, slots.PassSlot)
    with pytest.raises(IntegrityError):
        slots.passphrase_kek(slot, VAULT_ID, Passphrase.of("correct horse battery staple").secret, None)


# --- B.8 keystore ------------------------------------------------------------------------------


def _b8_file(kat: dict[str, Any]) -> tuple[bytes, keyring.Keyring]:
    slot = slots.slot_from_json(_b7(kat)["slot"])
    ring = keyring.Keyring(
        vault_id=VAULT_ID,
        generation=1,
        vak=Secret(b"\xbb" * 32),
        current_epoch=1,
        epochs=(keyring.Epoch(1, "active", Secret(b"\x42" * 32)),),
        params=keyring.Params(),
    )
    sealed = keyring.seal_keyring(KSK, ring, salt=b"\xcc" * 24)
    return keystore.encode(KSK, VAULT_ID, 1, (slot,), sealed), ring


def test_b8_keystore_file_and_fingerprint(kat: dict[str, Any]) -> None:
    vec = kat["keystore"]
    data, ring = _b8_file(kat)
    assert len(data) == vec["len"] == 1504
    assert hashlib.sha256(data).hexdigest() == vec["sha256"]
    assert keyring.fingerprint(VAULT_ID, ring.vak).hex() == vec["fingerprint"]
    assert data.startswith(b'{"payload":"')


def test_b8_keystore_parses_and_verifies(kat: dict[str, Any]) -> None:
    data, _ = _b8_file(kat)
    ks = keystore.parse(data, "k/0000000000000001")
    assert (ks.vault_id, ks.generation, len(ks.slots)) == (VAULT_ID, 1, 1)
    mac = hmac.digest(expand(KSK.reveal(), "keystore-mac"), b"vault/v1/keystore\x00" + ks.payload, "sha256")
    assert hmac.compare_digest(mac, ks.mac)
    ring = keyring.open_keyring(KSK, VAULT_ID, 1, ks.keyring_ct)
    assert ring.vak.reveal() == b"\xbb" * 32
    assert ring.params == keyring.Params()
    u = keystore.Unlocked(VAULT_ID, 1, keyring.fingerprint(VAULT_ID, ring.vak), ks.slots[0].id, ks.slots, KSK, ring)
    assert u.local_state_key().reveal().hex() == kat["local_state_key"]
    data_enc = kat["key_schedule"]["subkeys"]["data-enc"]
    assert u.epoch_keys().data_enc.reveal().hex() == data_enc
    # payload P is canonical JSON, and the keyring is sealed as raw canonical JSON
    payload = unb64u(json.loads(data)["payload"])
    assert json.dumps(json.loads(payload), sort_keys=True, separators=(",", ":")).encode() == payload


def test_b8_keystore_is_not_unlockable_through_the_product_path(kat: dict[str, Any]) -> None:
    data, _ = _b8_file(kat)  # its slot has m = 256 KiB: below the floor, refused before hashing
    with pytest.raises(IntegrityError):
        keystore.unlock(data, "k/0000000000000001", Passphrase.of("correct horse battery staple"))


def test_ksk_schedule(kat: dict[str, Any]) -> None:
    sub = kat["ksk_schedule"]["subkeys"]
    assert expand(KSK.reveal(), "keystore-mac").hex() == sub["keystore-mac"]
    assert expand(KSK.reveal(), "keyring-enc").hex() == sub["keyring-enc"]


# --- recovery code -----------------------------------------------------------------------------


def test_recovery_code_example(kat: dict[str, Any]) -> None:
    vec = kat["keystore"]
    code = RecoveryCode(Secret(b"\x99" * 32), bytes.fromhex(vec["fingerprint"]))
    text = code.text().reveal().decode()
    assert text == vec["recovery_code_example"]
    assert len(text) == 99
    back = RecoveryCode.parse(text.upper())
    assert back.seed == code.seed and back.fingerprint == code.fingerprint
