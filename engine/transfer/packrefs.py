"""What the kept generations reference, and how much of each pack they still use (prune's P1).

:class:`Refs` walks trees and collects object names, for every pack the places of its live
members, and the directory graph; :class:`PackUsage` measures the packs against ``--max-unused``, and
:func:`to_repack` closes the set a prune repacks (:meth:`..rewriting.Rewriter.repack`) over what the
repack itself leaves unused: a directory that moves is saved anew with its ancestors, so their old
pages die in packs that did not move; a pack that this leaves over the limit moves too, until none
does. Without that, a vault would repack a page pack or two at every prune (their roots' pages).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..catalog.pagestore import Catalog
from ..catalog.tree import Dir, File
from ..errors import IntegrityError, ObjectMissing, VaultError
from ..format.pages import BlobRef
from ..keys.schedule import KIND_CHUNK

Place = tuple[tuple[str, int], ...]  # a directory's pages by (object, offset)
Member = tuple[str, int, int]  # a pack member: (object, offset, stored length)


@dataclass(frozen=True, slots=True)
class DirRefs:
    """One directory, once per place: its pages, the packs its files' blobs live in, its subdirectories."""

    pages: tuple[Member, ...]
    packs: frozenset[str]
    kids: tuple[Place, ...]


class Refs:
    """What the kept generations reference: object names, and the used bytes of each pack."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.names: set[str] = set()
        self.used: dict[str, set[tuple[int, int]]] = {}  # pack object -> (off, len) of its live blobs
        self.seen: set[Place] = set()
        self.dirs: dict[Place, DirRefs] = {}  # every directory walked

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
            packs, subdirs = set(), []
            for node in kids.values():
                if isinstance(node, Dir):
                    stack.append(node)
                    subdirs.append(tuple((p.object_name, p.off) for p in node.pages))
                elif isinstance(node, File):
                    for b in node.blobs:
                        if isinstance(b, BlobRef):
                            self.add(b)
                            if b.kind != KIND_CHUNK:
                                packs.add(b.object_name)
            self.dirs[key] = DirRefs(tuple((p.object_name, p.off, p.stored_len) for p in d.pages), frozenset(packs),
                                     tuple(subdirs))


def _unused(members: set[tuple[int, int]]) -> int:
    """Dead bytes of a pack: the gaps between live members (members are back to back, so a gap is a
    member nobody references); a dead tail and the padding are not counted."""
    end = unused = 0
    for off, length in sorted(members):
        unused += max(0, off - end)
        end = max(end, off + length)
    return unused


@dataclass(frozen=True, slots=True)
class PackUsage:
    """The packs the kept generations use, and those whose unused share is over the limit."""

    packs: int
    over: frozenset[str]  # packs over the limit
    unused: int  # their unused bytes

    @classmethod
    def of(cls, refs: Refs, sizes: Mapping[str, int], max_unused: float) -> PackUsage:
        packs = unused_all = 0
        over = set()
        for name, blobs in refs.used.items():
            size = sizes.get(name)
            if not size:
                continue
            packs += 1
            unused = _unused(blobs)
            if unused / size > max_unused:
                over.add(name)
                unused_all += unused
        return cls(packs, frozenset(over), unused_all)


def to_repack(refs: Refs, sizes: Mapping[str, int], max_unused: float, over: set[str]) -> set[str]:
    """``over`` and every pack of ours (``o/``) its repack would leave over ``max_unused``: the
    directories that move (a page or a file's blob in a moving pack, or a subdirectory that moves, as
    the rewriter decides) are saved anew, so their pages that no directory staying still shares die
    where they are. Repeated until no pack is added; the repack then leaves every pack it does not
    move at most ``max_unused`` unused and its new ones fully used, so the next prune finds nothing
    more to repack."""
    parents: dict[Place, list[Place]] = {}
    for place, d in refs.dirs.items():
        for kid in d.kids:
            parents.setdefault(kid, []).append(place)
    doomed, moved = set(over), set[Place]()
    while True:
        todo = [p for p, d in refs.dirs.items()
                if p not in moved and (d.packs & doomed or any(m[0] in doomed for m in d.pages))]
        while todo:
            p = todo.pop()
            if p not in moved:
                moved.add(p)
                todo.extend(parents.get(p, ()))
        still = {m for p, d in refs.dirs.items() if p not in moved for m in d.pages}
        dead: dict[str, set[tuple[int, int]]] = {}
        for p in moved:
            for name, off, length in refs.dirs[p].pages:
                if name not in doomed and (name, off, length) not in still:
                    dead.setdefault(name, set()).add((off, length))
        more = {name for name, gone in dead.items() if name.startswith("o/") and sizes.get(name)
                and _unused(refs.used[name] - gone) / sizes[name] > max_unused}
        if not more:
            return doomed
        doomed |= more


__all__ = ["PackUsage", "Refs", "to_repack"]
