"""The keystore object ``k/{generation:016x}``: parse, unlock, and rewrite (CRYPTO.md §1.2–§1.4).

Pure and synchronous: bytes in, bytes out; fetching and storing ``k/`` objects is the caller's
job (and Argon2 makes :func:`unlock` CPU-bound: run it in a thread). The file's byte layout and strict
parse are in :mod:`.ksfile`; ``K_ksmac = Expand(KSK, "keystore-mac")``; slots: see :mod:`.slots`;
keyring: see :mod:`.keyring`; write-only clients: see :mod:`.writers`.

The MAC is checked over the exact bytes of ``P`` (never re-serialized). Unlock follows §1.3 in
order: strict parse (the object name must equal ``P.generation``) → try the slots matching the
credential (one uniform AuthError when none opens) → MAC in constant time → open the keyring and
check vault_id, generation and params → fingerprint against the pin (mismatch: IntegrityError; no
pin: trust on first use only through a passphrase slot, else AuthError) → generation ≥ pinned
generation (else RollbackError). Malformed input of any kind ends in IntegrityError; so does a v2
keystore whose writer slots do not match the keyring's active writers (checked after the MAC).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field, replace

from ..errors import AuthError, IntegrityError, RollbackError, UsageError
from ..format.canonical import fail
from . import xwing
from .credentials import Credential, DeviceKey, Passphrase, Pin, RecoveryCode, TwoFactor, XwingKey
from .keyring import Epoch, Keyring, Params, fingerprint, open_keyring, seal_keyring
from .ksfile import FORMAT, FORMAT_V2, MAC_LABEL, MAX_SLOTS, Parsed, _mac, encode, keystore_name, parse
from .schedule import EpochKeys, expand
from .secret import Secret
from .slots import (
    DEVICE_SECRET_LEN,
    INTERACTIVE,
    PASS_TYPES,
    UNLOCK_BUDGET,
    KdfProfile,
    PassSlot,
    Slot,
    WriterSlot,
    XwingSlot,
    new_passphrase_slot,
    new_xwing_slot,
    open_with_kek,
    open_xwing,
    passphrase_kek,
    slot_cost,
    within_bounds,
)
from .writers import MAX_WRITERS, Writer, WriterCredential, check_slots, new_writer

# --- unlocking ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SlotInfo:
    """What ``key list`` shows: no secrets."""

    id: bytes
    type: str
    kind: str | None
    label: str
    prefix: str | None = None  # a writer's vault folder

    @property
    def id_hex(self) -> str:
        return self.id.hex()


def describe(slot_list: tuple[Slot, ...]) -> list[SlotInfo]:
    return [
        SlotInfo(s.id, s.type, s.kind if isinstance(s, XwingSlot) else None, s.label,
                 s.prefix if isinstance(s, WriterSlot) else None)
        for s in slot_list
    ]


@dataclass(frozen=True, slots=True)
class Unlocked:
    """An opened keystore. Key material sits in Secrets and never shows in ``repr``."""

    vault_id: bytes
    generation: int
    fingerprint: bytes
    opened_slot: bytes
    slots: tuple[Slot, ...] = field(repr=False)
    ksk: Secret = field(repr=False)
    keyring: Keyring = field(repr=False)

    @property
    def params(self) -> Params:
        return self.keyring.params

    @property
    def current_epoch(self) -> int:
        return self.keyring.current_epoch

    def epoch_keys(self, epoch: int | None = None) -> EpochKeys:
        """Subkeys of ``epoch`` (default: current). IntegrityError if unknown or destroyed."""
        number = self.keyring.current_epoch if epoch is None else epoch
        entry = self.keyring.epoch(number)
        if entry is None or entry.root_key is None:
            fail("epoch")
        return EpochKeys.derive(entry.root_key.reveal(), self.vault_id, number, self.keyring.params.prf)

    @property
    def writers(self) -> tuple[Writer, ...]:
        """The vault's write-only clients, removed ones (tombstones) included."""
        return self.keyring.writers

    def drop_public_key(self, epoch: int | None = None) -> bytes:
        """The X-Wing public key of ``epoch``'s drop key pair (default: current): writers seal to it."""
        drop_kem = self.epoch_keys(epoch).drop_kem
        assert drop_kem is not None  # an epoch's own keys always have one
        return xwing.public_key(drop_kem)

    def epoch_entry(self, epoch: int) -> Epoch | None:
        """State and ``retired_at_gen`` of an epoch (for the commit rules of §1.4)."""
        return self.keyring.epoch(epoch)

    def local_state_key(self) -> Secret:
        return Secret(expand(self.keyring.vak.reveal(), "local-state"), "local-state key")

    def local_cache_key(self) -> Secret:
        """``Expand(VAK, "local-cache")``: seals this device's cache (:mod:`.cache`)."""
        return Secret(expand(self.keyring.vak.reveal(), "local-cache"), "local-cache key")

    def list_slots(self) -> list[SlotInfo]:
        return describe(self.slots)


