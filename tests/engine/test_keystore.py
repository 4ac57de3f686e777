"""Keystore behaviour: create, unlock with each credential, operations at generation + 1 (CRYPTO.md §1)."""

from __future__ import annotations

import time
import unicodedata
from dataclasses import dataclass

import pytest

from sigmavault.engine.errors import AuthError, IntegrityError, UsageError
from sigmavault.engine.keys import keystore, slots, xwing
from sigmavault.engine.keys.credentials import Passphrase, Pin, RecoveryCode, TwoFactor, XwingKey
from sigmavault.engine.keys.keyring import Params
from sigmavault.engine.keys.schedule import EpochKeys
from sigmavault.engine.keys.secret import Secret
from sigmavault.engine.keys.slots import MINIMUM, KdfProfile, PassSlot, XwingSlot

PW = Passphrase.of("correct horse battery staple")


@dataclass(frozen=True)
class Made:
    written: keystore.Written
    code: RecoveryCode

    @property
    def pin(self) -> Pin:
        return Pin(self.written.vault.fingerprint, self.written.vault.generation)


@pytest.fixture(scope="module")
def made() -> Made:
    written, code = keystore.create(PW, profile=MINIMUM)
    return Made(written, code)


def unlock(w: keystore.Written, cred: keystore.Credential, pin: Pin | None = None) -> keystore.Unlocked:
    return keystore.unlock(w.data, w.name, cred, pin)


# --- create and unlock -------------------------------------------------------------------------


def test_create_writes_generation_one_with_passphrase_and_recovery_slots(made: Made) -> None:
    w = made.written
    assert w.name == "k/0000000000000001"
    info = keystore.list_slots(w.data, w.name)
    assert [(s.type, s.kind) for s in info] == [("argon2id", None), ("xwing", "recovery")]
    assert [s.label for s in info] == ["passphrase", "recovery code"]
    assert info == w.vault.list_slots()
    slot = w.vault.slots[0]
    assert isinstance(slot, PassSlot) and (slot.t, slot.m, slot.p) == (3, 65536, 4)


def test_unlock_with_passphrase_tofu(made: Made) -> None:
    u = unlock(made.written, PW)
    v = made.written.vault
    assert (u.vault_id, u.generation, u.fingerprint, u.current_epoch) == (v.vault_id, 1, v.fingerprint, 1)
    assert u.params == Params()
    assert u.opened_slot == v.slots[0].id
    keys = u.epoch_keys()
    assert isinstance(keys, EpochKeys) and keys.epoch == 1
    assert keys.data_enc == v.epoch_keys(1).data_enc
    assert len(u.local_state_key()) == 32 and u.local_state_key() == v.local_state_key()
    with pytest.raises(IntegrityError):
        u.epoch_keys(2)


def test_unlock_with_matching_pin(made: Made) -> None:
    assert unlock(made.written, PW, made.pin).generation == 1


def test_wrong_passphrase_is_auth_error(made: Made) -> None:
    with pytest.raises(AuthError):
        unlock(made.written, Passphrase.of("correct horse battery stapler"))


def test_recovery_code_unlocks_and_pins(made: Made) -> None:
    code = RecoveryCode.parse(made.code.text().reveal().decode())
    u = unlock(made.written, code)  # no local pin: the code carries the fingerprint
    assert u.fingerprint == made.written.vault.fingerprint
    assert isinstance(next(s for s in u.slots if s.id == u.opened_slot), XwingSlot)


def test_recovery_code_with_wrong_fingerprint_is_rejected(made: Made) -> None:
    bad = RecoveryCode(made.code.seed, bytes(16))
    with pytest.raises(IntegrityError):
        unlock(made.written, bad)


def test_foreign_recovery_code_is_auth_error(made: Made) -> None:
    stranger = RecoveryCode(xwing.generate(), made.written.vault.fingerprint)
    with pytest.raises(AuthError):
        unlock(made.written, stranger)


def test_nfc_normalization(made: Made) -> None:
    written, _ = keystore.create(Passphrase.of("caf\u00e9"), profile=MINIMUM)
    decomposed = unicodedata.normalize("NFD", "caf\u00e9")
    assert decomposed != "caf\u00e9"
    assert unlock(written, Passphrase.of(decomposed)).generation == 1


