"""``rekey --rewrite``: every object the kept generations refer to, re-encrypted under the current epoch.

The protocol is docs/format.md, "Rewriting under the new epoch" (modelled in ``models/rewrite.py``;
change both together). Rewriter: (X1) read the head h; (X2) under a writer's lease (the vault's
:class:`~.guard.WriteGuard`: its copies are pending for prune until the map lands), store again,
through the one write route (read the blob, store its bytes under the current epoch: the same
content gets the same keyed name, so a killed rewrite resumes by writing only what is missing, as
the dedup index finds the rest), every blob of an older epoch that the effective tree of a kept
generation up to h refers to, and save that tree's directories into new pages under the current
epoch; (X3, X4) create ``c/{h+1}``: the head's tree rewritten, whose ``meta.rewrite`` maps every
kept generation up to h to its rewritten root (:mod:`.format.rewritemap`). A lost race is the
committer's record path: it reads the new head and asks again, and only the new generations are
rewritten (unchanged subtrees and blobs are remembered). Readers then use each generation's
effective root (:meth:`.repo.history.History.effective_root`), and the old objects are garbage
for prune. A writer merging onto a head past the map re-seals what its tree newly holds of the old
epoch (:mod:`.reseal`, after a merge that judges the rewrite's changes against the base rewritten).

A ``rekey --rewrite`` marks its rekey record (``meta.rekey.rewrite``), so a run killed before its
map landed is found (:meth:`Rewriter.pending`) and finished without starting another epoch.

The same machinery repacks (:meth:`Rewriter.repack`, prune's packs over ``--max-unused``): only the
predicate of what moves differs (:data:`Moves`: a ref living in one of the given packs, under the same
epoch). The same content then has the same keyed id, so the dedup index would find the old place: a
copy reuses only a place that does not move, and the index is told the new place (``BlobIndex.moved``).
Its completing commit carries ``meta.repack`` beside the map, so :meth:`Rewriter.pending` does not take
it for the end of a ``rekey --rewrite``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from .catalog.pagestore import Catalog
from .catalog.tree import Dir, File, Node, Tree
from .committer import Committer
from .content.index import BlobIndex
from .content.writer import ContentWriter
from .errors import NotFound, UsageError
from .format.canonical import dumps
from .format.commits import ChainHead
from .format.pages import BlobRef
from .format.refs import Blob, final_ref
from .format.rewritemap import MAX_MAP, to_json
from .guard import WriteGuard
from .keys.schedule import KIND_CHUNK
from .repo.history import History
from .repo.packs import PackWriter
from .repo.reader import BlobReader
from .repo.store import ObjectStore

Place = tuple[tuple[str, int], ...]  # a directory's pages by (object, offset): one place per directory
#: whether a blob or page ref is stored again, given the current epoch: the one thing a rewrite and a repack differ in
Moves = Callable[[Blob, int], bool]
#: progress of a repack: (stage, done, total) — stage "repack", counting kept generations
Progress = Callable[[str, int, int], None]


def older(ref: Blob, epoch: int) -> bool:
    """``rekey --rewrite``: every ref of an older epoch than the current one moves."""
    return ref.epoch < epoch


@dataclass(frozen=True, slots=True)
class Rewritten:
    """What a rewrite did (no secrets)."""

    epoch: int  # the epoch everything kept is sealed under now
    record: int  # the completing commit (the head's tree rewritten, carrying the map)
    generations: int  # kept generations mapped to a rewritten root
    blobs: int  # blobs stored again under the epoch
    reused: int  # blobs found stored already (a resumed rewrite; the same content in two places)
    pages: int  # directories saved into new pages
    objects: frozenset[str] = frozenset()  # the objects the run wrote (new packs, chunks)


class Rewriter:
    """X1–X4 for one vault front (see the module doc)."""

    def __init__(self, *, history: History, catalog: Catalog, commits: Committer, guard: WriteGuard,
                 index: BlobIndex, content: ContentWriter, reader: BlobReader, store: ObjectStore,
                 pages: PackWriter) -> None:
        self._history, self._catalog, self._commits, self._guard = history, catalog, commits, guard
        self._index, self._content, self._reader, self._store = index, content, reader, store
        self._page_pack = pages

    async def pending(self) -> bool:
        """Whether the newest rekey record of the head's epoch asked for a rewrite that no map of
        that epoch has completed yet (a ``rekey --rewrite`` killed before X4)."""
        head = self._commits.head
        epoch = head.commit.epoch
        gen = head.gen
        while gen >= 0:
            c = head.commit if gen == head.gen else await self._history.commit_at(gen)
            if c.epoch != epoch:
                return False
            if c.audit.rewrite is not None and c.audit.repack is None and c.audit.rewrite.epoch == epoch:
                return False  # a repack's map (same epoch, ``meta.repack``) finishes no rekey
            if c.audit.rekey == epoch:
                return c.audit.rekey_rewrite
            gen -= 1
        return False

    async def run(self) -> Rewritten:
        """Rewrite every kept generation under the current epoch and land the map (X1–X4).
        UsageError with edits pending; ConcurrencyError, BackendError, IntegrityError."""
        return await self._land(_Run(self, older))

    async def repack(self, packs: Collection[str], progress: Progress | None = None) -> Rewritten:
        """Move every blob and directory page the kept generations keep in ``packs`` into fresh packs
        under the current epoch, and land the map (X1–X4 with that predicate; ``meta.repack`` marks it).
        The old packs are then garbage for prune. UsageError with edits pending; ConcurrencyError,
        BackendError, IntegrityError."""
        doomed = frozenset(packs)
        return await self._land(_Run(self, lambda ref, _epoch: ref.object_name in doomed, doomed, progress))

    async def _land(self, run: _Run) -> Rewritten:
        if self._commits.pending:
            raise UsageError("commit the pending changes before a rewrite")
        await self._guard.begin()  # the lease first: our copies are pending for prune until the map lands
        try:
            gen = await self._commits.record(run.decide, root=run.root)
        finally:
            await self._guard.end()
        assert gen is not None
        return Rewritten(self._store.epoch, gen, len(run.mapped), run.blobs, run.reused, run.pages,
                         frozenset(run.written))


class _Run:
    """One rewrite run's memory: what it stored, so a lost race rewrites only the new generations."""

    def __init__(self, r: Rewriter, moves: Moves, packs: Collection[str] = (), progress: Progress | None = None
                 ) -> None:
        self.r, self.moves, self.packs = r, moves, packs  # packs: a repack's (its map carries ``meta.repack``)
        self.progress = progress or (lambda stage, done, total: None)
        self.roots: dict[int, list[BlobRef]] = {}  # generation -> its rewritten root
        self.mapped: dict[int, list[BlobRef]] = {}
        self.copies: dict[tuple[str, int], Blob] = {}  # an old blob's place -> its copy
        self.dirs: dict[Place, list[BlobRef]] = {}  # an old directory's place -> its rewritten pages
        self.names: set[str] = set()  # every object the map and the head's rewritten tree refer to anew
        self.unindexed: list[Blob] = []  # copies stored since the last flush
        self.written: set[str] = set()  # objects this run wrote
        self.blobs = self.reused = self.pages = 0

    def root(self, head: ChainHead) -> list[BlobRef]:
        return self.roots[head.gen]

    async def decide(self, head: ChainHead) -> dict[str, Any]:
        """X2 for every kept generation up to ``head`` not rewritten yet, then the map (X4's meta)."""
        r = self.r
        epoch = r._store.epoch  # the record path reloaded: the current epoch seals from here on
        kept = sorted(g for g in await r._history.kept_generations() if g <= head.gen) or [head.gen]
        for i, g in enumerate(kept):
            self.progress("repack", i, len(kept))
            if g not in self.roots:
                tree = r._catalog.tree(await r._history.commit_at(g))
                self.roots[g] = await self._tree(tree, epoch)
        self.progress("repack", len(kept), len(kept))
        await r._page_pack.flush()

        async def ours() -> set[str]:
            return self.names

        await r._guard.check(ours)  # W3: rescue our copies from a prune that marked them meanwhile
        self.mapped = {}
        for g in kept:
            own = r._history.effective_root(await r._history.commit_at(g))
            if [p.id for p in own] != [p.id for p in self.roots[g]]:
                self.mapped[g] = self.roots[g]
        value = to_json(epoch, self.mapped)
        if len(dumps(value)) > MAX_MAP:  # readers would refuse the commit: never land it
            raise UsageError(f"{len(kept)} kept generations are too many for one rewrite's map: "
                             "forget some (`sigmavault forget`), then run it again (what is copied stays)")
        if self.packs:
            return {"rewrite": value, "repack": {"packs": len(self.packs), "blobs": self.blobs, "pages": self.pages}}
        return {"rewrite": value}

    async def _tree(self, tree: Tree, epoch: int) -> list[BlobRef]:
        """One generation's tree rewritten: its root's new pages (its own if nothing is older)."""
        fresh: list[tuple[Place, Dir]] = []
        top = await self._dir(tree, tree.root, epoch, fresh)
        if top is tree.root:
            return list(tree.root.pages)
        await self.r._content.flush()  # the copies' packs are stored: their refs are final
        self.r._index.moved([final_ref(b) for b in self.unindexed])  # a repack's copy: its new place
        self.unindexed.clear()
        new = Tree(top, self.r._catalog.load)
        new.fresh_pages = True
        root = await self.r._catalog.save(new)
        for place, d in fresh:
            self.dirs[place] = d.pages
            self.names.update(p.object_name for p in d.pages)
            self.written.update(p.object_name for p in d.pages)
            self.pages += 1
        return list(root)

    async def _dir(self, tree: Tree, top: Dir, epoch: int, fresh: list[tuple[Place, Dir]]) -> Dir:
        """``top`` with everything below it of an older epoch stored again (``top`` itself if nothing
        is). Iterative, children before parents (a tree may be deeper than Python's recursion limit)."""
        done: dict[int, Dir] = {}  # id() of an old directory (alive in ``tree``) -> what replaces it
        stack: list[tuple[Dir, list[bytes], bool]] = [(top, [], False)]
        while stack:
            d, where, expanded = stack.pop()
            place = tuple((p.object_name, p.off) for p in d.pages)
            hit = self.dirs.get(place) if d.pages else None
            if hit is not None:  # rewritten for an earlier generation: its new pages hold the same entries
                done[id(d)] = Dir(d.meta, list(hit))
                continue
            entries = await tree.children(d, where)
            if not expanded:
                stack.append((d, where, True))
                stack.extend((n, [*where, name], False) for name, n in entries.items() if isinstance(n, Dir))
                continue
            kids: dict[bytes, Node] = {}
            changed = any(self.moves(p, epoch) for p in d.pages)
            for name, node in entries.items():
                new: Node = node
                if isinstance(node, Dir):
                    new = done.pop(id(node))
                elif isinstance(node, File) and any(self.moves(b, epoch) for b in node.blobs):
                    new = dataclasses.replace(node, blobs=[await self._copy(b, epoch) if self.moves(b, epoch) else b
                                                           for b in node.blobs])
                changed |= new is not node
                kids[name] = new
            done[id(d)] = Dir(d.meta, children=kids, dirty=True) if changed else d
            if changed:
                fresh.append((place, done[id(d)]))
        return done[id(top)]

    async def _copy(self, b: Blob, epoch: int) -> Blob:
        """The one write route: read the blob, store its bytes under the current epoch, unless the
        same content is stored already at a place that does not move (a resumed rewrite, or the same
        bytes elsewhere; a repack's old place is found by the index too: never reused)."""
        ref = final_ref(b)
        place = (ref.object_name, ref.off)
        hit = self.copies.get(place)
        if hit is None:
            r = self.r
            data = await r._reader.read(ref)
            blob_id = await asyncio.to_thread(r._store.keys.chunk_id_of, data)
            found = await r._index.known(blob_id) or await self._stored_chunk(blob_id, len(data))
            if found is not None and found.epoch == epoch and not self.moves(found, epoch):
                hit, self.reused = found, self.reused + 1
            else:
                hit, self.blobs = await r._content.reseal(data, blob_id), self.blobs + 1
                self.unindexed.append(hit)
                self.written.add(hit.object_name)
            self.copies[place] = hit
            self.names.add(hit.object_name)
        return hit

    async def _stored_chunk(self, blob_id: bytes, length: int) -> BlobRef | None:
        """A full chunk stored under the current epoch already: its object is named by its keyed id
        (a run killed before its dedup index reached the local disk finds it here)."""
        store = self.r._store
        if length != store.chunk_size:
            return None  # a shorter blob rides in a pack under a random name: stored again
        name = store.keys.chunk_name(blob_id)
        try:
            size = await store.backend.head(name)
        except NotFound:
            return None
        return BlobRef(store.epoch, KIND_CHUNK, blob_id, name, 0, length, size)
