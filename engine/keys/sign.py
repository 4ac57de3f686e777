"""Hybrid signatures for write-only clients: ML-DSA-65 and Ed25519, both required (CRYPTO.md §7:
no classical-only public keys). Pure and synchronous. Byte layouts::

    signing seeds   ed25519 seed 32 ‖ ML-DSA-65 seed ξ 32          (64 bytes from the CSPRNG)
    verify key      ed25519 pk 32 ‖ ML-DSA-65 pk 1952              (1984 bytes)
    M'              = "vault/v1/hybrid-sig\\0" ‖ SHA-256(verify key) ‖ M
    signature       = Ed25519(M') 64 ‖ ML-DSA-65.Sign(M', ctx = "vault/v1/hybrid-sig") 3309   (3373 bytes)

Both halves sign the same M', which binds the whole verify key, so neither half can be stripped
and moved under another key. ML-DSA signing is hedged (randomised); known-answer tests pin the
keys of a seed and check a stored signature. Any failure to verify is the one IntegrityError.
"""

from __future__ import annotations

import hashlib
import secrets

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa

from ..format.canonical import fail
from .secret import Secret

SEED_LEN = 64
ED_PK_LEN = 32
MLDSA_PK_LEN = 1952
VERIFY_KEY_LEN = ED_PK_LEN + MLDSA_PK_LEN  # 1984
ED_SIG_LEN = 64
MLDSA_SIG_LEN = 3309
SIG_LEN = ED_SIG_LEN + MLDSA_SIG_LEN  # 3373
LABEL = b"vault/v1/hybrid-sig"


def generate() -> Secret:
    """Fresh signing seeds from the CSPRNG."""
    return Secret(secrets.token_bytes(SEED_LEN), "signing seeds")


def _keys(seeds: Secret) -> tuple[ed25519.Ed25519PrivateKey, mldsa.MLDSA65PrivateKey]:
    if len(seeds) != SEED_LEN:
        raise ValueError("signing seeds are 64 bytes")
    raw = seeds.reveal()
    return ed25519.Ed25519PrivateKey.from_private_bytes(raw[:32]), mldsa.MLDSA65PrivateKey.from_seed_bytes(raw[32:])


def verify_key(seeds: Secret) -> bytes:
    """The 1984-byte verify key ``ed25519 pk ‖ ML-DSA-65 pk`` of signing seeds."""
    ed, ml = _keys(seeds)
    return ed.public_key().public_bytes_raw() + ml.public_key().public_bytes_raw()


def _message(vk: bytes, message: bytes) -> bytes:
    return LABEL + b"\x00" + hashlib.sha256(vk).digest() + message


def sign(seeds: Secret, message: bytes) -> bytes:
    """The 3373-byte hybrid signature of ``message``."""
    ed, ml = _keys(seeds)
    m = _message(verify_key(seeds), message)
    return ed.sign(m) + ml.sign(m, LABEL)


def check_verify_key(vk: bytes) -> bytes:
    """``vk`` if both halves parse as public keys, else IntegrityError."""
    _public(vk)
    return vk


def _public(vk: bytes) -> tuple[ed25519.Ed25519PublicKey, mldsa.MLDSA65PublicKey]:
    if type(vk) is not bytes or len(vk) != VERIFY_KEY_LEN:
        fail("verify key length")
    try:
        return (ed25519.Ed25519PublicKey.from_public_bytes(vk[:ED_PK_LEN]),
                mldsa.MLDSA65PublicKey.from_public_bytes(vk[ED_PK_LEN:]))
    except ValueError:
        fail("verify key")


def verify(vk: bytes, message: bytes, signature: bytes) -> None:
    """Raise IntegrityError unless both halves of ``signature`` verify ``message`` under ``vk``."""
    ed, ml = _public(vk)
    if len(signature) != SIG_LEN:
        fail("signature length")
    m = _message(vk, message)
    try:
        ed.verify(signature[:ED_SIG_LEN], m)
        ml.verify(signature[ED_SIG_LEN:], m, LABEL)
    except InvalidSignature:
        fail("signature")
