"""A rewrite map checked against the generations' own trees, before prune lets their own objects go.

A ``rekey --rewrite`` map (:mod:`..format.rewritemap`) gives an old generation a new, *effective*
root; any holder of the current keys can write one (docs/format.md, "Rewriting under the new
epoch", Trust). Once prune deletes what only the generation's own root refers to, what it showed is
gone for good, so before that :func:`check_maps` compares, for every kept generation a map names,
the mapped tree with the generation's own: the same paths, the same kind of each entry, the same
metadata (mode, owner, times, xattrs), link targets, file sizes and file bytes. Bytes are compared by
reading both sides through the one read route (:func:`..content.reader.read_blobs`, every blob
verified by its keyed id under its own epoch's keys), streaming, a few blobs in memory; a file whose
blob list is the same on both sides is not read. A pair of directories (or blob lists) found equal
once is not compared again: consecutive generations share most of their subtrees.

The newest map's root is compared with the generation's own root and with every earlier map's root
for it (a second map, of a later rewrite or a co-writer's, replaces the first one's objects): with
each one still stored. One whose root pages are gone (a prune that checked it deleted them) or that
goes missing while compared is skipped: nothing of it is left to protect, and the root that replaced
it was checked against it before it went. One that differs is the one :class:`IntegrityError`,
naming the generation, the map's commit and the first differing path; the caller (prune) then
deletes nothing. ``verify --full`` runs the same check
and reports the mismatch as a problem.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import replace

from ..catalog.pagestore import Catalog
from ..catalog.tree import Dir, File, Link, Node, Tree, show
from ..content.reader import read_blobs
from ..errors import IntegrityError, ObjectMissing
from ..format.commits import ChainHead
from ..format.refs import Blob, final_ref
from ..repo.history import History
from ..repo.reader import BlobReader

_WINDOW = 4  # blobs read ahead per side while comparing one file


class MapMismatch(IntegrityError):
    """A rewrite map shows a generation differently from its own tree or an earlier map's."""


class _Gone(Exception):
    """The earlier tree is (partly) deleted already: nothing of it is left to check."""


def _place(refs: Iterable[Blob]) -> tuple[tuple[str, int], ...]:
    return tuple((r.object_name, r.off) for r in map(final_ref, refs))


