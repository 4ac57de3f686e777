"""The messages between pipeline stages: frozen, slotted, typed, and free of keys.

Write side (the one route for file content: ``Vault.put``, import, and the mount's writes)::

    FileJob ─► chunker ─► Piece ─► coordinate ─► ToSeal | Placed ─► mixer ─► SealedObject | Placed
            ─► writer ─► Stored | Placed ─► collector

A ``token`` names the file a piece belongs to (the engine keeps the mapping); ``index`` is the
piece's position in the file and ``final`` marks the file's last piece (which may be empty, so a
file that ends on a chunk boundary, or an empty file, still tells the collector it is complete).
A :class:`ToSeal` is a full chunk (``piece`` says where it belongs once stored) or a closed data
pack (no ``piece``: its members were placed when they were appended).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import BinaryIO

from ..engine.format.refs import Blob
from .mixer import Sealed


@dataclass(frozen=True, slots=True)
class Planned:
    """A file given piece by piece (the mount's patch): new bytes, or a blob kept from the old file.
    Every piece but the last is a full chunk."""

    pieces: tuple[bytes | Blob, ...]


#: what a file's content can come from
Source = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO | AsyncIterable[bytes] | Planned


@dataclass(frozen=True, slots=True)
class FileJob:
    token: int
    source: Source
    size_hint: int = -1  # the size a scan saw (a path source), or -1: lets the chunker batch small files


@dataclass(frozen=True, slots=True)
class Piece:
    token: int
    index: int
    final: bool
    data: bytes
    kept: Blob | None = None  # a blob the file keeps as it is (``data`` is then empty)
    blob_id: bytes | None = None  # its keyed id, when the chunker computed it in its reading thread
    #: the chunker's reading thread tried compressing it too: ``frame`` is the outcome (None: store as is)
    squeezed: bool = False
    frame: bytes | None = None

    def __len__(self) -> int:
        return len(self.data)


@dataclass(frozen=True, slots=True)
class Placed:
    """A piece whose place is settled: stored (or found stored), in the open pack, or inline."""

    token: int
    index: int
    final: bool
    size: int  # plaintext bytes of this piece
    blob: Blob | None = None  # None for inline or empty pieces
    inline: bytes | None = None
    deduped: bool = False

    def __len__(self) -> int:
        return self.size


@dataclass(frozen=True, slots=True)
class ToSeal:
    """Seal ``data`` as object ``name`` of ``kind`` and upload it create-only."""

    kind: int
    name: str
    data: bytes | bytearray  # a closed pack hands over its buffer
    pad_floor: int | None = None  # None: the mixer's; a full pack is padded to a full chunk's size
    piece: Placed | None = None  # a full chunk: the piece that waits for it (its blob the chunk's ref)

    def __len__(self) -> int:
        return len(self.data)


@dataclass(frozen=True, slots=True)
class SealedObject:
    name: str
    obj: Sealed  # the object in a mixer slot; the writer releases it
    piece: Placed | None

    def __len__(self) -> int:
        return len(self.obj)


@dataclass(frozen=True, slots=True)
class Stored:
    """Object ``name`` (``size`` bytes) is durable: ``created`` by this upload, or found there."""

    name: str
    size: int
    created: bool
    piece: Placed | None  # a full chunk's piece (its blob the chunk's BlobRef), None for a pack
