"""PADMÉ, framing and object sizes (engine/format/framing.py, CRYPTO.md §3.3): sizes follow the padding law exactly."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sigmavault.engine.errors import IntegrityError
from sigmavault.engine.format import aead as chunked
from sigmavault.engine.format import envelope as objects
from sigmavault.engine.format import framing
from sigmavault.engine.keys import schedule as keys

MIB4 = 4 << 20
FULL_OBJECT = 4_198_486
KEYS = keys.EpochKeys.derive(b"\x42" * 32, bytes(range(32)), 1, "blake3-keyed-256")
SEALER = objects.Sealer(KEYS, MIB4)
NAME = "o/" + "cd" * 32
SETTINGS = settings(max_examples=200, deadline=None)


# --- PADMÉ -----------------------------------------------------------------------------------------


@settings(max_examples=2000, deadline=None)
@given(st.integers(2, 1 << 40))
def test_padme_bound(length: int) -> None:
    padded = framing.padme(length)
    e = length.bit_length() - 1
    s = e.bit_length()
    assert padded >= length
    assert padded - length < length / 2**s  # overhead below 1/2^S of the length
    assert padded - length <= (1 << max(0, e - s)) - 1
    assert padded % (1 << max(0, e - s)) == 0  # only the top S+1 bits may vary
    assert framing.padme(padded) == padded  # idempotent


@settings(max_examples=2000, deadline=None)
@given(st.integers(0, 1 << 40), st.integers(0, 1 << 20))
def test_padme_monotonic(a: int, delta: int) -> None:
    assert framing.padme(a) <= framing.padme(a + delta)


def test_padme_small_and_exhaustive_monotonic() -> None:
    assert [framing.padme(i) for i in range(4)] == [0, 1, 2, 3]
    prev = 0
    for n in range(1, 1 << 17):
        p = framing.padme(n)
        assert p >= prev and p >= n
        prev = p


def test_padme_overhead_on_partial_packs() -> None:
    # §3.3: at most 6.25% on partial packs (4 KiB floor), at most 3.1% above 64 KiB
    worst = max((framing.framed_len(n, MIB4, 4096) - 8 - n) / (n + 8) for n in range(4096, MIB4, 97))
    assert worst <= 0.0625
    worst64 = max((framing.framed_len(n, MIB4, 4096) - 8 - n) / (n + 8) for n in range(65536, MIB4, 97))
    assert worst64 <= 0.032
    # PADMÉ steps are >= 256 bytes wide here, so every 8th length sees every size
    sizes = {framing.framed_len(n, MIB4, 4096) for n in range(0, MIB4 + 1, 8)}
    assert min(sizes) == 4096 and max(sizes) == 8 + MIB4
    assert len(sizes - {8 + MIB4}) == 257  # partial packs: 257 sizes below the full one


# --- framed and object lengths ------------------------------------------------------------------


@SETTINGS
@given(st.integers(0, MIB4), st.sampled_from([0, 1024, 4096]))
def test_framed_len_law(stored: int, floor: int) -> None:
    want = min(max(floor, framing.padme(8 + stored)), 8 + MIB4)
    assert framing.framed_len(stored, MIB4, floor) == want
    assert objects.object_len(stored, MIB4, floor) == 6 + chunked.sealed_len(want)


def test_framed_len_rejects_oversize() -> None:
    with pytest.raises(ValueError):
        framing.framed_len(MIB4 + 1, MIB4, 4096)
    with pytest.raises(ValueError):
        framing.framed_len(-1, MIB4, 4096)


@SETTINGS
@given(n=st.integers(0, 70 * 1024))
def test_object_size_follows_padme(n: int) -> None:
    obj = SEALER.seal(keys.KIND_DATA_PACK, NAME, os.urandom(n))
    framed = framing.framed_len(n, MIB4, 4096)
    assert len(obj) == 6 + chunked.sealed_len(framed) == objects.object_len(n, MIB4, 4096)


def test_full_chunk_object_size() -> None:
    assert objects.object_len(MIB4, MIB4, 4096) == FULL_OBJECT
    for _ in range(2):
        obj = SEALER.seal(keys.KIND_CHUNK, NAME, os.urandom(MIB4))
        assert len(obj) == FULL_OBJECT
    # a full pack is padded to 8 + chunk_size and is indistinguishable by size
    pack = SEALER.seal(keys.KIND_DATA_PACK, NAME, os.urandom(12345), pad_floor=8 + MIB4)
    assert len(pack) == FULL_OBJECT
    assert bytes(SEALER.open(keys.KIND_DATA_PACK, NAME, pack)) != b""


def test_frame_layout() -> None:
    msg = framing.frame(b"hello", MIB4, 64)
    assert bytes(msg) == b"\x01\x00\x00\x00\x00\x00\x00\x05hello" + bytes(64 - 13)
    assert bytes(framing.unframe(msg)) == b"hello"


# --- unframe: strict ------------------------------------------------------------------------------


@SETTINGS
@given(st.binary(max_size=5000), st.sampled_from([0, 16, 4096]))
def test_unframe_round_trip(stored: bytes, floor: int) -> None:
    msg = framing.frame(stored, 8192, floor)
    view = framing.unframe(msg)
    assert isinstance(view, memoryview) and bytes(view) == stored


@SETTINGS
@given(st.binary(max_size=3000), st.data())
def test_unframe_rejects_nonzero_padding(stored: bytes, data: st.DataObject) -> None:
    msg = framing.frame(stored, 8192, 4096)
    pos = data.draw(st.integers(8 + len(stored), len(msg) - 1))
    msg[pos] = data.draw(st.integers(1, 255))
    with pytest.raises(IntegrityError):
        framing.unframe(msg)


@pytest.mark.parametrize("pos,value", [(0, 0), (0, 2), (0, 0xFF), (1, 1), (1, 2), (2, 1), (3, 1), (3, 0x80)])
def test_unframe_rejects_header_bytes(pos: int, value: int) -> None:
    msg = framing.frame(b"data", 8192, 64)
    msg[pos] = value
    with pytest.raises(IntegrityError):
        framing.unframe(msg)


@SETTINGS
@given(st.integers(0, 200), st.integers(1, 1 << 32 - 1))
def test_unframe_rejects_inner_length_beyond_message(size: int, excess: int) -> None:
    msg = bytearray(framing.frame_header(0)) + bytes(size)
    claimed = min(size + excess, (1 << 32) - 1)
    msg[4:8] = claimed.to_bytes(4, "big")
    with pytest.raises(IntegrityError):
        framing.unframe(msg)
    msg[4:8] = size.to_bytes(4, "big")  # exactly filling the message, no padding: accepted
    assert framing.unframe(msg).nbytes == size


@pytest.mark.parametrize("msg", [b"", b"\x01", b"\x01\x00\x00\x00\x00\x00\x00"])
def test_unframe_rejects_short(msg: bytes) -> None:
    with pytest.raises(IntegrityError):
        framing.unframe(msg)
