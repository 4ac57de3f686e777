"""The dedup index as the write path sees it: which blobs the vault already holds, and may reuse.

Backed by the local cache. A row whose object some commit already references is trusted. A
*provisional* row — an object uploaded by a run that never committed — is trusted only if this
vault instance uploaded it itself, or after a HEAD shows the object is still there with its
length; otherwise the row is forgotten and the blob is stored again. This closes the hole where an
interrupted import's objects vanish (a server that lost its last writes, garbage collection of
uncommitted uploads) and a later run would commit references to nothing.

A new or deleted cache is refilled from the head's catalog lazily, on the first lookup (the first
write), never at open: opening must not walk the tree, and a damaged page must not make the
whole vault unusable. The refill skips a subtree whose pages do not open — its blobs are then
simply stored again, which is always correct — so dedup survives a deleted cache.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ...backends.base import Backend
from ..catalog.tree import Dir, File, Node, Tree
from ..errors import IntegrityError, NotFound
from ..format.pages import BlobRef
from ..local.cache import Cache, NewBlob

log = logging.getLogger(__name__)

#: the head generation and its catalog tree, for a refill (a fresh tree: never the one being edited)
HeadTree = Callable[[], tuple[int, Tree]]


def _row(r: BlobRef) -> NewBlob:
    return r.id, r.epoch, r.kind, r.object_name, r.off, r.length, r.object_len or 0, r.zlen or 0


class BlobIndex:
    def __init__(self, cache: Cache, backend: Backend, head_tree: HeadTree | None = None) -> None:
        self._cache = cache
        self._backend = backend
        self._trusted: set[str] = set()  # objects this instance wrote or checked
        self._head_tree = head_tree
        self._filled = head_tree is None
        self._fill_lock = asyncio.Lock()
        self.hits = 0  # lookups that found a blob to reuse (the metrics' "dedup" cache)
        self.misses = 0

    async def known(self, blob_id: bytes) -> BlobRef | None:
        ref = await self._known(blob_id)
        if ref is None:
            self.misses += 1
        else:
            self.hits += 1
        return ref

    async def _known(self, blob_id: bytes) -> BlobRef | None:
        if not self._filled:
            await self.fill()
        row = await self._cache.find_blob(blob_id)
        if row is None:
            return None
        e, k, o, off, length, ol, committed, z = row
        ref = BlobRef(e, k, blob_id, o, off, length, ol, zlen=z or None)
        if committed or await self._present(blob_id, o, ol):
            return ref
        return None

    async def _present(self, blob_id: bytes, name: str, length: int) -> bool:
        """Whether object ``name`` was checked by this instance, or a HEAD finds it with ``length``
        now (then it is trusted from here on); a row whose object is gone is forgotten."""
        if name in self._trusted:
            return True
        try:
            present = await self._backend.head(name) == length
        except NotFound:
            present = False
        if not present:
            self._cache.forget_blob(blob_id)
            return False
        self._trusted.add(name)
        return True

    def stored(self, refs: list[BlobRef]) -> None:
        """Blobs whose objects this instance just wrote (provisional until a commit)."""
        self._cache.add_blobs(map(_row, refs))
        self._trusted.update(r.object_name for r in refs)

    def moved(self, refs: list[BlobRef]) -> None:
        """Blobs this instance just stored again at a new place (a repack's copies, of the same keyed
        id as before): their rows name the new place from now on, provisional until a commit."""
        self._cache.add_blobs(map(_row, refs), move=True)
        self._trusted.update(r.object_name for r in refs)

    def untrust(self) -> None:
        """Forget which objects this instance wrote or checked: a writer's new lease (prune may have
        deleted an uncommitted upload since), so provisional rows are looked up again before reuse."""
        self._trusted.clear()

    async def after_prunes(self, key: int) -> None:
        """``key`` names the deletion records in the store (-1: none). When it changed since this
        cache last looked, a prune may have deleted objects its rows trust (an upload whose file was
        removed before the commit, a forgotten generation's object): every row is looked up again."""
        if key >= 0 and key != await self._cache.get_meta("prune_records"):
            self._cache.mark_all_provisional()
            self._cache.set_meta("prune_records", key)

    def committed(self, gen: int) -> None:
        """Commit ``gen`` succeeded: every object this instance wrote or checked is now referenced or harmless.

        The cache counts as indexed up to ``gen`` only if it was filled from the catalog first (or
        already was). The queued rows are committed to the cache in the background, now.
        """
        self._cache.mark_committed(self._trusted)
        self._cache.set_meta("indexed_gen", gen, only_if_set=not self._filled)
        self._cache.flush_soon()

    def rebuild(self, refs: list[BlobRef]) -> None:
        """Refs read from a commit's catalog: trusted."""
        self._cache.add_blobs(map(_row, refs), committed=True)

    async def fill(self, force: bool = False) -> int:
        """Refill the index from the head's catalog if the cache never saw one (or ``force``).

        Returns the number of refs added. Concurrent first writers share one refill.
        """
        async with self._fill_lock:
            if self._filled and not force:
                return 0
            added = 0
            if self._head_tree is not None:
                gen, tree = self._head_tree()
                if gen > 0 and (force or await self._cache.get_meta("indexed_gen") < 0):
                    added = await self._refill(tree)
                    self._cache.set_meta("indexed_gen", gen)
            self._filled = True
            return added

    async def _refill(self, tree: Tree) -> int:
        refs: list[BlobRef] = []
        added = 0
        stack: list[tuple[list[bytes], Node]] = [([], tree.root)]
        while stack:
            parts, node = stack.pop()
            if isinstance(node, File):
                # an ingested drop's blobs are keyed by its writer: never a dedup hit for ours
                refs.extend(b for b in node.blobs if isinstance(b, BlobRef) and b.drop_key is None)
                if len(refs) >= 65536:  # bounded memory on a vault of many files
                    added += len(refs)
                    self.rebuild(refs)
                    refs = []
                    await self._cache.flush()  # the queue does not outgrow one batch of refs
            elif isinstance(node, Dir):
                try:
                    kids = await tree.children(node, parts)
                except IntegrityError as exc:  # only this subtree loses dedup; reading it reports the damage
                    log.warning("dedup index: skipped %s", exc.message)
                    continue
                stack.extend((parts + [name], child) for name, child in kids.items())
        self.rebuild(refs)
        return added + len(refs)


class DropIndex(BlobIndex):
    """A write-only client's dedup index (kept on the client, keyed per writer): blobs of its own
    completed drops, each reused with the seq of the drop that holds it (the owner opens it with
    that drop's key, ``ds`` in the ref), after a HEAD shows the object is still there and unless a
    pruner marked it gone; rows of an interrupted run are dropped (their key is gone). An object
    that merely exists is never a hit."""

    def __init__(self, cache: Cache, backend: Backend) -> None:
        super().__init__(cache, backend)
        cache.forget_provisional()
        self._run: set[str] = set()  # objects this run stored
        #: objects carrying a gone-marker, listed once the run's lease exists: never reused
        self.gone: set[str] = set()

    def stored(self, refs: list[BlobRef]) -> None:
        super().stored(refs)
        self._run.update(r.object_name for r in refs)

    async def _known(self, blob_id: bytes) -> BlobRef | None:
        row = await self._cache.find_blob(blob_id)
        if row is None:
            return None
        e, k, o, off, length, ol, committed, z = row
        if not committed:
            return BlobRef(e, k, blob_id, o, off, length, ol, zlen=z or None) if o in self._run else None
        seq = await self._cache.get_meta("drop:" + o)
        if seq < 1 or o in self.gone or not await self._present(blob_id, o, ol):
            return None
        return BlobRef(e, k, blob_id, o, off, length, ol, drop_seq=seq, zlen=z or None)

    def dropped(self, seq: int) -> None:
        """This run's drop record ``seq`` landed: its objects may be reused by later runs."""
        for name in self._run:
            self._cache.set_meta("drop:" + name, seq)
        self._cache.set_meta("last_seq", seq)  # a listing that later shows less is a rollback
        self._cache.mark_committed(self._run)
        self._cache.flush_soon()
