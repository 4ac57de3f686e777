"""The dedup index as the write path sees it: which blobs the vault already holds, and may reuse.

Backed by the local cache. A row whose object some commit already references is trusted. A
*provisional* row — an object uploaded by a run that never committed — is trusted only if this
vault instance uploaded it itself, or after a HEAD shows the object is still there with its
length; otherwise the row is forgotten and the blob is stored again. This closes the hole where an
interrupted import's objects vanish (a server that lost its last writes, garbage collection of
uncommitted uploads) and a later run would commit references to nothing.
"""

from __future__ import annotations

from ..backends.base import Backend
from .cache import Cache
from .errors import NotFound
from .pages import BlobRef


class BlobIndex:
    def __init__(self, cache: Cache, backend: Backend) -> None:
        self._cache = cache
        self._backend = backend
        self._trusted: set[str] = set()  # objects this instance wrote or checked

    async def known(self, blob_id: bytes) -> BlobRef | None:
        row = self._cache.find_blob(blob_id)
        if row is None:
            return None
        e, k, o, off, length, ol, committed = row
        ref = BlobRef(e, k, blob_id, o, off, length, ol)
        if committed or o in self._trusted:
            return ref
        try:
            present = await self._backend.head(o) == ol
        except NotFound:
            present = False
        if not present:
            self._cache.forget_blob(blob_id)
            return None
        self._trusted.add(o)
        return ref

    def stored(self, refs: list[BlobRef]) -> None:
        """Blobs whose objects this instance just wrote (provisional until a commit)."""
        self._cache.add_blobs((r.id, r.epoch, r.kind, r.object_name, r.off, r.length, r.object_len or 0)
                              for r in refs)
        self._trusted.update(r.object_name for r in refs)

    def committed(self) -> None:
        """A commit succeeded: every object this instance wrote or checked is now referenced or harmless."""
        self._cache.mark_committed(self._trusted)

    def rebuild(self, refs: list[BlobRef]) -> None:
        """Refs read from a commit's catalog: trusted."""
        self._cache.add_blobs(((r.id, r.epoch, r.kind, r.object_name, r.off, r.length, r.object_len or 0)
                               for r in refs), committed=True)