def _candidates(ks: Parsed, cred: Credential) -> list[Slot]:
    """The slots ``cred`` may open, in the order to try them: cheapest Argon2 first."""
    if isinstance(cred, Passphrase):
        return sorted((s for s in ks.slots if isinstance(s, PassSlot) and s.type == "argon2id"), key=slot_cost)
    if isinstance(cred, TwoFactor):
        pass_slots = [s for s in ks.slots if isinstance(s, PassSlot)]
        return sorted(pass_slots, key=lambda s: (s.type != "argon2id+device", slot_cost(s)))  # two-factor slots first
    pk = xwing.public_key(cred.seed_for(ks.vault_id))
    kinds = {RecoveryCode: ("recovery",), DeviceKey: ("device",)}.get(type(cred), ("device", "recipient"))
    return [s for s in ks.slots if isinstance(s, XwingSlot) and s.kind in kinds and hmac.compare_digest(s.pk, pk)]


def _try(slot: Slot, vault_id: bytes, cred: Credential) -> Secret:
    if isinstance(slot, PassSlot):
        if isinstance(cred, Passphrase):
            return open_with_kek(passphrase_kek(slot, vault_id, cred.secret, None), vault_id, slot)
        if isinstance(cred, TwoFactor):
            device = cred.device_secret if slot.type == "argon2id+device" else None
            return open_with_kek(passphrase_kek(slot, vault_id, cred.passphrase.secret, device), vault_id, slot)
    elif isinstance(slot, XwingSlot) and isinstance(cred, XwingKey | RecoveryCode | DeviceKey):
        return open_xwing(slot, vault_id, cred.seed_for(vault_id))
    fail("credential does not fit slot")



def open_slots(ks: Parsed, cred: Credential) -> tuple[Secret, Slot]:
    """Step 2: the KSK from the first matching slot that opens; one uniform AuthError otherwise.

    Passphrase slots are tried cheapest first, and one unlock spends at most UNLOCK_BUDGET of
    Argon2 work: a provider that adds slots at the maximum cost (64 slots × 4 GiB × 10 passes) can
    neither make an honest unlock run those first nor make a failing one hash for an hour.
    """
    candidates = _candidates(ks, cred)
    for slot in candidates:  # bounds before any hashing: a hostile slot cannot cost us 4 TiB·s
        if isinstance(slot, PassSlot) and not within_bounds(slot.m, slot.t, slot.p):
            raise IntegrityError(
                "keystore rejected: a passphrase slot has Argon2 parameters outside the allowed bounds"
            )
    spent = 0
    for slot in candidates:
        spent += slot_cost(slot)
        if spent > UNLOCK_BUDGET:
            raise IntegrityError(
                "keystore rejected: its passphrase slots cost more Argon2 work than one unlock spends "
                "(no honest vault needs this; the storage may have added slots) - or the passphrase is wrong"
            )
        try:
            return _try(slot, ks.vault_id, cred), slot
        except IntegrityError:
            continue
    raise AuthError()


