"""The keystores of a rekey (``keys/rotate.py``): R1 draws a new KSK and epoch, R4 retires the old one.

The point of the new KSK: a removed slot's holder (who knew the old KSK) cannot open the new
keyring, so it never sees the new epoch's root key; every slot that can be wrapped again without
someone else's secret still opens, with the same id.
"""

from __future__ import annotations

import pytest

from sigmavault.engine.errors import AuthError, UsageError
from sigmavault.engine.keys import keystore, rotate
from sigmavault.engine.keys.credentials import Passphrase, Pin, TwoFactor
from sigmavault.engine.keys.slots import MINIMUM

PW = Passphrase.of("correct horse battery staple")
BOB = Passphrase.of("bob's passphrase")


def fresh() -> tuple[keystore.Unlocked, keystore.RecoveryCode]:
    written, code = keystore.create(PW, profile=MINIMUM)
    return written.vault, code


def test_rekey_draws_a_new_ksk_the_old_one_cannot_open() -> None:
    u, code = fresh()
    bob = keystore.add_passphrase(u, BOB, "bob", MINIMUM).vault
    bob_slot = bob.slots[-1].id
    done = rotate.rekey(bob, PW, remove=bob_slot)
    w = done.written
    assert done.removed is not None and done.removed.label == "bob" and done.dropped == ()
    pin = Pin(u.fingerprint, w.vault.generation)
    with pytest.raises(AuthError):  # the KSK every old slot held, and the removed holder knows
        keystore.unlock_with_ksk(w.data, w.name, u.ksk, pin)
    with pytest.raises(AuthError):
        keystore.unlock(w.data, w.name, BOB, pin)
    again = keystore.unlock(w.data, w.name, PW, pin)
    assert again.opened_slot == u.slots[0].id and again.current_epoch == 2
    assert [(e.epoch, e.state) for e in again.keyring.epochs] == [(1, "active"), (2, "active")]
    assert again.epoch_keys(1).data_enc.reveal() == u.epoch_keys(1).data_enc.reveal()  # the old epoch still reads
    assert keystore.unlock(w.data, w.name, code, pin).opened_slot == u.slots[1].id  # re-wrapped from its pk
    assert rotate.pending_epochs(again) == (1,)
    retired = rotate.retire(again, {1: 5})
    assert retired is not None
    final = keystore.unlock(retired.data, retired.name, PW, pin)
    states = [(e.epoch, e.state, e.retired_at_gen) for e in final.keyring.epochs]
    assert states == [(1, "retired", 4), (2, "active", None)]
    assert rotate.pending_epochs(final) == () and rotate.retire(final, {1: 5}) is None


def test_rekey_refusals_change_nothing() -> None:
    u, _ = fresh()
    with pytest.raises(UsageError, match="slot used to unlock"):
        rotate.rekey(u, PW, remove=u.opened_slot)
    with pytest.raises(UsageError, match="not the agent's key"):
        rotate.rekey(u, None)
    alice = keystore.add_passphrase(u, BOB, "alice", MINIMUM).vault
    with pytest.raises(UsageError, match="alice"):
        rotate.rekey(alice, PW)
    dropped = rotate.rekey(alice, PW, drop_passphrase_slots=True)
    assert [s.label for s in dropped.dropped] == ["alice"]
    with pytest.raises(UsageError, match="not finished"):
        rotate.rekey(dropped.written.vault, PW)


def test_a_two_factor_slot_is_wrapped_again_with_both_factors() -> None:
    first, _ = keystore.create(Passphrase.of("plain"), profile=MINIMUM)
    pw2 = Passphrase.of("two factor passphrase")
    w2, device = keystore.add_two_factor(first.vault, pw2, "laptop 2fa", profile=MINIMUM)
    pin = Pin(first.vault.fingerprint, 2)
    u = keystore.unlock(w2.data, w2.name, TwoFactor(pw2, device), pin)
    done = rotate.rekey(u, TwoFactor(pw2, device), drop_passphrase_slots=True)  # "plain" is not ours
    w = done.written
    assert [s.label for s in done.dropped] == ["passphrase"]
    assert keystore.unlock(w.data, w.name, TwoFactor(pw2, device), pin).opened_slot == u.opened_slot
    with pytest.raises(AuthError):
        keystore.unlock(w.data, w.name, pw2, pin)


def test_revoking_a_writer_with_a_rekey_keeps_its_tombstone() -> None:
    u, _ = fresh()
    written, cred = keystore.add_writer(u, "web-1", "/web-1")
    done = rotate.rekey(written.vault, PW, remove=cred.writer_id)
    assert done.removed is not None and done.removed.type == "writer"
    ring = done.written.vault.keyring
    assert [(w.label, w.state) for w in ring.writers] == [("web-1", "removed")]
    assert all(s.type != "writer" for s in done.written.vault.slots)
    again = keystore.unlock(done.written.data, done.written.name, PW, Pin(u.fingerprint, 0))
    assert [w.state for w in again.writers] == ["removed"]