def test_passphrase_from_file_loses_one_newline_only() -> None:
    assert slots.passphrase_from_file(b"pw\n").reveal() == b"pw"
    assert slots.passphrase_from_file(b"pw\r\n").reveal() == b"pw"
    assert slots.passphrase_from_file(b"pw\n\n").reveal() == b"pw\n"
    assert slots.passphrase_from_file(b"pw \t").reveal() == b"pw \t"
    assert slots.passphrase_from_file("e\u0301\n".encode()).reveal() == "\u00e9".encode()
    with pytest.raises(UsageError):
        slots.passphrase_from_file(b"\xff\n")


def test_repr_redacts_key_material(made: Made) -> None:
    u = made.written.vault
    text = repr(u) + repr(made.written) + repr(u.keyring) + repr(made.code) + repr(PW)
    for secret in (u.ksk, u.keyring.vak, u.local_state_key(), made.code.seed, PW.secret):
        assert secret.reveal().hex() not in text
    assert made.code.text().reveal().decode() not in text


# --- operations --------------------------------------------------------------------------------


def test_passwd_then_only_the_new_passphrase_opens(made: Made) -> None:
    u = unlock(made.written, PW)
    new = Passphrase.of("a new and better passphrase")
    w2 = keystore.change_passphrase(u, new)
    assert w2.name == "k/0000000000000002"
    old_slot, new_slot = u.slots[0], w2.vault.slots[0]
    assert isinstance(old_slot, PassSlot) and isinstance(new_slot, PassSlot)
    assert new_slot.id == old_slot.id and new_slot.label == old_slot.label
    assert new_slot.salt != old_slot.salt and new_slot.wrapped != old_slot.wrapped
    assert w2.vault.slots[1] == u.slots[1]  # the other slots are untouched
    with pytest.raises(AuthError):
        unlock(w2, PW)
    u2 = unlock(w2, new, made.pin)
    assert u2.generation == 2 and u2.fingerprint == u.fingerprint


def test_rewrap_with_same_passphrase_uses_fresh_salt(made: Made) -> None:
    w2 = keystore.change_passphrase(made.written.vault, PW)
    a, b = made.written.vault.slots[0], w2.vault.slots[0]
    assert isinstance(a, PassSlot) and isinstance(b, PassSlot)
    assert a.salt != b.salt and a.wrapped != b.wrapped


def test_add_passphrase_slot(made: Made) -> None:
    second = Passphrase.of("second person")
    w2 = keystore.add_passphrase(made.written.vault, second, "alice", MINIMUM)
    u = unlock(w2, second, made.pin)
    assert u.opened_slot == w2.vault.slots[-1].id and w2.vault.slots[-1].label == "alice"
    assert unlock(w2, PW, made.pin).opened_slot == w2.vault.slots[0].id


def test_two_factor_slot_needs_both_factors() -> None:
    first, _ = keystore.create(Passphrase.of("plain"), profile=MINIMUM)
    pw2 = Passphrase.of("two factor passphrase")
    w2, device = keystore.add_two_factor(first.vault, pw2, "laptop 2fa", profile=MINIMUM)
    slot = w2.vault.slots[-1]
    assert isinstance(slot, PassSlot) and slot.type == "argon2id+device" and len(device) == 32
    pin = Pin(first.vault.fingerprint, 2)
    u = unlock(w2, TwoFactor(pw2, device), pin)
    assert u.opened_slot == slot.id
    with pytest.raises(AuthError):
        unlock(w2, pw2, pin)  # the passphrase alone
    with pytest.raises(AuthError):
        unlock(w2, TwoFactor(Passphrase.of("wrong"), device), pin)
    with pytest.raises(AuthError):
        unlock(w2, TwoFactor(pw2, Secret(b"\x01" * 32)), pin)
    # passwd on the two-factor slot keeps the device factor
    pw3 = Passphrase.of("third")
    with pytest.raises(UsageError):
        keystore.change_passphrase(u, pw3)
    w3 = keystore.change_passphrase(u, pw3, device_secret=device)
    assert unlock(w3, TwoFactor(pw3, device), pin).opened_slot == slot.id
    with pytest.raises(AuthError):
        unlock(w3, pw3, pin)


