"""The writer's side of prune beside writers for one vault front (models/prune.py W1–W4).

A :class:`WriteGuard` holds the vault's lease (:class:`~.repo.leases.Lease`) from the first
upload or dedup decision (``Edits.ingest`` and the start of a commit call :meth:`begin`) until the
commit lands, the vault is closed or the writer aborts (:meth:`end`). Just before ``c/{g+1}`` is
written the committer calls :meth:`before_commit` (W3): one LIST of ``l/d-``; only if a deletion
record exists are the pending commit's own refs computed (the dirty part of the tree: unchanged
subtrees are the parent commit's, which the pruner keeps or a writer before us rescued) and checked.
A lease that lapsed starts again at W1: a new lease, then every pending ref is looked up again
(W2), since a pruner may have taken the lapsed lease for expired and deleted our uploads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from .catalog.tree import Dir, File, Tree
from .content.index import BlobIndex
from .errors import ConcurrencyError, NotFound
from .repo.leases import DEFAULT_TTL, Clock, Lease, LeaseLost, Records, check_marked
from .repo.store import ObjectStore

#: test seam: called with a step name ("rescued", "copied", "checked") inside W3
Hook = Callable[[str], Awaitable[None]]


async def pending_refs(tree: Tree) -> set[str]:
    """The object names the dirty part of ``tree`` references: the new pages of every dirty
    directory and the blobs of the files in them (clean subtrees are not read)."""
    out: set[str] = set()
    stack = [tree.root]
    while stack:
        d = stack.pop()
        out.update(p.object_name for p in d.pages)
        for node in (d.children or {}).values():
            if isinstance(node, Dir) and node.dirty:
                stack.append(node)
            elif isinstance(node, File):
                out.update(b.object_name for b in node.blobs)  # our own packs' members too (PendingRef)
    return out


class WriteGuard:
    def __init__(
        self, store: ObjectStore, index: BlobIndex, ttl: float = DEFAULT_TTL, clock: Clock | None = None
    ) -> None:
        self.records = Records(store)
        self.lease = Lease(self.records, ttl, clock) if clock is not None else Lease(self.records, ttl)
        self._index = index
        self._lock = asyncio.Lock()
        #: test seam (see :data:`Hook`)
        self.hook: Hook | None = None

    async def begin(self) -> None:
        """W1 (idempotent): a lease before the first upload or dedup decision."""
        async with self._lock:
            if not self.lease.held:
                self._index.untrust()  # objects we uploaded under an earlier lease may be gone now
                await self.lease.begin()
                await self._index.after_prunes(self.lease.records_key)

    async def before_commit(self, tree: Tree) -> None:
        """W3: rescue (or copy and restore) every pending ref a deletion record marks."""

        async def refs() -> set[str]:
            return await pending_refs(tree)

        await self.check(refs)

    async def check(self, refs: Callable[[], Awaitable[set[str]]]) -> None:
        """W3 for the object names ``refs()`` gives (asked only if a deletion record exists): a
        rewrite's copies, which its map and the head's rewritten tree refer to."""
        for _attempt in range(3):
            try:
                await check_marked(self.records, self.lease, refs, hook=self.hook)
                if self.hook is not None:
                    await self.hook("checked")
                return
            except LeaseLost:
                await self.restart(await refs())
        raise ConcurrencyError("this writer keeps losing its lease (stalled or storage unreachable); try again")

    async def restart(self, names: set[str]) -> None:
        """A lapsed lease: start again at W1, then W2 for every pending ref (present, or lost)."""
        await self.lease.end()
        await self.lease.begin()
        for name in sorted(names):
            try:
                await self.records.backend.head(name)
            except NotFound:
                raise ConcurrencyError(
                    f"object {name} of this commit was deleted by prune while this "
                    "writer was stalled past its lease: store the affected files again"
                ) from None

    async def end(self) -> None:
        """W4, abort or close: end the lease."""
        async with self._lock:
            await self.lease.end()
