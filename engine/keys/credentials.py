"""Credentials that open keystore slots, and the pin that authenticates a keystore (CRYPTO.md §1.1, §1.3).

Pure value types; every secret sits in a :class:`Secret`. The recovery code is printed for the
user as::

    bech32("vault-recovery-", seed (32) ‖ fingerprint F (16))      # 99 characters, plain bech32

so one piece of paper both opens the recovery slot and pins the vault fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..format import bech32
from ..format.canonical import fail
from . import xwing
from .secret import Secret
from .slots import normalize_passphrase

FINGERPRINT_LEN = 16
RECOVERY_HRP = "vault-recovery-"


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

    def text(self) -> Secret:
        """The code to print for the user, as ASCII bytes in a Secret."""
        return Secret(bech32.encode(RECOVERY_HRP, self.seed.reveal() + self.fingerprint).encode(), "recovery code")


Credential = Passphrase | TwoFactor | XwingKey | RecoveryCode


@dataclass(frozen=True, slots=True)
class Pin:
    """What this client trusts: the vault fingerprint and the highest keystore generation seen."""

    fingerprint: bytes
    generation: int = 0
