"""A Bloom filter over blob ids, so that a write asks the cache's worker thread only about blobs it may hold.

Blob ids are keyed PRF outputs, uniformly random already: a filter's bit positions are read
straight from an id's bytes, no hashing. Four bits per id in a table of at least sixteen bits per
id give about 0.2 % false positives (a wasted lookup, never a wrong answer); a full table gets a
twice larger successor for the ids that follow, so the filter grows with the index. Ids are never
removed (a forgotten row only costs a wasted lookup).
"""

from __future__ import annotations

from collections.abc import Iterable

PROBES = 4
BITS_PER_ID = 16


class _Table:
    __slots__ = ("bits", "count", "mask", "room")

    def __init__(self, capacity: int) -> None:
        size = 1 << max(16, (capacity * BITS_PER_ID - 1).bit_length())
        self.bits = bytearray(size >> 3)
        self.mask = size - 1
        self.room = size // BITS_PER_ID
        self.count = 0

    def add(self, h: int) -> None:
        for _ in range(PROBES):
            p = h & self.mask
            self.bits[p >> 3] |= 1 << (p & 7)
            h >>= 32
        self.count += 1

    def has(self, h: int) -> bool:
        for _ in range(PROBES):
            p = h & self.mask
            if not self.bits[p >> 3] >> (p & 7) & 1:
                return False
            h >>= 32
        return True


class IdFilter:
    """Says whether an id was added ("maybe") or certainly not. Not thread-safe: one owner at a time."""

    def __init__(self, ids: Iterable[bytes] = (), capacity: int = 1 << 12) -> None:
        self._tables = [_Table(capacity)]
        self.update(ids)

    def update(self, ids: Iterable[bytes]) -> None:
        for i in ids:
            self.add(i)

    def add(self, blob_id: bytes) -> None:
        last = self._tables[-1]
        if last.count >= last.room:
            last = _Table(2 * last.room)
            self._tables.append(last)
        last.add(int.from_bytes(blob_id[:16], "little"))

    def __contains__(self, blob_id: bytes) -> bool:
        h = int.from_bytes(blob_id[:16], "little")
        return any(t.has(h) for t in self._tables)
