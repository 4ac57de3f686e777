"""Refs to blobs that may still wait in an open pack: :class:`PendingRef` and the :data:`Blob` union.

A blob appended to a pack is named at once (its pack's name and its offset are fixed), but the total
object length ``ol`` of a data pack is known only when the pack is sealed, and the ref may be
written into a catalog page only once the pack is stored. A :class:`PendingRef` is completed then
(:meth:`landed`); :func:`final_ref` gives the :class:`~.pages.BlobRef` a page records. Page refs
(kind 2) carry no ``ol`` and are final at once.
"""

from __future__ import annotations

from ..keys.schedule import KIND_PAGE_PACK
from .pages import BlobRef


class PendingRef:
    """A blob in a pack that may not be stored yet; ``ref()`` works once it is (``done``)."""

    __slots__ = ("_ol", "_ref", "epoch", "id", "kind", "length", "object_name", "off", "zlen")

    def __init__(self, epoch: int, kind: int, blob_id: bytes, object_name: str, off: int, length: int,
                 zlen: int | None = None) -> None:
        self.epoch, self.kind, self.id, self.object_name = epoch, kind, blob_id, object_name
        self.off, self.length, self.zlen = off, length, zlen  # zlen: a compressed member's frame length
        self._ol: int | None = None
        self._ref: BlobRef | None = None  # built once: the index takes it at landing, the page at the commit

    @property
    def stored_len(self) -> int:
        """The bytes this blob takes in its pack (see :attr:`BlobRef.stored_len`)."""
        return self.length if self.zlen is None else self.zlen

    @property
    def done(self) -> bool:
        return self._ol is not None or self.kind == KIND_PAGE_PACK

    def landed(self, object_len: int) -> None:
        """Its pack is stored as an object of ``object_len`` bytes."""
        self._ol, self._ref = object_len, None

    def ref(self) -> BlobRef:
        if self._ref is not None:
            return self._ref
        if not self.done:
            raise RuntimeError("pack not stored yet")
        ol = None if self.kind == KIND_PAGE_PACK else self._ol
        self._ref = BlobRef(self.epoch, self.kind, self.id, self.object_name, self.off, self.length, ol,
                            zlen=self.zlen)
        return self._ref


#: a blob of a file: stored (a :class:`BlobRef`) or maybe still in the open pack
Blob = BlobRef | PendingRef


def final_ref(b: Blob) -> BlobRef:
    """The blob ref of a blob, whether it was final all along or waited for its pack to be stored."""
    return b.ref() if isinstance(b, PendingRef) else b
