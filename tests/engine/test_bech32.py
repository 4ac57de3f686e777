"""bech32 (BIP-173 checksum, no length limit), strict decoding: CRYPTO.md §1.1, §7.12."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sigmavault.engine.errors import IntegrityError
from sigmavault.engine.format import bech32

# BIP-173 "valid checksum" vectors whose data parts also regroup canonically into bytes.
VALID = [
    "A12UEL5L",
    "a12uel5l",
    "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
    "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
    "11" + "q" * 82 + "c8247j",  # 90 characters
    "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
    "?1ezyfcl",
]

# BIP-173 invalid vectors, plus mixed case.
INVALID = [
    "\x201nwldj5",  # HRP character out of range
    "\x7f1axkwrx",
    "\x801eym55h",
    "pzry9x0s0muk",  # no separator
    "1pzry9x0s0muk",  # empty HRP
    "x1b4n0q5v",  # invalid data character
    "li1dgmt3",  # checksum too short
    "de1lg7wt\xff",  # invalid character in checksum
    "A1G7SGD8",  # checksum computed with an uppercase HRP
    "10a06t8",  # empty HRP
    "1qzzfhee",  # empty HRP
    "A12uEL5L",  # mixed case
    "a12uel5m",  # checksum off by one character
]


def _with_checksum(hrp: str, values: list[int]) -> str:
    """Assemble a string with a correct checksum over arbitrary 5-bit values (for padding tests)."""
    poly = bech32._polymod([*bech32._hrp_expand(hrp), *values, 0, 0, 0, 0, 0, 0]) ^ 1
    check = [(poly >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(bech32.CHARSET[v] for v in values + check)


@pytest.mark.parametrize("text", VALID)
def test_bip173_valid_vectors_decode_and_reencode(text: str) -> None:
    hrp, data = bech32.decode(text)
    assert bech32.encode(hrp, data) == text.lower()


@pytest.mark.parametrize("text", INVALID)
def test_bip173_invalid_vectors_raise_integrity_error_only(text: str) -> None:
    with pytest.raises(IntegrityError):
        bech32.decode(text)


def test_encode_is_plain_bech32_not_bech32m() -> None:
    # bech32m's constant is 0x2bc830a3; the BIP-173 vector above only verifies under constant 1.
    assert bech32.encode("a", b"") == "a12uel5l"


def test_no_90_character_limit() -> None:
    data = bytes(range(48))
    text = bech32.encode("vault-recovery-", data)
    assert len(text) == 99
    assert bech32.decode(text, "vault-recovery-") == ("vault-recovery-", data)


def test_uppercase_accepted_and_hrp_checked() -> None:
    text = bech32.encode("age-secret-key-pq-", b"\x01" * 32).upper()
    assert bech32.decode(text, "AGE-SECRET-KEY-PQ-")[1] == b"\x01" * 32
    with pytest.raises(IntegrityError):
        bech32.decode(text, "age1pq")


def test_nonzero_padding_bits_rejected() -> None:
    # one byte = 8 bits -> two 5-bit groups with 2 padding bits; set a padding bit
    ok = _with_checksum("x", [0b00000, 0b00000])
    assert bech32.decode(ok) == ("x", b"\x00")
    with pytest.raises(IntegrityError):
        bech32.decode(_with_checksum("x", [0b00000, 0b00001]))


def test_excess_padding_group_rejected() -> None:
    # 8 bits of data need 2 groups; a third all-zero group is 5 bits of padding: non-canonical
    with pytest.raises(IntegrityError):
        bech32.decode(_with_checksum("x", [0, 0, 0]))


def test_over_long_input_rejected() -> None:
    with pytest.raises(IntegrityError):
        bech32.decode("a1" + "q" * (bech32.MAX_LEN + 1))


def test_non_string_rejected() -> None:
    with pytest.raises(IntegrityError):
        bech32.decode(b"a12uel5l")


@settings(max_examples=200, deadline=None)
@given(hrp=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20),
       data=st.binary(max_size=200))
def test_roundtrip(hrp: str, data: bytes) -> None:
    text = bech32.encode(hrp, data)
    assert bech32.decode(text) == (hrp.lower(), data)
    assert bech32.decode(text.upper()) == (hrp.lower(), data)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(min_size=1, max_size=64), pos=st.integers(min_value=0), char=st.sampled_from(bech32.CHARSET))
def test_single_character_substitution_detected(data: bytes, pos: int, char: str) -> None:
    text = bech32.encode("vault-recovery-", data)
    i = len("vault-recovery-1") + pos % (len(text) - len("vault-recovery-1"))
    mutated = text[:i] + char + text[i + 1 :]
    if mutated == text:
        return
    with pytest.raises(IntegrityError):
        bech32.decode(mutated)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_random_text_ends_only_in_integrity_error(text: str) -> None:
    with contextlib.suppress(IntegrityError):
        bech32.decode(text)
