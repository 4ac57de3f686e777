"""Property tests of C2SP chunked encryption (engine/format/aead.py) and of ranged reads through Sealer.

Round trips for random sizes (0..~70 KiB and sizes next to record boundaries), random ranged reads
through ``span``/``open_records`` and ``Sealer.range_plan``/``open_range``, all compared with the
slice of the plaintext, and ciphertext lengths against ``sealed_len``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sigmavault.engine.errors import IntegrityError
from sigmavault.engine.format import aead as chunked
from sigmavault.engine.format import envelope as objects
from sigmavault.engine.keys import schedule as keys

PRK = b"\x11" * 32
CTX = b"test context"
R = chunked.RECORD
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

near_boundary = st.builds(lambda k, d: max(0, k * R + d), st.integers(0, 4), st.integers(-3, 3))
sizes = st.one_of(st.integers(0, 70 * 1024), near_boundary)


def payload(n: int) -> bytes:
    return os.urandom(n)


@SETTINGS
@given(n=sizes)
def test_round_trip_and_length(n: int) -> None:
    msg = payload(n)
    ct = chunked.seal(PRK, CTX, msg)
    records = n // R + 1
    assert len(ct) == chunked.sealed_len(n) == 56 + n + 16 * records
    assert chunked.records_in(len(ct)) == records
    assert chunked.open(PRK, CTX, ct) == msg
    assert chunked.open(PRK, CTX, memoryview(bytearray(ct))) == msg


@SETTINGS
@given(n=sizes)
def test_last_record_is_short(n: int) -> None:
    ct_len = chunked.sealed_len(n)
    last = (ct_len - 56) - (chunked.records_in(ct_len) - 1) * chunked.CT_RECORD
    assert 16 <= last < chunked.CT_RECORD
    assert last - 16 == n % R


def test_seal_draws_a_fresh_salt() -> None:
    a, b = chunked.seal(PRK, CTX, b"same"), chunked.seal(PRK, CTX, b"same")
    assert a[:24] != b[:24] and a[56:] != b[56:]


def test_seal_into_misuse_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        chunked.seal_into(PRK, CTX, b"abc", bytearray(chunked.sealed_len(3) - 1))
    with pytest.raises(ValueError):
        chunked.seal(PRK, CTX, b"abc", salt=b"\x00" * 23)


@st.composite
def msg_and_range(draw: st.DrawFn) -> tuple[bytes, int, int]:
    n = draw(sizes)
    off = draw(st.integers(0, n))
    length = draw(st.integers(0, n - off))
    return payload(n), off, length


@SETTINGS
@given(case=msg_and_range())
def test_ranged_read_equals_slice(case: tuple[bytes, int, int]) -> None:
    msg, off, length = case
    ct = chunked.seal(PRK, CTX, msg)
    sp = chunked.span(len(ct), off, length)
    assert 56 <= sp.ct_start < sp.ct_end <= len(ct)
    assert sp.first == off // R and sp.skip == off - sp.first * R
    assert sp.ct_start == 56 + sp.first * chunked.CT_RECORD
    plain = chunked.open_records(PRK, CTX, ct[:56], sp, ct[sp.ct_start : sp.ct_end])
    assert plain[sp.skip : sp.skip + length] == msg[off : off + length]
    # the span covers the range and no more than the records it needs
    assert len(plain) == (sp.ct_end - sp.ct_start) - 16 * sp.count
    assert sp.skip + length <= len(plain)
    assert sp.count <= max(1, (sp.skip + length + R - 1) // R)


def test_span_rejects_out_of_range() -> None:
    ct_len = chunked.sealed_len(1000)
    for off, length in ((0, 1001), (1001, 0), (-1, 1), (0, -1), (999, 2)):
        with pytest.raises(IntegrityError):
            chunked.span(ct_len, off, length)
    with pytest.raises(IntegrityError):
        chunked.span(56 + chunked.CT_RECORD, 0, 0)  # truncated at a record boundary


@pytest.mark.parametrize("body", [-56, 0, 15, chunked.CT_RECORD, chunked.CT_RECORD + 15, 2 * chunked.CT_RECORD])
def test_records_in_rejects_cut_lengths(body: int) -> None:
    with pytest.raises(IntegrityError):
        chunked.records_in(56 + body)


def test_records_in_caps_allocation() -> None:
    assert chunked.records_in(56 + (chunked.MAX_RECORDS - 1) * chunked.CT_RECORD + 16) == chunked.MAX_RECORDS
    with pytest.raises(IntegrityError):
        chunked.records_in(56 + chunked.MAX_RECORDS * chunked.CT_RECORD + 16)


# --- ranged reads of objects through Sealer -------------------------------------------------------

KEYS = keys.EpochKeys.derive(b"\x42" * 32, bytes(range(32)), 1, "blake3-keyed-256")
SEALER = objects.Sealer(KEYS, 4 << 20)
NAME = "o/" + "ab" * 32


@SETTINGS
@given(case=msg_and_range(), kind=st.sampled_from([keys.KIND_CHUNK, keys.KIND_DATA_PACK]))
def test_object_ranged_read_equals_slice(case: tuple[bytes, int, int], kind: int) -> None:
    stored, off, length = case
    obj = SEALER.seal(kind, NAME, stored)
    assert len(obj) == objects.object_len(len(stored), 4 << 20, 4096)
    sp, (start, end) = SEALER.range_plan(len(obj), off, length)
    assert 62 <= start < end <= len(obj)
    got = SEALER.open_range(kind, NAME, obj[:62], sp, obj[start:end], off, length)
    assert got == stored[off : off + length]


def test_object_ranged_read_of_a_full_chunk() -> None:
    stored = os.urandom(4 << 20)
    obj = SEALER.seal(keys.KIND_CHUNK, NAME, stored)
    for off, length in ((0, 1), (0, 16376), (16376, 1), (16375, 2), (1 << 20, 70000), ((4 << 20) - 5, 5), (0, 0)):
        sp, (start, end) = SEALER.range_plan(len(obj), off, length)
        assert end - start <= (length // R + 2) * chunked.CT_RECORD
        got = SEALER.open_range(keys.KIND_CHUNK, NAME, obj[:62], sp, obj[start:end], off, length)
        assert got == stored[off : off + length]


def test_object_ranged_read_beyond_stored_is_rejected_in_first_record() -> None:
    stored = os.urandom(1000)  # framed to 4096 bytes: padding follows the stored bytes
    obj = SEALER.seal(keys.KIND_DATA_PACK, NAME, stored)
    sp, (start, end) = SEALER.range_plan(len(obj), 990, 20)  # the plan allows it (inside the message)
    with pytest.raises(IntegrityError):
        SEALER.open_range(keys.KIND_DATA_PACK, NAME, obj[:62], sp, obj[start:end], 990, 20)


def test_ranged_reads_refuse_page_packs_and_commits() -> None:
    obj = SEALER.seal(keys.KIND_PAGE_PACK, NAME, b"page")
    sp, (start, end) = SEALER.range_plan(len(obj), 0, 4)
    for kind in (keys.KIND_PAGE_PACK, keys.KIND_COMMIT):
        with pytest.raises(IntegrityError):
            SEALER.open_range(kind, NAME, obj[:62], sp, obj[start:end], 0, 4)


# --- seal_padded_into / open_into (the reused-buffer paths) -------------------------------------


@st.composite
def padded_parts(draw: st.DrawFn) -> tuple[bytes, bytes, int]:
    prefix = os.urandom(draw(st.sampled_from([0, 1, 8, 100])))
    body = os.urandom(draw(sizes))
    pad = draw(st.one_of(st.integers(0, 40000), near_boundary))
    return prefix, body, len(prefix) + len(body) + pad


@SETTINGS
@given(parts=padded_parts())
def test_seal_padded_into_equals_seal_of_assembled_message(parts: tuple[bytes, bytes, int]) -> None:
    prefix, body, msg_len = parts
    salt = os.urandom(24)
    msg = prefix + body + bytes(msg_len - len(prefix) - len(body))
    want = chunked.seal(PRK, CTX, msg, salt=salt)
    out = bytearray(b"\xa5" * (len(want) + 7))
    assert chunked.seal_padded_into(PRK, CTX, prefix, memoryview(body), msg_len, out, salt) == len(want)
    assert bytes(out[: len(want)]) == want and out[len(want) :] == b"\xa5" * 7


def test_seal_padded_into_rejects_short_message_length() -> None:
    with pytest.raises(ValueError):
        chunked.seal_padded_into(PRK, CTX, b"12345678", b"abc", 10, bytearray(100))


@SETTINGS
@given(n=sizes)
def test_open_into_reused_buffer(n: int) -> None:
    msg = payload(n)
    ct = chunked.seal(PRK, CTX, msg)
    out = bytearray(b"\x77" * (n + 5))
    assert chunked.open_into(PRK, CTX, ct, out) == n
    assert out[:n] == msg and out[n:] == b"\x77" * 5


def test_open_into_too_small_buffer_is_an_integrity_error() -> None:
    ct = chunked.seal(PRK, CTX, b"x" * 1000)
    with pytest.raises(IntegrityError):
        chunked.open_into(PRK, CTX, ct, bytearray(999))


def test_open_into_leaves_no_unverified_plaintext() -> None:
    msg = b"\x00" * (3 * R)  # zeros: easy to spot any decrypted byte left behind
    ct = bytearray(chunked.seal(PRK, CTX, msg))
    ct[56 + 2 * chunked.CT_RECORD - 1] ^= 1  # the tag of record 1: records 0 and 1 were decrypted
    out = bytearray(b"\x55" * len(msg))
    with pytest.raises(IntegrityError):
        chunked.open_into(PRK, CTX, ct, out)
    assert out == bytes(len(msg))


@SETTINGS
@given(
    n=st.integers(0, 70 * 1024),
    floor=st.sampled_from([0, 1024, 4096, 8 + (4 << 20)]),
    kind=st.sampled_from(objects.KINDS),
)
def test_sealer_seal_into_equals_seal(n: int, floor: int, kind: int) -> None:
    stored = payload(n)
    salt = os.urandom(24)
    want = SEALER.seal(kind, NAME, stored, pad_floor=floor, salt=salt)
    out = bytearray(b"\xee" * (len(want) + 3))
    assert SEALER.seal_into(kind, NAME, stored, out, pad_floor=floor, salt=salt) == len(want)
    assert bytes(out[: len(want)]) == want and out[len(want) :] == b"\xee" * 3
    back = bytearray(8 + (4 << 20))
    assert bytes(SEALER.open_into(kind, NAME, want, back, expected_len=len(want))) == stored
    assert bytes(SEALER.open(kind, NAME, want, expected_len=len(want))) == stored


def test_sealer_seal_into_too_small_buffer() -> None:
    with pytest.raises(ValueError):
        SEALER.seal_into(keys.KIND_CHUNK, NAME, b"abc", bytearray(objects.object_len(3, 4 << 20, 4096) - 1))
