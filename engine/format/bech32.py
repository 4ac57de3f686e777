"""Plain bech32 (BIP-173 checksum, not bech32m) without the 90-character limit (a leaf module).

Used for recovery codes (``vault-recovery-1…``, CRYPTO.md §1.1) and age post-quantum keys
(``age1pq1…`` recipients, ``AGE-SECRET-KEY-PQ-1…`` identities). Layout of a string::

    hrp ‖ "1" ‖ data characters (5 bits each, the bytes regrouped big-endian, zero-padded) ‖ checksum (6 chars)

The checksum is the BIP-173 BCH code with constant 1 over ``expand(hrp) ‖ data``, always computed on
the lowercase form. Decoding is strict and ends only in :class:`IntegrityError`: mixed case, a
character outside the alphabet, a bad checksum, non-zero or excess padding bits, an unexpected
HRP or an over-long string are all rejected. Pure; no I/O, no keys kept.
"""

from __future__ import annotations

from .canonical import fail

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_VALUES = {c: i for i, c in enumerate(CHARSET)}
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
MAX_LEN = 8192  # generous: an age1pq recipient is 1,959 characters; bounds the work on hostile input


def _gen_of(top: int) -> int:
    out = 0
    for i in range(5):
        if (top >> i) & 1:
            out ^= _GEN[i]
    return out


_GEN_TABLE = tuple(_gen_of(top) for top in range(32))  # the XOR of generators for each 5-bit top


def _polymod(values: list[int]) -> int:
    # one table lookup per character instead of five tests: an age1pq1 recipient (1,959
    # characters) decodes several times faster
    chk = 1
    table = _GEN_TABLE
    for v in values:
        chk = ((chk & 0x1FFFFFF) << 5) ^ v ^ table[chk >> 25]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _to_5bit(data: bytes) -> list[int]:
    acc = bits = 0
    out: list[int] = []
    for byte in data:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append((acc >> bits) & 31)
    if bits:
        out.append((acc << (5 - bits)) & 31)
    return out


def _from_5bit(values: list[int]) -> bytes:
    acc = bits = 0
    out = bytearray()
    for v in values:
        acc = ((acc << 5) | v) & 0xFFF
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    if bits >= 5 or (acc & ((1 << bits) - 1)):
        fail("bech32 padding")  # non-canonical: a whole spare group or non-zero pad bits
    return bytes(out)


def _check_hrp(hrp: str) -> None:
    if not hrp or any(not 33 <= ord(c) <= 126 for c in hrp):
        raise ValueError("invalid bech32 human-readable part")


def encode(hrp: str, data: bytes) -> str:
    """Lowercase bech32 of ``data`` under ``hrp`` (given in any case; emitted lowercase)."""
    _check_hrp(hrp)
    hrp = hrp.lower()
    values = _to_5bit(data)
    poly = _polymod([*_hrp_expand(hrp), *values, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(poly >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[v] for v in values + checksum)


def decode(text: object, hrp: str | None = None) -> tuple[str, bytes]:
    """Strictly decode; returns ``(hrp lowercased, data)``. ``hrp`` (any case) must match if given."""
    if not isinstance(text, str) or not 8 <= len(text) <= MAX_LEN:
        fail("bech32 length")
    if text.lower() != text and text.upper() != text:
        fail("bech32 mixed case")
    if any(not 33 <= ord(c) <= 126 for c in text):
        fail("bech32 character")
    low = text.lower()
    sep = low.rfind("1")
    if sep < 1 or len(low) - sep - 1 < 6:
        fail("bech32 separator")
    got_hrp, part = low[:sep], low[sep + 1 :]
    if hrp is not None and got_hrp != hrp.lower():
        fail("bech32 hrp")
    values: list[int] = []
    for c in part:
        v = _VALUES.get(c)
        if v is None:
            fail("bech32 character")
        values.append(v)
    if _polymod([*_hrp_expand(got_hrp), *values]) != 1:
        fail("bech32 checksum")
    return got_hrp, _from_5bit(values[:-6])
