"""The object envelope of CRYPTO.md §3.2 (pure): header, context, seal and open for all kinds.

Byte layout of a stored object::

    hdr    = u8 format (0x01) ‖ u8 suite (0x01 = c2sp-chunked-v1/AES-256-GCM) ‖ u32 epoch      # 6 bytes
    object = hdr ‖ seal(K_kind,epoch, ctx, framed msg)
    ctx    = "vault/v1/object\\0" ‖ vault_id ‖ u8 kind ‖ lp(object name) ‖ hdr

The expected kind, name and epoch always come from an authenticated reference (catalog or
commit), never from the server: ``open_object`` is told them and rejects anything else with
the one integrity error.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..keys.schedule import KIND_CHUNK, KIND_COMMIT, KIND_DATA_PACK, KIND_PAGE_PACK, EpochKeys
from . import aead as chunked
from .canonical import fail
from .framing import FRAME_HEADER, frame_header, framed_len, unframe

FORMAT = 0x01
SUITE = 0x01
HDR = 6
KINDS = (KIND_CHUNK, KIND_PAGE_PACK, KIND_COMMIT, KIND_DATA_PACK)


def lp(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError("lp field too long")
    return len(data).to_bytes(2, "big") + data


def header(epoch: int) -> bytes:
    return bytes([FORMAT, SUITE]) + epoch.to_bytes(4, "big")


def context(vault_id: bytes, kind: int, name: str, hdr: bytes) -> bytes:
    return b"vault/v1/object\x00" + vault_id + bytes([kind]) + lp(name.encode("ascii")) + hdr


def object_len(stored_len: int, chunk_size: int, pad_floor: int) -> int:
    return HDR + chunked.sealed_len(framed_len(stored_len, chunk_size, pad_floor))


@dataclass(frozen=True, slots=True)
class Sealer:
    """Seals and opens objects of one vault epoch. Holds subkeys; its repr shows none."""

    keys: EpochKeys
    chunk_size: int
    pad_floor: int = 4096

    def _ctx(self, kind: int, name: str, hdr: bytes) -> bytes:
        if kind not in KINDS:
            raise ValueError("unknown kind")
        return context(self.keys.vault_id, kind, name, hdr)

    def seal(
        self, kind: int, name: str, stored: bytes | bytearray | memoryview, *, pad_floor: int | None = None,
        salt: bytes | None = None,
    ) -> bytes:
        """Frame, pad and seal ``stored`` as object ``name`` of ``kind``. ``salt`` only for KATs."""
        floor = self.pad_floor if pad_floor is None else pad_floor
        out = bytearray(object_len(len(memoryview(stored).cast("B")), self.chunk_size, floor))
        self.seal_into(kind, name, stored, out, pad_floor=floor, salt=salt)
        return bytes(out)

    def seal_into(
        self, kind: int, name: str, stored: bytes | bytearray | memoryview, out: bytearray | memoryview, *,
        pad_floor: int | None = None, salt: bytes | None = None,
    ) -> int:
        """Like :meth:`seal`, writing the object into the start of ``out`` (a reused buffer); returns its length.

        The framed message is never assembled in memory (``chunked.seal_padded_into``). Raises
        ValueError if ``out`` is too small or ``stored`` exceeds the chunk size.
        """
        floor = self.pad_floor if pad_floor is None else pad_floor
        n = len(memoryview(stored).cast("B"))
        msg_len = framed_len(n, self.chunk_size, floor)
        total = HDR + chunked.sealed_len(msg_len)
        mv_out = memoryview(out).cast("B")
        if len(mv_out) < total:
            raise ValueError("output buffer too small")
        hdr = header(self.keys.epoch)
        ctx = self._ctx(kind, name, hdr)
        mv_out[:HDR] = hdr
        chunked.seal_padded_into(self.keys.enc_key(kind), ctx, frame_header(n), stored, msg_len, mv_out[HDR:], salt)
        return total

    def open(
        self, kind: int, name: str, obj: bytes | bytearray | memoryview, expected_len: int | None = None
    ) -> memoryview:
        """Open an object and return its stored bytes. Raises IntegrityError on any mismatch."""
        mv = memoryview(obj).cast("B")
        if expected_len is not None and len(mv) != expected_len:
            fail("object length")
        if len(mv) < HDR or bytes(mv[:HDR]) != header(self.keys.epoch):
            fail("header")
        msg = chunked.open(self.keys.enc_key(kind), self._ctx(kind, name, bytes(mv[:HDR])), mv[HDR:])
        return unframe(msg)

    def open_into(
        self, kind: int, name: str, obj: bytes | bytearray | memoryview, out: bytearray | memoryview,
        expected_len: int | None = None,
    ) -> memoryview:
        """Like :meth:`open`, decrypting into ``out`` (a reused buffer of at least ``8 + chunk_size``
        bytes); returns the stored bytes as a view into ``out``. Raises IntegrityError on any mismatch
        (then ``out`` holds no unverified plaintext)."""
        mv = memoryview(obj).cast("B")
        if expected_len is not None and len(mv) != expected_len:
            fail("object length")
        if len(mv) < HDR or bytes(mv[:HDR]) != header(self.keys.epoch):
            fail("header")
        ctx = self._ctx(kind, name, bytes(mv[:HDR]))
        n = chunked.open_into(self.keys.enc_key(kind), ctx, mv[HDR:], out)
        return unframe(memoryview(out).cast("B")[:n])

    # --- ranged reads (§3.5): kinds 1 and 4 only, total length from the catalog ------------

    def range_plan(self, obj_len: int, off: int, length: int) -> tuple[chunked.RecordSpan, tuple[int, int]]:
        """Which bytes to fetch for ``stored[off:off+length]``: the span and the object byte range.

        The caller fetches ``object[0:HDR+56]`` (header, salt, commitment) and
        ``object[HDR+span.ct_start : HDR+span.ct_end]``.
        """
        sp = chunked.span(obj_len - HDR, FRAME_HEADER + off, length)
        return sp, (HDR + sp.ct_start, HDR + sp.ct_end)

    def open_range(
        self, kind: int, name: str, head: bytes, sp: chunked.RecordSpan, records: bytes, off: int, length: int
    ) -> bytes:
        """Open fetched records and return ``stored[off:off+length]`` (the caller checks it lies within stored_len)."""
        if kind not in (KIND_CHUNK, KIND_DATA_PACK) or len(head) != HDR + chunked.HEAD:
            fail("range")
        if head[:HDR] != header(self.keys.epoch):
            fail("header")
        plain = chunked.open_records(
            self.keys.enc_key(kind), self._ctx(kind, name, head[:HDR]), head[HDR:], sp, records
        )
        if sp.first == 0:
            # the first record starts with the frame header; check what it says
            mv = memoryview(plain)
            if len(mv) < FRAME_HEADER or bytes(mv[:4]) != frame_header(0)[:4]:
                fail("frame")
            stored_len = int.from_bytes(mv[4:8], "big")
            if FRAME_HEADER + off + length > FRAME_HEADER + stored_len:
                fail("range beyond stored")
        return plain[sp.skip : sp.skip + length]
