"""What the kept generations reference, and how much of each pack they still use (prune's P1).

:class:`Refs` walks trees and collects object names and, for every pack, the places of its live
members; :class:`PackUsage` measures the packs against ``--max-unused``: those over it are the ones a
prune repacks (:meth:`..rewriting.Rewriter.repack`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..catalog.pagestore import Catalog
from ..catalog.tree import Dir, File
from ..errors import IntegrityError, ObjectMissing, VaultError
from ..format.pages import BlobRef
from ..keys.schedule import KIND_CHUNK


class Refs:
    """What the kept generations reference: object names, and the used bytes of each pack."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.names: set[str] = set()
        self.used: dict[str, set[tuple[int, int]]] = {}  # pack object -> (off, len) of its live blobs
        self.seen: set[tuple[tuple[str, int], ...]] = set()

    def add(self, ref: BlobRef) -> None:
        self.names.add(ref.object_name)
        if ref.kind != KIND_CHUNK:
            self.used.setdefault(ref.object_name, set()).add((ref.off, ref.stored_len))

    async def walk(self, root: Dir) -> None:
        stack = [root]
        while stack:
            d = stack.pop()
            key = tuple((p.object_name, p.off) for p in d.pages)
            if key in self.seen:
                continue
            self.seen.add(key)
            for ref in d.pages:
                self.add(ref)
            try:
                kids = await self.catalog.load(d)
            except VaultError as exc:  # a missing object stays ObjectMissing (a drop's walk waits on it)
                raise (ObjectMissing if isinstance(exc, ObjectMissing) else IntegrityError)(
                    f"prune stopped, nothing deleted: a directory does not load ({exc.message}); "
                    "run `sigmavault verify`"
                ) from None
            for node in kids.values():
                if isinstance(node, Dir):
                    stack.append(node)
                elif isinstance(node, File):
                    for b in node.blobs:
                        if isinstance(b, BlobRef):
                            self.add(b)


@dataclass(frozen=True, slots=True)
class PackUsage:
    """The packs the kept generations use, and those whose unused share is over the limit."""

    packs: int
    over: frozenset[str]  # packs over the limit
    unused: int  # their unused bytes

    @classmethod
    def of(cls, refs: Refs, sizes: Mapping[str, int], max_unused: float) -> PackUsage:
        """Dead bytes of a pack: the gaps between live members (members are back to back, so a gap
        is a member nobody references); a dead tail and the padding are not counted."""
        packs = unused_all = 0
        over = set()
        for name, blobs in refs.used.items():
            size = sizes.get(name)
            if not size:
                continue
            packs += 1
            end = unused = 0
            for off, length in sorted(blobs):
                unused += max(0, off - end)
                end = max(end, off + length)
            if unused / size > max_unused:
                over.add(name)
                unused_all += unused
        return cls(packs, frozenset(over), unused_all)


__all__ = ["PackUsage", "Refs"]