def unlock(data: bytes, name: str, cred: Credential, pin: Pin | None = None) -> Unlocked:
    """Open the keystore stored as ``name`` with one credential, checking the pin (§1.3).

    Raises IntegrityError (malformed, bad MAC, bad keyring, fingerprint mismatch), AuthError (no
    slot opened; or no pin and not a passphrase slot), RollbackError (older than the pin).
    """
    ks = parse(data, name)
    ksk, opened = open_slots(ks, cred)
    if not hmac.compare_digest(_mac(ksk, ks.payload), ks.mac):
        fail("keystore mac")
    ring = open_keyring(ksk, ks.vault_id, ks.generation, ks.keyring_ct)
    check_slots(ks.version, ks.slots, ring.writers)
    fp = fingerprint(ks.vault_id, ring.vak)
    pins = [pin.fingerprint] if pin is not None else []
    if isinstance(cred, RecoveryCode):
        pins.append(cred.fingerprint)
    if pins:
        if not all(hmac.compare_digest(p, fp) for p in pins):
            raise IntegrityError(
                "this keystore does not belong to the pinned vault (fingerprint mismatch): "
                "it may have been forged by the storage provider (if the vault was replaced on purpose, "
                "`sigmavault forget-device` drops this device's pin)"
            )
    elif opened.type not in PASS_TYPES:
        raise AuthError(
            "the vault fingerprint is not pinned: a public-key slot alone cannot authenticate the keystore; "
            "pin the fingerprint shown by an enrolled device (or use the recovery code)"
        )
    if pin is not None and ks.generation < pin.generation:
        raise RollbackError()
    return Unlocked(ks.vault_id, ks.generation, fp, opened.id, ks.slots, ksk, ring)


def unlock_with_ksk(data: bytes, name: str, ksk: Secret, pin: Pin, opened_slot: bytes = b"") -> Unlocked:
    """Open the keystore with a KSK kept by the unlock agent instead of a credential (steps 1, 3–6).

    A pin is required: a bare key never establishes trust. ``opened_slot`` is the slot the agent's key
    was first unwrapped from (kept only if the keystore still has it). Raises AuthError when the key
    does not fit this keystore (its MAC fails: a rotated KSK, or tampering — the caller falls back to a
    credential, whose unlock tells them apart), IntegrityError (bad keyring, fingerprint mismatch),
    RollbackError (older than the pin).
    """
    ks = parse(data, name)
    if not hmac.compare_digest(_mac(ksk, ks.payload), ks.mac):
        raise AuthError("the unlock agent's key does not open this keystore")
    ring = open_keyring(ksk, ks.vault_id, ks.generation, ks.keyring_ct)
    check_slots(ks.version, ks.slots, ring.writers)
    fp = fingerprint(ks.vault_id, ring.vak)
    if not hmac.compare_digest(pin.fingerprint, fp):
        raise IntegrityError(
            "this keystore does not belong to the pinned vault (fingerprint mismatch): "
            "it may have been forged by the storage provider (if the vault was replaced on purpose, "
            "`sigmavault forget-device` drops this device's pin)"
        )
    if ks.generation < pin.generation:
        raise RollbackError()
    slot = opened_slot if any(hmac.compare_digest(s.id, opened_slot) for s in ks.slots) else b""
    return Unlocked(ks.vault_id, ks.generation, fp, slot, ks.slots, ksk, ring)


def list_slots(data: bytes, name: str) -> list[SlotInfo]:
    """Slot listing from the unauthenticated file (labels are as served: informational only)."""
    return describe(parse(data, name).slots)


# --- operations: each returns the keystore at generation + 1 ------------------------------------


