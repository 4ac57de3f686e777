"""X-Wing (ML-KEM-768 + X25519) identities and HPKE wrapping, age-compatible (CRYPTO.md §1.1, B.9).

Pure and synchronous; the only place the project touches HPKE. Byte layouts::

    identity seed   32 bytes from the CSPRNG
    e               = SHAKE256(seed, 96)
    ML-KEM-768 key  = from_seed_bytes(e[0:64])            (KeyGen_internal(d=e[0:32], z=e[32:64]))
    X25519 key      = e[64:96]
    pk              = ek_mlkem (1184) ‖ pk_x25519 (32)      # 1216 bytes
    sealed          = enc (1120) ‖ AEAD ciphertext ‖ tag (16)
                      HPKE SealBase(KEM 0x647A MLKEM768-X25519, HKDF-SHA256, ChaCha20Poly1305, info, aad="")

Text forms are age's: recipient ``age1pq1…`` (bech32 of pk, HRP ``age1pq``) and identity
``AGE-SECRET-KEY-PQ-1…`` (bech32 of the seed, uppercase). Any failure to parse or to open raises
the one :class:`IntegrityError`; callers that try key slots translate that into their own uniform
error. Seeds travel only inside :class:`Secret`; nothing here logs or keeps them.
"""

from __future__ import annotations

import hashlib
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from ..format import bech32
from ..format.canonical import fail
from .secret import Secret

SEED_LEN = 32
MLKEM_PK_LEN = 1184
X25519_LEN = 32
PK_LEN = MLKEM_PK_LEN + X25519_LEN  # 1216
ENC_LEN = 1120  # ML-KEM-768 ciphertext (1088) ‖ X25519 ephemeral share (32)
TAG_LEN = 16
RECIPIENT_HRP = "age1pq"
IDENTITY_HRP = "AGE-SECRET-KEY-PQ-"

_SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


def sealed_len(plaintext_len: int) -> int:
    """Length of :func:`seal` output: 1120 + plaintext + 16 (1168 for a 32-byte key)."""
    return ENC_LEN + plaintext_len + TAG_LEN


def _key_pair(seed: Secret) -> tuple[mlkem.MLKEM768PrivateKey, x25519.X25519PrivateKey]:
    if len(seed) != SEED_LEN:
        raise ValueError("an X-Wing seed is 32 bytes")
    e = hashlib.shake_256(seed.reveal()).digest(96)
    return mlkem.MLKEM768PrivateKey.from_seed_bytes(e[:64]), x25519.X25519PrivateKey.from_private_bytes(e[64:96])


def generate() -> Secret:
    """A fresh identity seed from the CSPRNG."""
    return Secret(secrets.token_bytes(SEED_LEN), "xwing seed")


def public_key(seed: Secret) -> bytes:
    """The 1216-byte public key ``ek_mlkem ‖ pk_x25519`` of an identity seed."""
    mk, xk = _key_pair(seed)
    return mk.public_key().public_bytes_raw() + xk.public_key().public_bytes_raw()


def _public_key_object(pk: bytes) -> hpke.MLKEM768X25519PublicKey:
    if len(pk) != PK_LEN:
        fail("pk length")
    try:
        return hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(pk[:MLKEM_PK_LEN]),
            x25519.X25519PublicKey.from_public_bytes(pk[MLKEM_PK_LEN:]),
        )
    except ValueError:  # an invalid ML-KEM encapsulation key (coefficients out of range)
        fail("pk")


def check_public_key(pk: bytes) -> bytes:
    """Return ``pk`` if it is a well-formed 1216-byte X-Wing key, else raise IntegrityError."""
    _public_key_object(pk)
    return pk


def seal(pk: bytes, info: bytes, plaintext: bytes) -> bytes:
    """HPKE SealBase to ``pk`` with ``info`` and empty aad; returns ``enc ‖ ct``."""
    return _SUITE.encrypt(plaintext, _public_key_object(pk), info=info)


def open(seed: Secret, info: bytes, sealed: bytes) -> bytes:
    """HPKE OpenBase with the identity ``seed``. IntegrityError on any failure (one message)."""
    if len(sealed) < ENC_LEN + TAG_LEN:
        fail("sealed length")
    try:
        return _SUITE.decrypt(sealed, hpke.MLKEM768X25519PrivateKey(*_key_pair(seed)), info=info)
    except (InvalidTag, ValueError):
        fail("hpke open")


# --- age text forms ----------------------------------------------------------------------------


def recipient(pk: bytes) -> str:
    """``age1pq1…`` for a 1216-byte public key."""
    return bech32.encode(RECIPIENT_HRP, check_public_key(pk))


def parse_recipient(text: str) -> bytes:
    """The 1216-byte public key of an ``age1pq1…`` string (strict bech32, length and key checked)."""
    _, pk = bech32.decode(text.strip(), RECIPIENT_HRP)
    return check_public_key(pk)


def identity(seed: Secret) -> str:
    """``AGE-SECRET-KEY-PQ-1…`` for a seed. The result is a secret: do not log it."""
    if len(seed) != SEED_LEN:
        raise ValueError("an X-Wing seed is 32 bytes")
    return bech32.encode(IDENTITY_HRP, seed.reveal()).upper()


def parse_identity(text: str) -> Secret:
    """The seed of an ``AGE-SECRET-KEY-PQ-1…`` string."""
    _, seed = bech32.decode(text.strip(), IDENTITY_HRP)
    if len(seed) != SEED_LEN:
        fail("seed length")
    return Secret(seed, "xwing seed")
