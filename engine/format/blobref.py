"""Blob refs: where one blob lives (CRYPTO.md §4.5; pure, synchronous). Split from :mod:`.pages`,
which re-exports them::

    ref   = {"e":epoch,"k":1|2|4,"id":b64u(32 B),"o":"o/<64 lowercase hex>","off":int,"len":int,
             "ol":int}                                      # "ol" for kinds 1 and 4, never for kind 2
    zstd  = {…a kind-4 ref, plus "z":int}    # a compressed member: "z" bytes of zstd frame at "off",
                                            # which inflate to exactly "len" (<= chunk_size) bytes
    drop  = {…a data ref (kind 1 or 4) with "o":"d/<32 hex writer id>/o/<64 hex>", and one of
             "dk": b64u(32 B drop key)   in the vault's own pages: an ingested drop's object
             "ds": seq                   in a drop's own pages: an object of that writer's earlier drop seq}
            # neither inside a drop's own pages for its own objects (the owner takes that key from the record)
"""

from __future__ import annotations

import re
from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from typing import Any

from ..keys.schedule import KIND_CHUNK, KIND_DATA_PACK, KIND_PAGE_PACK
from .aead import COMMITMENT, SALT, TAG
from .canonical import b64u, fail, unb64u
from .envelope import HDR
from .framing import FRAME_HEADER

ID_LEN = 32
MAX_U32 = (1 << 32) - 1
MAX_I64 = (1 << 63) - 1
# The smallest object that can hold stored[off:off+len]: header, salt, commitment, one tag, frame header.
MIN_OVERHEAD = HDR + SALT + COMMITMENT + TAG + FRAME_HEADER
DATA_KINDS = (KIND_CHUNK, KIND_DATA_PACK)
REF_KINDS = (KIND_CHUNK, KIND_PAGE_PACK, KIND_DATA_PACK)
DROP_KEY_LEN = 32
_OBJECT_NAME = re.compile(r"(?:d/[0-9a-f]{32}/)?o/[0-9a-f]{64}")


# --- blob refs --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlobRef:
    """Where one blob lives: ``stored[off:off+length]`` of object ``object_name`` of ``kind``.

    ``object_len`` is the total object length for kinds 1 and 4 (ranged reads check the
    server's length against it) and ``None`` for kind 2 (page packs are fetched whole).
    ``zlen`` (JSON ``z``) marks a zstd-compressed member of a data pack: the pack holds ``zlen``
    bytes at ``off`` that inflate to the ``length`` plaintext bytes the id is computed over.
    """

    epoch: int
    kind: int
    id: bytes
    object_name: str
    off: int
    length: int
    object_len: int | None
    #: the drop key of an ingested write-only drop's object (``d/…`` names, kinds 1 and 4 only)
    drop_key: bytes | None = field(default=None, repr=False)
    #: in a drop's own pages: the seq of the writer's earlier drop that holds this object (its dedup)
    drop_seq: int | None = None
    #: a compressed data-pack member: the length of its zstd frame inside the pack (None: stored as is)
    zlen: int | None = None

    @property
    def stored_len(self) -> int:
        """The bytes this blob takes in its object: its zstd frame's or its plaintext's."""
        return self.length if self.zlen is None else self.zlen

    @property
    def writer(self) -> bytes | None:
        """The write-only client whose drop holds this object (``d/<writer>/o/…``), else None."""
        return bytes.fromhex(self.object_name[2:34]) if self.object_name[0] == "d" else None

    def __post_init__(self) -> None:
        if type(self.kind) is not int or self.kind not in REF_KINDS:
            raise ValueError("blob ref kind must be 1, 2 or 4")
        if type(self.epoch) is not int or not 0 <= self.epoch <= MAX_U32:
            raise ValueError("epoch out of range")
        if not isinstance(self.id, bytes) or len(self.id) != ID_LEN:
            raise ValueError("blob id must be 32 bytes")
        if not isinstance(self.object_name, str) or not _OBJECT_NAME.fullmatch(self.object_name):
            raise ValueError("object name must be 'o/' and 64 lowercase hex digits")
        if self.drop_key is not None and (
            type(self.drop_key) is not bytes or len(self.drop_key) != DROP_KEY_LEN
            or self.kind not in DATA_KINDS or self.object_name[0] != "d"
        ):
            raise ValueError("a drop key belongs to a data ref of a drop object")
        if self.drop_seq is not None and (
            type(self.drop_seq) is not int or not 1 <= self.drop_seq <= MAX_I64 or self.drop_key is not None
            or self.kind not in DATA_KINDS or self.object_name[0] != "d"
        ):
            raise ValueError("an earlier drop's seq belongs to a data ref of a drop object without a key")
        for value in (self.off, self.length):
            if type(value) is not int or not 0 <= value <= MAX_I64:
                raise ValueError("offset or length out of range")
        if self.zlen is not None and (type(self.zlen) is not int or self.kind != KIND_DATA_PACK
                                      or not 0 < self.zlen < self.length):
            raise ValueError("only a data-pack member is compressed, and then to fewer bytes")
        if self.kind == KIND_PAGE_PACK:
            if self.object_len is not None:
                raise ValueError("a page-pack ref carries no object length")
        else:
            ol = self.object_len
            if type(ol) is not int or not 0 <= ol <= MAX_I64 or self.off + self.stored_len + MIN_OVERHEAD > ol:
                raise ValueError("object length missing or too small for the blob")
            if self.kind == KIND_CHUNK and self.off != 0:
                raise ValueError("a full chunk starts at offset 0")


