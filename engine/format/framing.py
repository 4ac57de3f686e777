"""PADMÉ padding and the message framing of CRYPTO.md §3.3 (pure).

Byte layout of a framed message::

    u8 version (1) ‖ u8 compression (0 none, 1 zstd) ‖ u16 reserved (0) ‖ u32 stored_len ‖ stored ‖ 0x00 × pad
    |msg| = min(max(pad_floor, PADME(8 + stored_len)), 8 + chunk_size)

Unframing requires the version, zero reserved bytes, all-zero padding and
``8 + stored_len ≤ |msg|``; anything else is the one integrity error.
"""

from __future__ import annotations

from .canonical import fail

FRAME_HEADER = 8
COMPRESSION_NONE = 0


def padme(length: int) -> int:
    """PADMÉ (Nikitin et al. 2019): round up so that at most ⌊log2 E⌋+1 low bits vary."""
    if length < 2:
        return length
    e = length.bit_length() - 1
    s = e.bit_length()  # ⌊log2 e⌋ + 1
    mask = (1 << (e - s)) - 1
    return (length + mask) & ~mask


def framed_len(stored_len: int, chunk_size: int, pad_floor: int) -> int:
    if stored_len < 0 or stored_len > chunk_size:
        raise ValueError("stored length exceeds the chunk size")
    return min(max(pad_floor, padme(FRAME_HEADER + stored_len)), FRAME_HEADER + chunk_size)


def frame_header(stored_len: int, compression: int = COMPRESSION_NONE) -> bytes:
    return bytes([1, compression, 0, 0]) + stored_len.to_bytes(4, "big")


def frame(stored: bytes | bytearray | memoryview, chunk_size: int, pad_floor: int) -> bytearray:
    n = len(stored)
    out = bytearray(framed_len(n, chunk_size, pad_floor))
    out[:FRAME_HEADER] = frame_header(n)
    out[FRAME_HEADER : FRAME_HEADER + n] = stored
    return out


def unframe(msg: bytes | bytearray | memoryview) -> memoryview:
    """Return the stored bytes (a view into ``msg``) after strict checks."""
    mv = memoryview(msg).cast("B")
    if len(mv) < FRAME_HEADER or mv[0] != 1 or mv[1] != COMPRESSION_NONE or mv[2] != 0 or mv[3] != 0:
        fail("frame")
    n = int.from_bytes(mv[4:8], "big")
    if FRAME_HEADER + n > len(mv):
        fail("frame length")
    pad = mv[FRAME_HEADER + n :]
    if pad.nbytes and (pad[0] != 0 or bytes(pad).count(0) != pad.nbytes):
        fail("padding")
    return mv[FRAME_HEADER : FRAME_HEADER + n]