@dataclass(frozen=True, slots=True)
class Written:
    """A new keystore to store create-only under ``name``, and the unlocked state it describes."""

    name: str
    data: bytes = field(repr=False)
    vault: Unlocked


def _write(u: Unlocked, slot_list: tuple[Slot, ...], writers: tuple[Writer, ...] | None = None) -> Written:
    generation = u.generation + 1
    ring = replace(u.keyring, generation=generation, writers=u.keyring.writers if writers is None else writers)
    data = encode(u.ksk, u.vault_id, generation, slot_list, seal_keyring(u.ksk, ring), 2 if ring.writers else 1)
    vault = replace(u, generation=generation, slots=slot_list, keyring=ring)
    return Written(keystore_name(generation), data, vault)


def create(
    passphrase: Passphrase,
    *,
    profile: KdfProfile = INTERACTIVE,
    params: Params | None = None,
    label: str = "passphrase",
    recovery_label: str = "recovery code",
) -> tuple[Written, RecoveryCode]:
    """A new vault: random vault_id, KSK, VAK and RK_1; a passphrase slot and a recovery slot; generation 1."""
    params = params or Params()
    if not params.valid():
        raise UsageError("unsupported vault parameters")
    vault_id = secrets.token_bytes(32)
    ksk = Secret(secrets.token_bytes(32), "ksk")
    ring = Keyring(
        vault_id=vault_id,
        generation=0,  # _write bumps it to 1
        vak=Secret(secrets.token_bytes(32), "vak"),
        current_epoch=1,
        epochs=(Epoch(1, "active", Secret(secrets.token_bytes(32), "root key")),),
        params=params,
    )
    pass_slot = new_passphrase_slot(vault_id, ksk, passphrase.secret, profile, label)
    seed = xwing.generate()
    recovery = new_xwing_slot(vault_id, ksk, xwing.public_key(seed), "recovery", recovery_label)
    fp = fingerprint(vault_id, ring.vak)
    blank = Unlocked(vault_id, 0, fp, pass_slot.id, (), ksk, ring)
    return _write(blank, (pass_slot, recovery)), RecoveryCode(seed, fp)


def _find(u: Unlocked, slot_id: bytes) -> Slot:
    for s in u.slots:
        if s.id == slot_id:
            return s
    raise UsageError("no key slot with this id")


def change_passphrase(
    u: Unlocked,
    new: Passphrase,
    *,
    slot_id: bytes | None = None,
    device_secret: Secret | None = None,
    profile: KdfProfile | None = None,
) -> Written:
    """passwd: re-wrap a passphrase slot (default: the one unlocked with) under a new passphrase and salt.

    Keeps the slot's id, label and type; a two-factor slot needs ``device_secret``. Raises UsageError.
    """
    old = _find(u, slot_id or u.opened_slot)
    if not isinstance(old, PassSlot):
        raise UsageError("this key slot is not a passphrase slot")
    two_factor = old.type == "argon2id+device"
    if two_factor and device_secret is None:
        raise UsageError("this is a two-factor slot: the device secret is needed to change its passphrase")
    cost = profile or KdfProfile("kept", old.t, old.m, old.p)
    fresh = new_passphrase_slot(
        u.vault_id, u.ksk, new.secret, cost, old.label, device_secret if two_factor else None, old.id
    )
    return _write(u, tuple(fresh if s.id == old.id else s for s in u.slots))


def add_passphrase(u: Unlocked, passphrase: Passphrase, label: str, profile: KdfProfile = INTERACTIVE) -> Written:
    slot = new_passphrase_slot(u.vault_id, u.ksk, passphrase.secret, profile, label)
    return _write(u, (*u.slots, slot))


