"""Key rotation: a new KSK and key epoch (``rekey``, R1), and the old epoch's retirement (R4).

Pure and synchronous (a re-wrapped passphrase slot costs one Argon2id run: call it in a thread).
The protocol around these operations (the rekey record, the finisher) is ``docs/format.md``,
"Rekey beside writers", built in :mod:`...rekeying` and modelled in ``models/rekey.py``.

Why a new KSK: every slot wraps the same KSK, and the KSK seals the keyring. A party whose slot was
removed (or who copied the KSK from an old keystore or the unlock agent) could otherwise open every
later keyring and read the new epoch's root key. So :func:`rekey` draws a new KSK and re-wraps only
what it can without anyone else's secret:

- ``xwing`` slots (devices, recovery code, recipients): from their public keys, same id and label;
- writer slots: wrap nothing, kept as they are (their keys live in the keyring);
- the passphrase slot the caller unlocked with: re-wrapped under the caller's credential (a fresh
  salt, same id, label, type and cost; a two-factor slot needs this device's secret);
- every other passphrase slot: its passphrase is not known here, so it cannot be re-wrapped. It is
  dropped only when the caller says so (``drop_passphrase_slots``); otherwise UsageError names them.

The revoked slot (``remove``) goes in the same step. The old epoch stays ``active`` until
:func:`retire` (R4) sets its ``retired_at_gen``: the chain decides where it ends.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, replace

from ..errors import UsageError
from . import xwing
from .credentials import Credential, Passphrase, TwoFactor
from .keyring import Epoch
from .keystore import SlotInfo, Unlocked, Written, _find, _write, describe
from .secret import Secret
from .slots import KdfProfile, PassSlot, Slot, WriterSlot, XwingSlot, new_passphrase_slot, xwing_context


@dataclass(frozen=True, slots=True)
class Rotated:
    """The keystore R1 writes, and the slots it left out (``dropped``; the revoked one is ``removed``)."""

    written: Written
    removed: SlotInfo | None
    dropped: tuple[SlotInfo, ...]


def _rewrap_xwing(vault_id: bytes, ksk: Secret, s: XwingSlot) -> XwingSlot:
    wrapped = xwing.seal(s.pk, xwing_context(vault_id, s.id, s.kind, s.pk), ksk.reveal())
    return replace(s, wrapped=wrapped)


def _rewrap_own(u: Unlocked, ksk: Secret, s: PassSlot, cred: Credential | None, device: Secret | None) -> PassSlot:
    if isinstance(cred, TwoFactor):
        phrase, device = cred.passphrase.secret, cred.device_secret
    elif isinstance(cred, Passphrase):
        phrase = cred.secret
    else:
        raise UsageError("rekey needs the passphrase of the slot that unlocked the vault (not the agent's key)")
    if s.type == "argon2id+device" and device is None:
        raise UsageError("this is a two-factor slot: rekey needs this device's secret too")
    cost = KdfProfile("kept", s.t, s.m, s.p)
    return new_passphrase_slot(u.vault_id, ksk, phrase, cost, s.label,
                               device if s.type == "argon2id+device" else None, s.id)


def pending_epochs(u: Unlocked) -> tuple[int, ...]:
    """Epochs older than the current one that are still ``active``: a rekey whose R4 has not run."""
    return tuple(e.epoch for e in u.keyring.epochs if e.epoch < u.current_epoch and e.state == "active")


def rekey(u: Unlocked, cred: Credential | None, *, device_secret: Secret | None = None,
          remove: bytes | None = None, drop_passphrase_slots: bool = False) -> Rotated:
    """R1: keystore generation + 1 under a new KSK, with epoch e+1 (a new random root key) current
    and e still active (see the module doc for which slots survive). UsageError: an unfinished
    rekey (finish it first), the revoked slot is the one unlocked with, nothing would unlock any
    more, passphrase slots would be dropped without ``drop_passphrase_slots``."""
    if pending_epochs(u):
        raise UsageError("an earlier rekey is not finished yet: run `sigmavault rekey --finish` first")
    victim = _find(u, remove) if remove is not None else None
    if victim is not None and hmac.compare_digest(victim.id, u.opened_slot):
        raise UsageError("cannot revoke the key slot used to unlock; unlock with another credential first")
    ksk = Secret(secrets.token_bytes(32), "ksk")
    kept: list[Slot] = []
    dropped: list[Slot] = []
    for s in u.slots:
        if victim is not None and s.id == victim.id:
            continue
        if isinstance(s, XwingSlot):
            kept.append(_rewrap_xwing(u.vault_id, ksk, s))
        elif isinstance(s, WriterSlot):
            kept.append(s)
        elif hmac.compare_digest(s.id, u.opened_slot):
            kept.append(_rewrap_own(u, ksk, s, cred, device_secret))
        else:
            dropped.append(s)
    if dropped and not drop_passphrase_slots:
        names = ", ".join(f"{s.id.hex()} ({s.label})" for s in dropped)
        raise UsageError(f"rekey cannot re-wrap passphrase slots whose passphrase it does not know: {names}. "
                         "Give --drop-passphrase-slots to drop them (add them again afterwards, or use "
                         "recipient slots, which survive a rekey), or remove them first; nothing was changed")
    if not any(not isinstance(s, WriterSlot) for s in kept):
        raise UsageError("after the rekey no key slot would open the vault; nothing was changed")
    ring = u.keyring
    writers = ring.writers
    if isinstance(victim, WriterSlot):
        writers = tuple(replace(w, state="removed") if w.id == victim.id else w for w in writers)
    new = ring.current_epoch + 1
    epochs = (*ring.epochs, Epoch(new, "active", Secret(secrets.token_bytes(32), "root key")))
    ring = replace(ring, epochs=epochs, current_epoch=new)
    written = _write(replace(u, ksk=ksk, keyring=ring), tuple(kept), writers)
    removed = describe((victim,))[0] if victim is not None else None
    return Rotated(written, removed, tuple(describe(tuple(dropped))))


def retire(u: Unlocked, first: dict[int, int]) -> Written | None:
    """R4: keystore generation + 1 with each older active epoch e retired at ``first[e] - 1`` (the
    generation before the first commit of a newer epoch); None when there is nothing to retire."""
    ring = u.keyring
    due = {e.epoch for e in ring.epochs if e.epoch in first and e.state == "active" and e.epoch < ring.current_epoch}
    if not due:
        return None
    epochs = tuple(Epoch(e.epoch, "retired", e.root_key, first[e.epoch] - 1) if e.epoch in due else e
                   for e in ring.epochs)
    return _write(replace(u, keyring=replace(ring, epochs=epochs)), u.slots)