def ref_to_json(ref: BlobRef) -> dict[str, Any]:
    """The JSON value of a blob ref (before ``canonical.dumps``)."""
    out: dict[str, Any] = {
        "e": ref.epoch, "k": ref.kind, "id": b64u(ref.id), "o": ref.object_name, "off": ref.off, "len": ref.length,
    }
    if ref.object_len is not None:
        out["ol"] = ref.object_len
    if ref.drop_key is not None:
        out["dk"] = b64u(ref.drop_key)
    if ref.drop_seq is not None:
        out["ds"] = ref.drop_seq
    if ref.zlen is not None:
        out["z"] = ref.zlen
    return out


_REF_FIELDS = {"e", "k", "id", "o", "off", "len"}
_PAGE_REF_KEYS = frozenset(_REF_FIELDS)
_DATA_REF_KEYS = frozenset(_REF_FIELDS | {"ol"})
_DROP_REF_KEYS = (frozenset(_DATA_REF_KEYS | {"dk"}), frozenset(_DATA_REF_KEYS | {"ds"}))


def ref_from_json(value: object, kinds: Sequence[int]) -> BlobRef:
    """Parse an untrusted blob ref whose kind must be one of ``kinds``. Raises IntegrityError.

    Its fields are checked once, by :class:`BlobRef` itself (each integer exactly an ``int`` in
    range, the object name's form, the id's length): a catalog page holds tens of thousands of refs.
    """
    if not isinstance(value, dict):
        fail("ref")
    kind = value.get("k")
    if type(kind) is not int or kind not in kinds:
        fail("ref kind")
    keys: Set[str] = value.keys()
    if "z" in value:  # a compressed data-pack member (BlobRef checks the rest)
        keys = keys - {"z"}
    if keys != (_PAGE_REF_KEYS if kind == KIND_PAGE_PACK else _DATA_REF_KEYS) and (
        kind == KIND_PAGE_PACK or keys not in _DROP_REF_KEYS
    ):
        fail("ref fields")
    dk = value.get("dk")
    try:
        return BlobRef(value["e"], kind, unb64u(value["id"], ID_LEN), value["o"], value["off"], value["len"],
                       value.get("ol"), None if dk is None else unb64u(dk, DROP_KEY_LEN), value.get("ds"),
                       value.get("z"))
    except ValueError:
        fail("ref")


__all__ = ["DATA_KINDS", "ID_LEN", "MIN_OVERHEAD", "REF_KINDS", "BlobRef", "ref_from_json", "ref_to_json"]