def add_two_factor(
    u: Unlocked,
    passphrase: Passphrase,
    label: str,
    device_secret: Secret | None = None,
    profile: KdfProfile = INTERACTIVE,
) -> tuple[Written, Secret]:
    """Add an ``argon2id+device`` slot; returns the device secret (generated unless given) to keep locally."""
    device = device_secret or Secret(secrets.token_bytes(DEVICE_SECRET_LEN), "device secret")
    if len(device) != DEVICE_SECRET_LEN:
        raise UsageError("a device secret is 32 bytes")
    slot = new_passphrase_slot(u.vault_id, u.ksk, passphrase.secret, profile, label, device)
    return _write(u, (*u.slots, slot)), device


def add_device(u: Unlocked, pk: bytes, label: str) -> Written:
    """Enroll a device by its 1216-byte X-Wing public key (the seed never leaves the device)."""
    return _write(u, (*u.slots, new_xwing_slot(u.vault_id, u.ksk, pk, "device", label)))


def add_recipient(u: Unlocked, recipient: str, label: str) -> Written:
    """Give another person access through their ``age1pq1…`` public key."""
    return _write(
        u, (*u.slots, new_xwing_slot(u.vault_id, u.ksk, xwing.parse_recipient(recipient), "recipient", label))
    )


def add_writer(u: Unlocked, label: str, prefix: str) -> tuple[Written, WriterCredential]:
    """Add a write-only client that may write under ``prefix``: a writer slot, its keyring entry, and
    the credential to hand to it (for the current epoch). UsageError for a bad label or prefix, a
    dispersed vault, or a full keyring."""
    if u.params.dispersal is not None:
        raise UsageError("write-only clients are not supported on dispersed vaults yet")
    if len(u.keyring.writers) >= MAX_WRITERS or len(u.slots) >= MAX_SLOTS:
        raise UsageError(f"a vault holds at most {MAX_WRITERS} writers (removed ones too) and {MAX_SLOTS} key slots")
    writer, signing = new_writer(label, prefix)
    written = _write(u, (*u.slots, writer.slot()), (*u.keyring.writers, writer))
    cred = WriterCredential(
        vault_id=u.vault_id,
        fingerprint=u.fingerprint,
        writer_id=writer.id,
        label=writer.label,
        prefix=writer.prefix,
        epoch=u.current_epoch,
        drop_pk=u.drop_public_key(),
        signing=signing,
        key=writer.key,
        params=u.params,
    )
    return written, cred


def remove_slot(u: Unlocked, slot_id: bytes) -> Written:
    """Drop a slot. Never the slot this session opened (so the caller keeps a way in), never the last
    one that unlocks. A writer slot's keyring entry stays as a tombstone (state ``removed``): the
    writer is revoked, its earlier drops stay verifiable.

    This does not rotate the KSK: a removed credential that was copied earlier still opens old
    keystore copies. Revocation (new KSK and epoch) is a separate operation.
    """
    victim = _find(u, slot_id)
    kept = tuple(s for s in u.slots if s.id != slot_id)
    if isinstance(victim, WriterSlot):
        writers = tuple(replace(w, state="removed") if w.id == victim.id else w for w in u.keyring.writers)
        return _write(u, kept, writers)
    if hmac.compare_digest(victim.id, u.opened_slot):
        raise UsageError("cannot remove the key slot used to unlock; unlock with another credential first")
    if not any(not isinstance(s, WriterSlot) for s in kept):
        raise UsageError("cannot remove the last key slot")
    return _write(u, kept)


__all__ = [
    "FORMAT",
    "FORMAT_V2",
    "MAC_LABEL",
    "MAX_SLOTS",
    "Credential",
    "Parsed",
    "Passphrase",
    "Pin",
    "RecoveryCode",
    "SlotInfo",
    "TwoFactor",
    "Unlocked",
    "WriterCredential",
    "Written",
    "XwingKey",
    "add_device",
    "add_passphrase",
    "add_recipient",
    "add_two_factor",
    "add_writer",
    "change_passphrase",
    "create",
    "describe",
    "encode",
    "keystore_name",
    "list_slots",
    "open_slots",
    "parse",
    "remove_slot",
    "unlock",
]
