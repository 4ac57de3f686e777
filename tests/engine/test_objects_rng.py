"""RNG behaviour and relational canaries of the object layer (CRYPTO.md §6.2 "RNG behaviour", §6.3).

Single-ciphertext randomness batteries prove nothing (§6.3); these tests compare ciphertexts with
each other: salts never repeat, a repeated salt only ever repeats identical objects, and two
encryptions of one plaintext share no structure.
"""

from __future__ import annotations

import types
import zlib

import pytest

from sigmavault.engine.format import aead as chunked
from sigmavault.engine.format import envelope as objects
from sigmavault.engine.keys import schedule as keys

MIB4 = 4 << 20
KEYS = keys.EpochKeys.derive(b"\x42" * 32, bytes(range(32)), 1, "blake3-keyed-256")
SEALER = objects.Sealer(KEYS, MIB4)
BODY = objects.HDR + chunked.HEAD
CONST_SALT = b"\x5c" * chunked.SALT
TEXT = b"Board minutes: merger with ACME approved, announcement on Monday. " * 1000


def named(data: bytes) -> str:
    return KEYS.chunk_name(KEYS.chunk_id_of(data))


def xor(a: bytes, b: bytes) -> bytes:
    n = min(len(a), len(b))
    return (int.from_bytes(a[:n], "big") ^ int.from_bytes(b[:n], "big")).to_bytes(n, "big")


def zlib_ratio(data: bytes) -> float:
    return len(zlib.compress(data, 9)) / len(data)


@pytest.fixture
def constant_salt(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken RNG that always returns the same salt (only for the sealing code under test)."""
    monkeypatch.setattr(chunked, "secrets", types.SimpleNamespace(token_bytes=lambda n: CONST_SALT[:n]))


@pytest.mark.usefixtures("constant_salt")
def test_constant_salt_different_chunks_give_different_keys_and_nonces() -> None:
    a, b = TEXT[:60000], TEXT[1:60001]
    obj_a = SEALER.seal(keys.KIND_CHUNK, named(a), a)
    obj_b = SEALER.seal(keys.KIND_CHUNK, named(b), b)
    assert obj_a[objects.HDR : objects.HDR + 24] == obj_b[objects.HDR : objects.HDR + 24] == CONST_SALT
    hdr = objects.header(1)
    d_a = chunked.derive(KEYS.data_enc.reveal(), CONST_SALT, objects.context(KEYS.vault_id, 1, named(a), hdr))
    d_b = chunked.derive(KEYS.data_enc.reveal(), CONST_SALT, objects.context(KEYS.vault_id, 1, named(b), hdr))
    assert d_a.key != d_b.key
    assert d_a.base_nonce != d_b.base_nonce
    assert d_a.commitment == obj_a[objects.HDR + 24 : BODY]
    assert d_b.commitment == obj_b[objects.HDR + 24 : BODY]
    assert d_a.commitment != d_b.commitment
    # no keystream reuse: the bodies' XOR is as incompressible as random bytes
    assert zlib_ratio(xor(obj_a[BODY:], obj_b[BODY:])) > 0.99
    assert bytes(SEALER.open(keys.KIND_CHUNK, named(a), obj_a)) == a


@pytest.mark.usefixtures("constant_salt")
def test_constant_salt_same_chunk_gives_identical_ciphertext() -> None:
    data = TEXT[:50000]
    first = SEALER.seal(keys.KIND_CHUNK, named(data), data)
    second = SEALER.seal(keys.KIND_CHUNK, named(data), data)
    assert first == second
    # the same salt under another name is still another key (dedup name = content address)
    assert SEALER.seal(keys.KIND_CHUNK, named(b"x"), data)[BODY:] != first[BODY:]


def test_twenty_thousand_encryptions_give_distinct_salts() -> None:
    data = b"the same small chunk"
    name = named(data)
    salts = set()
    commitments = set()
    first_records = set()
    for _ in range(20_000):
        obj = SEALER.seal(keys.KIND_CHUNK, name, data, pad_floor=64)
        salts.add(obj[objects.HDR : objects.HDR + 24])
        commitments.add(obj[objects.HDR + 24 : BODY])
        first_records.add(obj[BODY:])
    assert len(salts) == len(commitments) == len(first_records) == 20_000


# --- §6.3 relational canaries ----------------------------------------------------------------------


def test_xor_of_two_encryptions_of_one_plaintext_is_incompressible() -> None:
    name = named(TEXT)
    a = SEALER.seal(keys.KIND_CHUNK, name, TEXT)
    b = SEALER.seal(keys.KIND_CHUNK, name, TEXT)
    assert len(a) == len(b) and a[BODY:] != b[BODY:]
    assert zlib_ratio(xor(a[BODY:], b[BODY:])) > 0.99
    assert zlib_ratio(a[BODY:]) > 0.99


def test_canary_detects_keystream_reuse() -> None:
    """Control: the canary above does fire when a key and nonce are reused for two plaintexts."""
    prk, ctx = KEYS.data_enc.reveal(), b"forced reuse"
    a = chunked.seal(prk, ctx, TEXT, salt=CONST_SALT)
    b = chunked.seal(prk, ctx, TEXT[7:] + TEXT[:7], salt=CONST_SALT)
    assert zlib_ratio(xor(a[56:], b[56:])) < 0.5


def test_marker_never_appears_in_objects() -> None:
    marker = b"SIGMAVAULT-CANARY-MARKER-0123456789"
    plain = marker * (200_000 // len(marker))
    for i in range(12):
        for kind in (keys.KIND_CHUNK, keys.KIND_DATA_PACK, keys.KIND_PAGE_PACK, keys.KIND_COMMIT):
            stored = plain[: 1000 + i * 15000]
            obj = SEALER.seal(kind, named(stored + bytes([kind])), stored)
            for piece in (marker, marker[:12], marker[12:24]):
                assert piece not in obj
            # ECB/keystream smoke test: no repeated 16-byte block in the body
            body = obj[BODY:]
            blocks = [body[j : j + 16] for j in range(0, len(body) - 15, 16)]
            assert len(set(blocks)) == len(blocks)


def test_vaults_give_different_ids_and_names_for_identical_plaintext() -> None:
    other = keys.EpochKeys.derive(b"\x42" * 32, bytes(range(1, 33)), 1, "blake3-keyed-256")
    data = b"identical plaintext"
    assert KEYS.chunk_id_of(data) != other.chunk_id_of(data)
    assert named(data) != other.chunk_name(other.chunk_id_of(data))
    assert KEYS.chunk_name(KEYS.chunk_id_of(data)) != other.chunk_name(KEYS.chunk_id_of(data))