def test_device_slot_opens_only_with_a_pin(made: Made) -> None:
    seed = xwing.generate()
    w2 = keystore.add_device(made.written.vault, xwing.public_key(seed), "phone")
    assert w2.vault.list_slots()[-1].kind == "device"
    u = unlock(w2, XwingKey(seed), made.pin)
    assert u.generation == 2 and u.opened_slot == w2.vault.slots[-1].id
    with pytest.raises(AuthError):
        unlock(w2, XwingKey(seed))  # trust on first use never goes through a public-key slot
    with pytest.raises(AuthError):
        unlock(w2, XwingKey(xwing.generate()), made.pin)


def test_recipient_slot_from_age_string(made: Made) -> None:
    seed = xwing.generate()
    w2 = keystore.add_recipient(made.written.vault, xwing.recipient(xwing.public_key(seed)), "bob")
    assert w2.vault.list_slots()[-1].kind == "recipient"
    identity = xwing.parse_identity(xwing.identity(seed))
    assert unlock(w2, XwingKey(identity), made.pin).opened_slot == w2.vault.slots[-1].id
    with pytest.raises(IntegrityError):
        keystore.add_recipient(made.written.vault, "age1pq1notarecipient", "x")


def test_remove_slot(made: Made) -> None:
    u = made.written.vault
    recovery_id = u.slots[1].id
    with pytest.raises(UsageError):
        keystore.remove_slot(u, u.opened_slot)  # the slot this session came through
    with pytest.raises(UsageError):
        keystore.remove_slot(u, b"\x00" * 16)
    w2 = keystore.remove_slot(u, recovery_id)
    assert [s.id for s in w2.vault.slots] == [u.opened_slot]
    with pytest.raises(AuthError):
        unlock(w2, made.code)
    with pytest.raises(UsageError):
        keystore.remove_slot(w2.vault, u.opened_slot)  # the last one


def test_generations_chain(made: Made) -> None:
    w = made.written
    for i in range(2, 5):
        w = keystore.add_device(w.vault, xwing.public_key(xwing.generate()), f"d{i}")
        assert w.name == f"k/{i:016x}" and w.vault.generation == i
        assert keystore.parse(w.data, w.name).generation == i
    assert len(w.vault.slots) == 5


def test_creation_refuses_weak_or_invalid_settings() -> None:
    with pytest.raises(UsageError):
        keystore.create(PW, profile=KdfProfile("weak", 3, 32 * 1024, 4))
    with pytest.raises(UsageError):
        keystore.create(PW, profile=KdfProfile("absurd", 11, 64 * 1024, 4))
    with pytest.raises(UsageError):
        keystore.create(Passphrase.of(""), profile=MINIMUM)
    with pytest.raises(UsageError):
        keystore.create(PW, profile=MINIMUM, params=Params(chunk_size=3 << 20))
    with pytest.raises(UsageError):
        keystore.add_passphrase(keystore.create(PW, profile=MINIMUM)[0].vault, PW, "x" * 300, MINIMUM)


def test_create_with_other_valid_params() -> None:
    w, _ = keystore.create(PW, profile=MINIMUM, params=Params(prf="hmac-sha256", chunk_size=1 << 20))
    u = unlock(w, PW)
    assert u.params.prf == "hmac-sha256" and u.params.chunk_size == 1 << 20
    assert u.epoch_keys().prf_name == "hmac-sha256"


def test_fresh_randomness_per_vault() -> None:
    a, ca = keystore.create(PW, profile=MINIMUM)
    b, cb = keystore.create(PW, profile=MINIMUM)
    assert a.vault.vault_id != b.vault.vault_id and a.vault.fingerprint != b.vault.fingerprint
    assert a.vault.ksk != b.vault.ksk and ca.seed != cb.seed


@pytest.mark.slow
def test_unlock_time_default_profile() -> None:
    written, _ = keystore.create(PW)  # interactive: t=3, m=256 MiB, p=4
    t0 = time.perf_counter()
    unlock(written, PW)
    elapsed = time.perf_counter() - t0
    print(f"unlock with the interactive profile: {elapsed:.2f} s")
    assert elapsed < 10
