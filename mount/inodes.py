"""The mount's inode and handle tables: which vault path an inode number stands for, and who holds it.

Inode numbers are local to one mount and never reused while the kernel may still name them.
An inode lives while the kernel holds lookups on it (``lookup``/``readdir`` add, ``forget``
removes), while a file handle is open on it, or while it has dirty data waiting to be flushed;
after that it is dropped. Renames move every known inode below the old path; an unlinked inode
keeps its number (open handles still work) but no longer has a path.

This module does no I/O and knows nothing of FUSE. A number the tables do not know raises
:class:`UnknownInode` or :class:`UnknownHandle`, each carrying the errno the adapter answers
(like the vault's errors): only these mean "gone", never an arbitrary ``KeyError`` from a bug.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Iterator
from dataclasses import dataclass, field

ROOT = 1  # FUSE's root inode number

Parts = tuple[bytes, ...]


class UnknownInode(KeyError):
    """An inode number the table does not know (forgotten), or that has no path any more (unlinked).

    A ``KeyError`` so code that predates it keeps working; the mount answers ENOENT.
    """

    errno = _errno.ENOENT


class UnknownHandle(KeyError):
    """A file or directory handle number that is not open: the mount answers EBADF."""

    errno = _errno.EBADF


def vault_path(parts: Parts) -> bytes:
    return b"/" + b"/".join(parts)


@dataclass(slots=True)
class Inode:
    ino: int
    parts: Parts | None  # None: unlinked while still held
    lookups: int = 0
    opens: int = 0
    pinned: bool = False  # dirty data not yet flushed keeps the inode (and its path) alive


class InodeTable:
    """Maps inode numbers to vault paths and back. Not thread-safe; the event loop serializes it."""

    def __init__(self) -> None:
        self._by_ino: dict[int, Inode] = {ROOT: Inode(ROOT, (), lookups=1)}
        self._by_path: dict[Parts, int] = {(): ROOT}
        self._next = ROOT + 1

    def __len__(self) -> int:
        return len(self._by_ino)

    def get(self, ino: int) -> Inode:
        """The inode; raises UnknownInode for a number the table does not know."""
        node = self._by_ino.get(ino)
        if node is None:
            raise UnknownInode(ino)
        return node

    def parts(self, ino: int) -> Parts:
        """The path of a linked inode; raises UnknownInode when unknown or unlinked."""
        p = self.get(ino).parts
        if p is None:
            raise UnknownInode(ino)
        return p

    def ino_for(self, parts: Parts) -> int:
        """The inode number of a path, allocated on first use (lookup count 0)."""
        ino = self._by_path.get(parts)
        if ino is None:
            ino = self._next
            self._next += 1
            self._by_ino[ino] = Inode(ino, parts)
            self._by_path[parts] = ino
        return ino

    def remember(self, ino: int, n: int = 1) -> None:
        self.get(ino).lookups += n

    def forget(self, ino: int, n: int) -> None:
        node = self._by_ino.get(ino)
        if node is None or ino == ROOT:
            return
        node.lookups = max(0, node.lookups - n)
        self._maybe_drop(node)

    def opened(self, ino: int) -> None:
        self.get(ino).opens += 1

    def closed(self, ino: int) -> None:
        node = self._by_ino.get(ino)
        if node is not None:
            node.opens = max(0, node.opens - 1)
            self._maybe_drop(node)

    def pin(self, ino: int, pinned: bool) -> None:
        node = self._by_ino.get(ino)
        if node is not None:
            node.pinned = pinned
            self._maybe_drop(node)

    def _maybe_drop(self, node: Inode) -> None:
        if node.ino == ROOT or node.lookups or node.opens or node.pinned:
            return
        del self._by_ino[node.ino]
        if node.parts is not None and self._by_path.get(node.parts) == node.ino:
            del self._by_path[node.parts]

    def unlinked(self, parts: Parts) -> int | None:
        """The path is gone: its inode (if known) loses its path. Returns that inode number."""
        ino = self._by_path.pop(parts, None)
        if ino is None:
            return None
        node = self._by_ino[ino]
        node.parts = None
        node.pinned = False
        self._maybe_drop(node)
        return ino

    def moved(self, src: Parts, dst: Parts) -> None:
        """``src`` (and everything below it) now lives at ``dst``; whatever was at ``dst`` is unlinked."""
        self.unlinked(dst)
        n = len(src)
        for node in list(self._by_ino.values()):
            if node.parts is not None and node.parts[:n] == src:
                del self._by_path[node.parts]
                node.parts = dst + node.parts[n:]
        for node in self._by_ino.values():
            if node.parts is not None and node.parts[: len(dst)] == dst:
                self._by_path[node.parts] = node.ino

    def __iter__(self) -> Iterator[Inode]:
        return iter(list(self._by_ino.values()))


@dataclass(slots=True)
class Stream:
    """Sequential-access detection for one open file handle."""

    next_off: int = -1
    streak: int = 0

    def saw(self, off: int, size: int) -> bool:
        """Record a read; True when the handle is reading sequentially."""
        self.streak = self.streak + 1 if off == self.next_off or (off == 0 and self.next_off < 0) else 0
        self.next_off = off + size
        return self.streak > 0


@dataclass(slots=True)
class Handle:
    ino: int
    writable: bool
    stream: Stream = field(default_factory=Stream)


@dataclass(slots=True)
class DirHandle:
    ino: int
    entries: list[tuple[bytes, int]] | None = None  # (name, inode) snapshot taken at offset 0


class HandleTable:
    """Open file and directory handles, numbered from 1."""

    def __init__(self) -> None:
        self._files: dict[int, Handle] = {}
        self._dirs: dict[int, DirHandle] = {}
        self._next = 1

    def _number(self) -> int:
        fh = self._next
        self._next += 1
        return fh

    def open_file(self, ino: int, writable: bool) -> int:
        fh = self._number()
        self._files[fh] = Handle(ino, writable)
        return fh

    def open_dir(self, ino: int) -> int:
        fh = self._number()
        self._dirs[fh] = DirHandle(ino)
        return fh

    def file(self, fh: int) -> Handle:
        """The open file handle ``fh``; raises UnknownHandle."""
        h = self._files.get(fh)
        if h is None:
            raise UnknownHandle(fh)
        return h

    def dir(self, fh: int) -> DirHandle:
        """The open directory handle ``fh``; raises UnknownHandle."""
        d = self._dirs.get(fh)
        if d is None:
            raise UnknownHandle(fh)
        return d

    def close_file(self, fh: int) -> Handle:
        """Close ``fh`` and return what it was; raises UnknownHandle."""
        h = self._files.pop(fh, None)
        if h is None:
            raise UnknownHandle(fh)
        return h

    def close_dir(self, fh: int) -> None:
        self._dirs.pop(fh, None)

    def writers(self, ino: int) -> int:
        return sum(1 for h in self._files.values() if h.ino == ino and h.writable)
