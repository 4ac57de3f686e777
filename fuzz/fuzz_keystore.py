"""The keystore object, its slots and the sealed keyring (engine/keys/keystore.py, slots.py, keyring.py).

Input: one mode byte, then the body.

* 0: the body as a keystore file ``k/…01``: strict parse and the unauthenticated slot listing.
* 1: the body as the payload P, MAC'd under the fixed test KSK: parse, MAC and keyring opening
  run for real (``unlock_with_ksk``), so the fuzzer reaches the slot and field checks behind the MAC.
* 2: the body as keyring plaintext, sealed under the test KSK and opened with ``open_keyring``;
  every epoch's keys are then derived as a session would.
* 3: a complete keystore with one real X-Wing device slot wrapping the test KSK and the body as
  its (validly sealed) keyring, unlocked with the device key and a pin: the whole §1.3 path.
* 4: a keystore whose X-Wing slot carries the body as its wrapped key (HPKE enc ‖ ct): the
  decapsulation and AEAD must end in one uniform AuthError.
"""

from __future__ import annotations

from pathlib import Path

from sigmavault.engine.format import aead as chunked
from sigmavault.engine.format.canonical import b64u, dumps, loads
from sigmavault.engine.keys import keyring, keystore, slots, xwing
from sigmavault.engine.keys.credentials import Pin, XwingKey
from sigmavault.engine.keys.schedule import expand
from sigmavault.engine.keys.secret import Secret

from .common import KSK, VAULT_ID, allowed

NAME = keystore.keystore_name(1)
SEED = Secret(bytes(range(32)), "fuzz device seed")
PK = xwing.public_key(SEED)
SLOT_FILE = Path(__file__).resolve().parent / "device-slot.json"  # HPKE is randomised: kept, not re-made


def _slot() -> slots.Slot:
    if not SLOT_FILE.exists():
        SLOT_FILE.write_bytes(dumps(slots.new_xwing_slot(VAULT_ID, KSK, PK, "device", "fuzz device").to_json()))
    return slots.slot_from_json(loads(SLOT_FILE.read_bytes()))


SLOT = _slot()
VAK = Secret(bytes(range(7, 39)), "fuzz vak")
PIN = Pin(keyring.fingerprint(VAULT_ID, VAK), 1)
CRED = XwingKey(SEED)


def _keyring_ct(plain: bytes) -> bytes:
    key = expand(KSK.reveal(), "keyring-enc")
    return chunked.seal(key, keyring.keyring_context(VAULT_ID, 1), plain, bytes(chunked.SALT))  # fixed: stable seeds


def _file(slot_list: list[dict[str, object]], keyring_ct: bytes) -> bytes:
    payload = dumps({
        "format": keystore.FORMAT, "vault_id": b64u(VAULT_ID), "generation": 1, "slots": slot_list,
        "keyring": b64u(keyring_ct),
    })
    return _mac_file(payload)


def _mac_file(payload: bytes) -> bytes:
    mac = keystore._mac(KSK, payload)
    return b'{"payload":"' + b64u(payload).encode() + b'","mac":"' + b64u(mac).encode() + b'"}'


def _derive_all(ring: keyring.Keyring) -> None:
    u = keystore.Unlocked(VAULT_ID, 1, PIN.fingerprint, SLOT.id, (SLOT,), KSK, ring)
    allowed(u.epoch_keys)
    for e in ring.epochs:
        allowed(u.epoch_keys, e.epoch)
    u.local_state_key()


def test_one_input(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0] % 5, data[1:]
    if mode in (0, 1):
        raw = body if mode == 0 else _mac_file(body)
        parsed = allowed(keystore.parse, raw, NAME)
        allowed(keystore.list_slots, raw, NAME)
        if parsed is not None:  # what we accept we must be able to write back (key add, passwd …)
            keystore.encode(KSK, parsed.vault_id, parsed.generation, parsed.slots, parsed.keyring_ct)
        if mode == 1:
            allowed(keystore.unlock_with_ksk, raw, NAME, KSK, PIN)
    elif mode == 2:
        ring = allowed(keyring.open_keyring, KSK, VAULT_ID, 1, _keyring_ct(body))
        if ring is not None:
            _derive_all(ring)
    elif mode == 3:
        data_ = _file([SLOT.to_json()], _keyring_ct(body))
        u = allowed(keystore.unlock, data_, NAME, CRED, PIN)
        if u is not None:
            _derive_all(u.keyring)
    else:
        slot = SLOT.to_json()
        slot["wrapped"] = b64u(body[: slots.XWING_WRAPPED_LEN].ljust(slots.XWING_WRAPPED_LEN, b"\0"))
        allowed(keystore.unlock, _file([slot], b""), NAME, CRED, PIN)
        allowed(xwing.open, SEED, SLOT.context(VAULT_ID), body)
