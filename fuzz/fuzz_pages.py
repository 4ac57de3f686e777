"""Catalog pages and entries (engine/format/pages.py) and their way into the tree (catalog.node_from_entry).

Input: one mode byte, then the body.

* 0: the body as page bytes, decoded strictly; a decoded page must re-encode to the same bytes.
* 1: the body as page bytes sealed by a co-writer (fixed test keys) into a page pack between
  other bytes, with a correct keyed page id: read back through ``BlobReader.read`` exactly as
  the catalog does, so the fuzzer gets past the AEAD and the id check into the page parser.
* 2: the body as JSON, parsed as one entry and as one blob ref of every kind set.
"""

from __future__ import annotations

from sigmavault.backends.memory import MemoryBackend
from sigmavault.engine.catalog.pagestore import entry_from_node, node_from_entry
from sigmavault.engine.format import canonical, pages
from sigmavault.engine.keys.schedule import KIND_CHUNK, KIND_DATA_PACK, KIND_PAGE_PACK
from sigmavault.engine.repo.reader import BlobReader
from sigmavault.engine.repo.store import ObjectStore

from .common import CHUNK_SIZE, EPOCH, KEYS, PAD_FLOOR, SEALER, allowed, run

PACK = KEYS.pack_name(KIND_PAGE_PACK, bytes(32))


def _decode(raw: bytes) -> None:
    page = allowed(pages.decode_page, raw, chunk_size=CHUNK_SIZE)
    if page is None:
        return
    assert pages.encode_page(page) == raw, "a decoded page must be canonical"
    for e in page.entries:  # a co-writer's entry survives our rewrite of its directory unchanged
        assert entry_from_node(e.name, node_from_entry(e)) == e


async def _sealed(raw: bytes, before: int) -> None:
    stored = bytes(before) + raw + b"tail"
    backend = MemoryBackend()
    await backend.put_if_absent(PACK, SEALER.seal(KIND_PAGE_PACK, PACK, stored))
    store = BlobReader(ObjectStore(backend, {EPOCH: KEYS}, EPOCH, CHUNK_SIZE, PAD_FLOOR))
    ref = pages.BlobRef(EPOCH, KIND_PAGE_PACK, KEYS.page_id_of(raw), PACK, before, len(raw), None)
    blob = await store.read(ref)
    assert blob == raw
    _decode(blob)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0] % 3, data[1:]
    if mode == 0:
        _decode(body)
    elif mode == 1:
        if len(body) + 64 < CHUNK_SIZE:
            run(_sealed(body[1:], body[0] if body else 0))
    else:
        value = allowed(canonical.loads, body)
        if value is None:
            return
        allowed(pages.entry_from_json, value)
        for kinds in ((KIND_PAGE_PACK,), (KIND_CHUNK, KIND_DATA_PACK), pages.REF_KINDS):
            allowed(pages.ref_from_json, value, kinds)
        if isinstance(value, dict) and isinstance(value.get("entries"), list):
            for e in value["entries"]:
                allowed(pages.entry_from_json, e)
