"""Object envelope and chunked AEAD records (engine/format/envelope.py, aead.py, framing.py).

Input: one mode byte, then the body.

* 0: the body is a stored object (header ‖ salt ‖ commitment ‖ records) opened as every kind,
  whole and into a reused buffer; and its clear header is peeked as a commit's.
* 1: the body is a bare chunked ciphertext opened with a fixed key.
* 2: a ranged read: 3 × u32 (object length from the catalog, offset, length), then the bytes
  the server returns for the head and for the records.
* 3: a *valid* seal of a hostile framed message (version, compression, reserved, stored_len,
  padding all chosen by the fuzzer): the AEAD opens, the framing parser must hold.
* 4: a valid object of the body as stored bytes, read back by range with fuzzed offsets.
"""

from __future__ import annotations

from sigmavault.engine.format import aead as chunked
from sigmavault.engine.format import commits
from sigmavault.engine.format import envelope as objects
from sigmavault.engine.keys.schedule import KIND_CHUNK, KIND_COMMIT, KIND_DATA_PACK, KIND_PAGE_PACK

from .common import CHUNK_SIZE, SEALER, allowed

NAME = "o/" + "ab" * 32
KINDS = (KIND_CHUNK, KIND_PAGE_PACK, KIND_COMMIT, KIND_DATA_PACK)
_BUF = bytearray(8 + CHUNK_SIZE)
_PRK = bytes(32)


def _u32(b: bytes, i: int) -> int:
    return int.from_bytes(b[4 * i : 4 * i + 4].ljust(4, b"\0"), "big")


def _ranged(obj_len: int, off: int, length: int, served: bytes, kind: int) -> None:
    plan = allowed(SEALER.range_plan, obj_len, off, length)
    if plan is None:
        return
    sp, (lo, hi) = plan
    head, records = served[: objects.HDR + chunked.HEAD], served[lo:hi]
    out = allowed(SEALER.open_range, kind, NAME, head, sp, records, off, length)
    assert out is None or len(out) <= length


def test_one_input(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0] % 5, data[1:]
    if mode == 0:
        for kind in KINDS:
            allowed(SEALER.open, kind, NAME, body)
            allowed(SEALER.open, kind, NAME, body, expected_len=len(body))
            allowed(SEALER.open_into, kind, NAME, body, _BUF)
        allowed(commits.peek_epoch, body)
    elif mode == 1:
        allowed(chunked.open, _PRK, b"ctx", body)
        allowed(chunked.open_into, _PRK, b"ctx", body, _BUF)
    elif mode == 2:
        kind = KIND_CHUNK if body[:1] < b"\x80" else KIND_DATA_PACK
        _ranged(_u32(body, 0), _u32(body, 1), _u32(body, 2), body[12:], kind)
    elif mode == 3:
        kind = KINDS[body[0] % 4] if body else KIND_CHUNK
        hdr = objects.header(SEALER.keys.epoch)
        ctx = objects.context(SEALER.keys.vault_id, kind, NAME, hdr)
        obj = hdr + chunked.seal(SEALER.keys.enc_key(kind), ctx, body[1:])
        stored = allowed(SEALER.open, kind, NAME, obj)
        again = allowed(SEALER.open_into, kind, NAME, obj, _BUF)
        assert (stored is None) == (again is None)
        if stored is not None and again is not None:
            assert bytes(stored) == bytes(again)
    else:
        params, plain = body[:8], body[8:]
        kind = KIND_CHUNK if params[:1] < b"\x80" else KIND_DATA_PACK
        obj = SEALER.seal(kind, NAME, plain)
        off, length = _u32(params, 0) % (len(plain) + 2), _u32(params, 1) % (len(plain) + 2)
        sp_plan = allowed(SEALER.range_plan, len(obj), off, length)
        if sp_plan is None:
            assert off + length > len(plain)  # only a range beyond the stored bytes may be refused
            return
        sp, (lo, hi) = sp_plan
        got = allowed(SEALER.open_range, kind, NAME, obj[: objects.HDR + chunked.HEAD], sp, obj[lo:hi], off, length)
        if off + length <= len(plain):
            assert got == plain[off : off + length], "a valid range of a valid object must read back"
