"""The messages between pipeline stages: frozen, slotted, and free of keys.

Write side::

    FileJob ─► chunker ─► Piece ─► coordinate ─► ToSeal | Placed ─► mixer ─► Sealed | Placed ─► writer ─► Placed

A ``token`` names the file a piece belongs to (the engine keeps the mapping); ``index`` is the
piece's position in the file and ``final`` marks the file's last piece (which may be empty, so a
file that ends on a chunk boundary, or an empty file, still tells the collector it is complete).
``blob`` is an opaque ref the engine understands (a blob ref or a pending pack member).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .mixer import Sealed


@dataclass(frozen=True, slots=True)
class FileJob:
    token: int
    source: Any  # a local path, bytes, a binary file object or an async iterator of bytes
    size_hint: int = -1  # the size a scan saw (a path source), or -1: lets the chunker batch small files


@dataclass(frozen=True, slots=True)
class Piece:
    token: int
    index: int
    final: bool
    data: bytes

    def __len__(self) -> int:
        return len(self.data)


@dataclass(frozen=True, slots=True)
class ToSeal:
    """A full chunk not yet stored: seal it as object ``name`` and upload it."""

    token: int
    index: int
    final: bool
    ref: Any  # the blob ref it will have once stored
    name: str
    data: bytes

    def __len__(self) -> int:
        return len(self.data)


@dataclass(frozen=True, slots=True)
class SealedChunk:
    token: int
    index: int
    final: bool
    ref: Any
    name: str
    obj: Sealed  # the object in a mixer slot; the writer releases it

    def __len__(self) -> int:
        return len(self.obj)


@dataclass(frozen=True, slots=True)
class Placed:
    """A piece whose place is settled: stored (or found stored), in the open pack, or inline."""

    token: int
    index: int
    final: bool
    size: int  # plaintext bytes of this piece
    blob: Any = None  # None for inline or empty pieces
    inline: bytes | None = None
    uploaded: int = 0  # bytes of new objects this piece caused
    deduped: bool = False

    def __len__(self) -> int:
        return self.size