class MapChecker:
    """Compares mapped trees with the generations' earlier ones; remembers what it found equal."""

    def __init__(self, history: History, catalog: Catalog, reader: BlobReader) -> None:
        self.history, self.catalog, self.reader = history, catalog, reader
        self.same: set[tuple[object, object]] = set()  # (earlier place, mapped place): directories, blob lists
        self.checked = 0  # generations compared
        self.skipped = 0  # generations whose earlier trees were all gone
        self.files_read = 0  # files whose bytes were compared

    async def check(self, head: ChainHead, kept: Iterable[int], stored: Callable[[str], bool]) -> None:
        """Check every generation of ``kept`` up to ``head`` that a map names. ``stored(name)``:
        whether an object is still in the store (an earlier tree whose root pages are not is
        skipped). Raises MapMismatch, IntegrityError (a mapped tree that does not read)."""
        for gen in sorted(g for g in kept if g <= head.gen):
            maps = self.history.maps_of(gen)
            if not maps:
                continue
            c = await self.history.commit_at(gen)
            by, now = maps[-1]
            checked = False
            for i, earlier in enumerate([c.root, *(root for _, root in maps[:-1])]):
                if [p.id for p in earlier] == [p.id for p in now] or not all(stored(p.object_name) for p in earlier):
                    continue  # the same tree, or one a checked prune deleted already
                try:  # the root's own directory entry is the commit's whatever the map: compare from there
                    where = await self._trees(self.catalog.tree(replace(c, root=earlier), own=True),
                                              self.catalog.tree(replace(c, root=now), own=True))
                except _Gone:
                    continue
                checked = True
                if where is not None:
                    than = "its own tree" if i == 0 else f"the map of generation {maps[i - 1][0]}"
                    raise MapMismatch(
                        f"the rewrite map of generation {by} shows generation {gen} differently from {than} "
                        f"at {where}: its old objects are kept (see `sigmavault audit` for who wrote the map)")
            self.checked += checked
            self.skipped += not checked

    async def _own(self, tree: Tree, d: Dir, where: list[bytes]) -> dict[bytes, Node]:
        try:
            return await tree.children(d, where)
        except ObjectMissing:
            raise _Gone from None

    async def _trees(self, own: Tree, mapped: Tree) -> str | None:
        """A path at which the two trees differ, or None."""
        if own.root.meta.key() != mapped.root.meta.key():
            return "/ (metadata)"
        stack: list[tuple[Dir, Dir, list[bytes]]] = [(own.root, mapped.root, [])]
        seen: list[tuple[object, object]] = []
        while stack:
            a, b, where = stack.pop()
            pair = (_place(a.pages), _place(b.pages))
            if pair in self.same:
                continue
            seen.append(pair)
            kids_a = await self._own(own, a, where)
            kids_b = await mapped.children(b, where)
            if kids_a.keys() != kids_b.keys():
                name = min(kids_a.keys() ^ kids_b.keys())
                return f"{show([*where, name])} ({'missing' if name in kids_a else 'added'})"
            below: list[tuple[Dir, Dir, list[bytes]]] = []
            for name in sorted(kids_a):
                x, y, path = kids_a[name], kids_b[name], [*where, name]
                what = await self._node(x, y)
                if what is not None:
                    return f"{show(path)} ({what})"
                if isinstance(x, Dir) and isinstance(y, Dir):
                    below.append((x, y, path))
            a.children = b.children = None  # compared: memory holds the path being walked, not the trees
            stack.extend(reversed(below))  # by name, depth first
        self.same.update(seen)  # every pair walked is equal, subtrees included
        return None

    async def _node(self, x: Node, y: Node) -> str | None:
        """What differs between two entries at one path (their subtrees aside), or None."""
        if type(x) is not type(y):
            return "type"
        if x.meta.key() != y.meta.key():
            return "metadata"
        if isinstance(x, Link):
            assert isinstance(y, Link)
            return None if x.target == y.target else "link target"
        if isinstance(x, File):
            assert isinstance(y, File)
            if x.size != y.size:
                return "size"
            if not await self._content(x, y):
                return "content"
        return None

    async def _content(self, x: File, y: File) -> bool:
        if x.inline is not None or y.inline is not None:
            if x.inline is not None and y.inline is not None:
                return x.inline == y.inline
        elif [(b.epoch, b.id) for b in x.blobs] == [(b.epoch, b.id) for b in y.blobs]:
            return True
        pair = (_place(x.blobs), _place(y.blobs))
        if pair in self.same:
            return True
        self.files_read += 1
        equal = await _same_stream(self._read(x, own=True), self._read(y, own=False))
        if equal:
            self.same.add(pair)
        return equal

    async def _read(self, f: File, *, own: bool) -> AsyncIterator[bytes]:
        if f.inline is not None:
            yield f.inline
            return
        blobs: list[Blob] = list(f.blobs)
        if not blobs:
            return
        try:
            async with contextlib.aclosing(read_blobs(self.reader, blobs, 0, _WINDOW)) as pieces:
                async for piece in pieces:
                    yield piece
        except ObjectMissing:
            if own:
                raise _Gone from None
            raise


async def _same_stream(a: AsyncIterator[bytes], b: AsyncIterator[bytes]) -> bool:
    """Whether two byte streams are equal (a piece of each held at a time)."""
    async with contextlib.aclosing(a) as xs, contextlib.aclosing(b) as ys:  # type: ignore[type-var]
        left = right = b""
        xs_done = ys_done = False
        while True:
            if not left and not xs_done:
                left = await anext(xs, b"")
                xs_done = not left
            if not right and not ys_done:
                right = await anext(ys, b"")
                ys_done = not right
            if not left or not right:
                return not left and not right
            n = min(len(left), len(right))
            if left[:n] != right[:n]:
                return False
            left, right = left[n:], right[n:]


__all__ = ["MapChecker", "MapMismatch"]
