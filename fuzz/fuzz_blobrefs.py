"""Blob refs written by a co-writer, read against real objects (engine/format/pages.py refs, store.py, writer.py).

A co-writer holds the keys and chooses every field of a ref: kind, epoch, object name, offset,
length, object length and id. Here the store holds one real data pack, one real chunk and one
real page pack (fixed test keys); the fuzzer builds refs to them (or to nothing) field by field,
with the correct keyed id of the slice it names or a wrong one, and reads them through
``BlobReader.read`` and as a file's blob list through ``content.reader.read_blobs``.

Input: groups of 16 bytes, one ref each: target, epoch, id choice, compression choice, then u32
offset, u32 length and u32 object-length delta (signed: the real length plus or minus); a
trailing u32 is the read offset into the file. With the compression choice's low bit a ref
carries ``z`` (the slice is a zstd frame): its ``len`` is what the slice truly inflates to, or,
with the next bit, a length chosen by the fuzzer; one more target is a data pack holding a real
frame and a bomb (a frame that inflates to 64 MiB).
"""

from __future__ import annotations

import contextlib
from typing import Any

import zstandard

from sigmavault.backends.memory import MemoryBackend
from sigmavault.engine.content import reader as content
from sigmavault.engine.errors import VaultError
from sigmavault.engine.format import pages
from sigmavault.engine.format.canonical import b64u
from sigmavault.engine.keys.schedule import KIND_CHUNK, KIND_DATA_PACK, KIND_PAGE_PACK
from sigmavault.engine.repo.reader import BlobReader
from sigmavault.engine.repo.store import ObjectStore

from .common import CHUNK_SIZE, EPOCH, KEYS, PAD_FLOOR, SEALER, allowed, run

PACK_DATA = bytes(i * 7 % 251 for i in range(3000))
CHUNK_DATA = bytes(i * 13 % 253 for i in range(2000))
FRAME = zstandard.ZstdCompressor(level=3).compress(PACK_DATA * 4)
ZPACK_DATA = FRAME + zstandard.ZstdCompressor(level=3).compress(bytes(64 << 20))
DATA_PACK = KEYS.pack_name(KIND_DATA_PACK, bytes(32))
ZPACK = KEYS.pack_name(KIND_DATA_PACK, bytes(31) + b"z")
PAGE_PACK = KEYS.pack_name(KIND_PAGE_PACK, bytes(32))
CHUNK = KEYS.chunk_name(KEYS.chunk_id_of(CHUNK_DATA))
OBJECTS = {
    DATA_PACK: SEALER.seal(KIND_DATA_PACK, DATA_PACK, PACK_DATA),
    PAGE_PACK: SEALER.seal(KIND_PAGE_PACK, PAGE_PACK, PACK_DATA),
    CHUNK: SEALER.seal(KIND_CHUNK, CHUNK, CHUNK_DATA),
    ZPACK: SEALER.seal(KIND_DATA_PACK, ZPACK, ZPACK_DATA),
}
# (kind, object name, stored bytes) a ref may point at; the last one names a missing object
TARGETS = (
    (KIND_DATA_PACK, DATA_PACK, PACK_DATA),
    (KIND_CHUNK, CHUNK, CHUNK_DATA),
    (KIND_PAGE_PACK, PAGE_PACK, PACK_DATA),
    (KIND_DATA_PACK, CHUNK, CHUNK_DATA),
    (KIND_CHUNK, DATA_PACK, PACK_DATA),
    (KIND_DATA_PACK, "o/" + "0" * 64, b""),
    (KIND_DATA_PACK, ZPACK, ZPACK_DATA),
)


def _u32(b: bytes) -> int:
    return int.from_bytes(b.ljust(4, b"\0"), "big")


def _ref_json(group: bytes) -> dict[str, Any]:
    kind, name, stored = TARGETS[group[0] % len(TARGETS)]
    off, length = _u32(group[4:8]) % 4096, _u32(group[8:12]) % 4096
    if group[0] & 0x80:  # far-out values too, to reach the range checks
        off, length = _u32(group[4:8]), _u32(group[8:12])
    piece = stored[off : off + length]
    zlen = None
    if group[3] & 1:  # the slice as a zstd frame: len is what it truly inflates to, or the fuzzer's
        zlen, plain = length, b""
        with contextlib.suppress(zstandard.ZstdError):
            plain = zstandard.ZstdDecompressor().stream_reader(piece).read(CHUNK_SIZE + 1)  # a bomb: cut
        length = _u32(group[12:16]) % (2 * CHUNK_SIZE) if group[3] & 2 else len(plain)
        piece = plain
    blob_id = KEYS.page_id_of(piece) if kind == KIND_PAGE_PACK else KEYS.chunk_id_of(piece)
    if group[2] & 1:
        blob_id = bytes(32)
    real = len(OBJECTS.get(name, b""))
    delta = int.from_bytes(group[12:16].ljust(4, b"\0"), "big", signed=True)
    ref: dict[str, Any] = {
        "e": group[1] % 3, "k": kind, "id": b64u(blob_id), "o": name, "off": off, "len": length,
    }
    if kind != KIND_PAGE_PACK:
        ref["ol"] = max(real + (delta if group[2] & 2 else 0), 0)
    if zlen is not None:
        ref["z"] = zlen
    return ref


async def _read(refs: list[pages.BlobRef], offset: int) -> None:
    store = BlobReader(ObjectStore(MemoryBackend(dict(OBJECTS)), {EPOCH: KEYS}, EPOCH, CHUNK_SIZE, PAD_FLOOR))
    for ref in refs:
        with contextlib.suppress(VaultError):
            await store.read(ref)
    data = [r for r in refs if r.kind != KIND_PAGE_PACK and r.length]
    total = 0
    with contextlib.suppress(VaultError):
        async with contextlib.aclosing(content.read_blobs(store, data, offset, 4)) as parts:
            async for part in parts:
                total += len(part)
    assert total <= sum(r.length for r in data)


def test_one_input(data: bytes) -> None:
    refs: list[pages.BlobRef] = []
    for i in range(0, min(len(data), 16 * 8) - 15, 16):
        ref = allowed(pages.ref_from_json, _ref_json(data[i : i + 16]), pages.REF_KINDS)
        if ref is not None:
            refs.append(ref)
    offset = _u32(data[-4:]) if len(data) % 16 >= 4 else 0
    run(_read(refs, offset))
