"""The ``xwing`` device slot (CRYPTO.md §1.1): a per-vault identity derived from this device's key."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

import sigmavault
from sigmavault import Places
from sigmavault.engine.errors import AuthError
from sigmavault.engine.keys import keystore, xwing
from sigmavault.engine.keys.credentials import DeviceKey, Passphrase, Pin, XwingKey
from sigmavault.engine.keys.secret import Secret
from sigmavault.engine.keys.slots import MINIMUM

MASTER = bytes(range(32))
VAULT_ID = b"\xaa" * 32
SEED_HEX = "60e68e3bbbb3fe3fd9e1f55c4c5665c851db1848125546847bd675857e5e3bee"  # known answer, computed below too


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """RFC 5869 by hand, so the vector does not only check the code against itself."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def test_the_device_seed_is_hkdf_of_the_device_key_and_the_vault_id() -> None:
    seed = DeviceKey(Secret(MASTER, "device key")).seed_for(VAULT_ID).reveal()
    assert seed.hex() == SEED_HEX
    assert seed == hkdf_sha256(MASTER, b"vault/v1/device-seed\0" + VAULT_ID, b"vault/v1/xwing-device")


def test_two_vaults_see_two_unlinkable_public_keys() -> None:
    key = DeviceKey(Secret(MASTER, "device key"))
    assert key.public_key(VAULT_ID) != key.public_key(b"\xbb" * 32)
    assert "00010203" not in repr(key)  # the key never shows in a repr


@pytest.fixture(scope="module")
def enrolled() -> tuple[keystore.Written, DeviceKey, bytes]:
    made, _ = keystore.create(Passphrase.of("pw"), profile=MINIMUM)
    device = DeviceKey(Secret(MASTER, "device key"))
    written = keystore.add_device(made.vault, device.public_key(made.vault.vault_id), "laptop")
    return written, device, made.vault.fingerprint


def test_the_device_key_opens_its_slot_once_the_vault_is_pinned(enrolled: tuple[keystore.Written, DeviceKey,
                                                                                 bytes]) -> None:
    written, device, fp = enrolled
    u = keystore.unlock(written.data, written.name, device, Pin(fp, 0))
    slot = next(s for s in u.slots if s.id == u.opened_slot)
    assert slot.kind == "device" and slot.label == "laptop"
    assert hmac.compare_digest(u.ksk.reveal(), written.vault.ksk.reveal())


def test_no_first_use_through_the_device_slot(enrolled: tuple[keystore.Written, DeviceKey, bytes]) -> None:
    written, device, _ = enrolled
    with pytest.raises(AuthError, match="pin"):
        keystore.unlock(written.data, written.name, device, None)


def test_another_device_key_does_not_open(enrolled: tuple[keystore.Written, DeviceKey, bytes]) -> None:
    written, _, fp = enrolled
    with pytest.raises(AuthError):
        keystore.unlock(written.data, written.name, DeviceKey(Secret(b"\x01" * 32, "k")), Pin(fp, 0))


def test_a_device_key_never_opens_a_recipient_slot() -> None:
    made, _ = keystore.create(Passphrase.of("pw"), profile=MINIMUM)
    device = DeviceKey(Secret(MASTER, "device key"))
    vid, fp = made.vault.vault_id, made.vault.fingerprint
    written = keystore.add_recipient(made.vault, xwing.recipient(device.public_key(vid)), "same key, as a person")
    with pytest.raises(AuthError):
        keystore.unlock(written.data, written.name, device, Pin(fp, 0))
    opened = keystore.unlock(written.data, written.name, XwingKey(device.seed_for(vid)), Pin(fp, 0))
    assert next(s for s in opened.slots if s.id == opened.opened_slot).kind == "recipient"


async def test_the_library_opens_with_this_devices_key(tmp_path: Path) -> None:
    places = Places(state=tmp_path / "state", config=tmp_path / "config")
    url = str(tmp_path / "v")
    async with await sigmavault.create(url, passphrase="pw", kdf="minimum", places=places) as vault:
        await vault.mkdir("/kept")
        await vault.keys.add_device("laptop")
    async with await sigmavault.open(url, device=True, places=places) as vault:
        assert [e.name for e in await vault.ls("/")] == ["kept"]
        assert next(s for s in vault.keys.slots() if s.id == vault.keys.opened_slot).kind == "device"
    elsewhere = Places(state=tmp_path / "state2", config=tmp_path / "config2")
    with pytest.raises(AuthError, match="no device key"):
        await sigmavault.open(url, device=True, places=elsewhere)
