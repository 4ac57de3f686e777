"""Credentials that open keystore slots, and the pin that authenticates a keystore (CRYPTO.md §1.1, §1.3).

Pure value types; every secret sits in a :class:`Secret`. The recovery code is printed for the
user as::

    bech32("vault-recovery-", seed (32) ‖ fingerprint F (16))      # 99 characters, plain bech32

so one piece of paper both opens the recovery slot and pins the vault fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..format import bech32
from ..format.canonical import fail
from . import xwing
from .secret import Secret
from .slots import normalize_passphrase

FINGERPRINT_LEN = 16
RECOVERY_HRP = "vault-recovery-"
DEVICE_SEED_SALT = b"vault/v1/device-seed\0"
DEVICE_SEED_INFO = b"vault/v1/xwing-device"


@dataclass(frozen=True, slots=True)
class Passphrase:
    """Opens ``argon2id`` slots. Build with :meth:`of` (NFC) or ``slots.passphrase_from_file``."""

    secret: Secret

    @classmethod
    def of(cls, text: str) -> Passphrase:
        return cls(normalize_passphrase(text))


@dataclass(frozen=True, slots=True)
class TwoFactor:
    """Passphrase plus this device's 32-byte secret: opens ``argon2id+device`` (and plain passphrase) slots."""

    passphrase: Passphrase
    device_secret: Secret


@dataclass(frozen=True, slots=True)
class XwingKey:
    """An X-Wing identity seed (a device key, or an age ``AGE-SECRET-KEY-PQ-1…`` identity)."""

    seed: Secret

    def seed_for(self, vault_id: bytes) -> Secret:
        return self.seed


@dataclass(frozen=True, slots=True)
class DeviceKey:
    """This device's 32-byte key (a local file, never uploaded): opens ``xwing`` slots of kind ``device``.

    Each vault sees its own X-Wing identity, ``seed_for(vault_id)`` = HKDF-SHA256(IKM = the device
    key, salt = ``"vault/v1/device-seed\\0" ‖ vault_id``, info = ``"vault/v1/xwing-device"``), so the
    public keys a device enrols in two vaults cannot be linked by their providers.
    """

    master: Secret

    def seed_for(self, vault_id: bytes) -> Secret:
        seed = HKDF(hashes.SHA256(), xwing.SEED_LEN, DEVICE_SEED_SALT + vault_id, DEVICE_SEED_INFO).derive(
            self.master.reveal()
        )
        return Secret(seed, "device seed")

    def public_key(self, vault_id: bytes) -> bytes:
        """The 1216-byte X-Wing public key this device enrols in the vault ``vault_id``."""
        return xwing.public_key(self.seed_for(vault_id))


@dataclass(frozen=True, slots=True)
class RecoveryCode:
    """``bech32("vault-recovery-", seed ‖ fingerprint16)``: opens recovery slots and supplies the pin."""

    seed: Secret
    fingerprint: bytes

    @classmethod
    def parse(cls, text: str) -> RecoveryCode:
        """Strict decode (IntegrityError for a mistyped code: the bech32 checksum catches typos)."""
        _, data = bech32.decode(text.strip(), RECOVERY_HRP)
        if len(data) != xwing.SEED_LEN + FINGERPRINT_LEN:
            fail("recovery code length")
        return cls(Secret(data[: xwing.SEED_LEN], "recovery seed"), data[xwing.SEED_LEN :])

    def seed_for(self, vault_id: bytes) -> Secret:
        return self.seed

    def text(self) -> Secret:
        """The code to print for the user, as ASCII bytes in a Secret."""
        return Secret(bech32.encode(RECOVERY_HRP, self.seed.reveal() + self.fingerprint).encode(), "recovery code")


Credential = Passphrase | TwoFactor | XwingKey | DeviceKey | RecoveryCode


@dataclass(frozen=True, slots=True)
class Pin:
    """What this client trusts: the vault fingerprint and the highest keystore generation seen."""

    fingerprint: bytes
    generation: int = 0
