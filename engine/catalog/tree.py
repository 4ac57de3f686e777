"""The catalog as a copy-on-write tree in memory: path operations and the three-way merge.

Directories load their children lazily through a ``load`` callable (the catalog module fetches and
decodes their pages); a changed directory is marked dirty up to the root, and only dirty
directories are re-encoded at commit (DESIGN.md §6: only the paths that changed are rewritten).
This module does no I/O and knows nothing of the byte format.

Paths are raw POSIX bytes split on ``/``; components are validated (no NUL, not ``.``/``..``,
not empty) before anything is touched.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..errors import AlreadyExists, DirectoryNotEmpty, IntegrityError, NotADirectory, NotFound, UsageError
from ..format.pages import BlobRef
from ..format.refs import Blob


@dataclass(slots=True)
class Meta:
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    ctime_ns: int
    xattrs: dict[bytes, bytes] = field(default_factory=dict)

    @classmethod
    def of_stat(cls, st: os.stat_result) -> Meta:
        """The metadata of a local file as the catalog keeps it (permission bits only)."""
        return cls(st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_ctime_ns)

    @classmethod
    def now(cls, mode: int) -> Meta:
        t = time.time_ns()
        return cls(mode, os.getuid(), os.getgid(), t, t)

    def key(self) -> tuple[object, ...]:
        return (self.mode, self.uid, self.gid, self.mtime_ns, self.ctime_ns, sorted(self.xattrs.items()))


@dataclass(slots=True)
class File:
    meta: Meta
    size: int
    blobs: list[Blob] = field(default_factory=list)
    inline: bytes | None = None

    def key(self) -> tuple[object, ...]:
        return ("f", self.meta.key(), self.size, self.inline, [b.id for b in self.blobs])


@dataclass(slots=True)
class Link:
    meta: Meta
    target: bytes

    def key(self) -> tuple[object, ...]:
        return ("l", self.meta.key(), self.target)


@dataclass(slots=True)
class Dir:
    meta: Meta
    pages: list[BlobRef] = field(default_factory=list)
    children: dict[bytes, Node] | None = None  # None: not loaded yet
    dirty: bool = False
    #: entries a read found before the directory was loaded whole (Tree.peek); the load keeps these nodes
    found: dict[bytes, Node] | None = None

    def key(self) -> tuple[object, ...]:
        return ("d", self.meta.key(), [p.id for p in self.pages], self.dirty and id(self))


Node = File | Link | Dir
Loader = Callable[[Dir], Awaitable[dict[bytes, Node]]]
Finder = Callable[[Dir, bytes], Awaitable[Node | None]]


def split_path(path: str | bytes) -> list[bytes]:
    """Validate and split a vault path (``"a/b"``, ``"/a/b/"``); ``""`` or ``"/"`` is the root."""
    raw = os.fsencode(path) if isinstance(path, str) else bytes(path)
    if b"\0" in raw:
        raise UsageError("invalid path: contains a NUL byte")
    parts = [p for p in raw.split(b"/") if p != b""]
    for p in parts:
        if p in (b".", b".."):
            raise UsageError(f"invalid path {os.fsdecode(raw)!r}: '.' and '..' components are not allowed")
        if len(p) > 255:
            raise UsageError("invalid path: a name is longer than 255 bytes")
    return parts


def show(parts: list[bytes]) -> str:
    return "/" + os.fsdecode(b"/".join(parts))


class Tree:
    """One generation's catalog, being edited. Callers serialize edits (the vault's lock)."""

    def __init__(self, root: Dir, load: Loader, find: Finder | None = None) -> None:
        self.root = root
        self.loader = load
        #: one entry of a directory not loaded yet (:meth:`peek`); None: reads load directories whole
        self.finder = find
        # where each loaded page is stored: a writer never places one page at two paths of a tree,
        # and a co-writer who does (a 12 KB catalog implying 10^5 files) is refused at the second
        self._page_owner: dict[tuple[str, int], int] = {}  # (object, offset) → id() of the Dir that loads it
        #: a merge placed another tree's pieces here: every dirty directory is saved into new pages
        #: (none keeps a page of its previous version, which the other tree may hold elsewhere)
        self.fresh_pages = False

    async def children(self, d: Dir, where: list[bytes] | None = None) -> dict[bytes, Node]:
        """The entries of ``d``, loaded on first use. A damaged page is an IntegrityError naming
        ``where`` (the directory's path): only that subtree is unreadable."""
        if d.children is None:
            places = [(ref.object_name, ref.off) for ref in d.pages]
            claimed = []
            try:
                for place in places:
                    if self._page_owner.setdefault(place, id(d)) != id(d) or place in claimed:
                        raise IntegrityError("a catalog page is referenced twice in one generation "
                                             "(a hostile or damaged catalog)")
                    claimed.append(place)
                kids = await self.loader(d)
                if d.found:  # nodes a read already handed out stay the tree's own (an edit may follow)
                    kids.update((name, node) for name, node in d.found.items() if name in kids)
                d.children, d.found = kids, None
            except BaseException as exc:
                if d.children is None:  # not loaded: a retry (after a transient error) may claim again
                    for place in claimed:
                        self._page_owner.pop(place, None)
                if not isinstance(exc, IntegrityError):
                    raise
                if where is None:
                    raise
                raise type(exc)(f"{show(where)}: {exc.message}") from None
        return d.children

    async def lookup(self, parts: list[bytes]) -> Node:
        """The node at ``parts``, every directory on the way loaded whole (an edit's lookup: a
        directory it marks dirty must hold all its entries)."""
        return await self._walk(parts, peek=False)

    async def peek(self, parts: list[bytes]) -> Node:
        """The node at ``parts`` for a read: a directory not loaded yet is searched for the one entry
        (the finder bisects its pages) rather than loaded whole; a later load keeps the found nodes."""
        return await self._walk(parts, peek=self.finder is not None)

    async def _walk(self, parts: list[bytes], *, peek: bool) -> Node:
        node: Node = self.root
        for i, name in enumerate(parts):
            if not isinstance(node, Dir):
                raise NotFound(f"{show(parts[:i])} is not a directory")
            child = await self._find(node, name, parts[:i]) if peek and node.children is None else \
                (await self.children(node, parts[:i])).get(name)
            if child is None:
                raise NotFound(f"{show(parts)}: no such file or directory")
            node = child
        return node

    async def _find(self, d: Dir, name: bytes, where: list[bytes]) -> Node | None:
        assert self.finder is not None
        found = d.found if d.found is not None else {}
        node = found.get(name)
        if node is None:
            try:
                node = await self.finder(d, name)
            except IntegrityError as exc:
                raise type(exc)(f"{show(where)}: {exc.message}") from None
            if node is not None:
                found[name] = node
                d.found = found
        return node

    async def _dir_chain(self, parts: list[bytes], create: bool) -> list[Dir]:
        """The directories from the root down to ``parts`` (inclusive), creating them if asked."""
        chain = [self.root]
        for i, name in enumerate(parts):
            kids = await self.children(chain[-1], parts[:i])
            node = kids.get(name)
            if node is None:
                if not create:
                    raise NotFound(f"{show(parts[: i + 1])}: no such directory")
                node = Dir(Meta.now(0o755), children={}, dirty=True)
                kids[name] = node
            if not isinstance(node, Dir):
                raise NotADirectory(f"{show(parts[: i + 1])} is not a directory")
            chain.append(node)
        return chain

    @staticmethod
    def _touch(chain: list[Dir]) -> None:
        for d in chain:
            d.dirty = True

    async def put(self, parts: list[bytes], node: Node, *, parents: bool = True, replace: bool = True
                  ) -> Node | None:
        """Place ``node`` at ``parts``; returns what it replaced (None: nothing). A directory is never
        silently replaced by a file or the reverse."""
        if not parts:
            raise UsageError("cannot replace the root directory")
        chain = await self._dir_chain(parts[:-1], create=parents)
        kids = await self.children(chain[-1], parts[:-1])
        old = kids.get(parts[-1])
        if old is not None:
            if not replace:
                raise AlreadyExists(f"{show(parts)} already exists")
            if isinstance(old, Dir) != isinstance(node, Dir):
                kind = "a directory" if isinstance(old, Dir) else "not a directory"
                raise AlreadyExists(f"{show(parts)} exists and is {kind}")
            if isinstance(old, Dir) and isinstance(node, Dir) and await self.children(old, parts):
                raise AlreadyExists(f"{show(parts)} is a directory that is not empty")
        kids[parts[-1]] = node
        self._touch(chain)
        return old

    async def mkdir(self, parts: list[bytes], parents: bool = False, exist_ok: bool = False) -> Dir:
        if not parts:
            if exist_ok:
                return self.root
            raise AlreadyExists("/ already exists")
        chain = await self._dir_chain(parts[:-1], create=parents)
        kids = await self.children(chain[-1], parts[:-1])
        old = kids.get(parts[-1])
        if old is not None:
            if isinstance(old, Dir) and exist_ok:
                return old
            raise AlreadyExists(f"{show(parts)} already exists")
        d = Dir(Meta.now(0o755), children={}, dirty=True)
        kids[parts[-1]] = d
        self._touch(chain)
        return d

    async def remove(self, parts: list[bytes], recursive: bool = False) -> Node:
        if not parts:
            raise UsageError("cannot remove the root directory")
        chain = await self._dir_chain(parts[:-1], create=False)
        kids = await self.children(chain[-1], parts[:-1])
        node = kids.get(parts[-1])
        if node is None:
            raise NotFound(f"{show(parts)}: no such file or directory")
        if isinstance(node, Dir) and not recursive and await self.children(node, parts):
            raise DirectoryNotEmpty(f"{show(parts)} is a directory that is not empty (use recursive)")
        del kids[parts[-1]]
        self._touch(chain)
        return node

    async def move(self, src: list[bytes], dst: list[bytes], replace: bool = True) -> None:
        if not src or not dst:
            raise UsageError("cannot move the root directory")
        if dst[: len(src)] == src:
            if dst == src:
                return
            raise UsageError(f"cannot move {show(src)} into itself")
        node = await self.lookup(src)
        await self.put(dst, node, parents=False, replace=replace)
        await self.remove(src, recursive=True)

    async def touch(self, parts: list[bytes]) -> None:
        """Mark the path (after an in-place metadata change) and its ancestors changed."""
        chain = await self._dir_chain(parts[:-1], create=False) if parts else []
        node = await self.lookup(parts)
        if isinstance(node, Dir):
            node.dirty = True
            await self.children(node, parts)
        self._touch(chain or [self.root])

    def mark_clean(self) -> None:
        self.fresh_pages = False
        stack = [self.root]  # iterative: a tree may be deeper than Python's recursion limit
        while stack:
            d = stack.pop()
            d.dirty = False
            stack.extend(c for c in (d.children or {}).values() if isinstance(c, Dir) and c.dirty)


def conflict_name(name: bytes, client_id: bytes, when: float | None = None) -> bytes:
    """``name (conflict <client id, 8 hex> <UTC YYYYmmddTHHMMSSZ>)`` (DESIGN.md §6)."""
    stamp = datetime.fromtimestamp(time.time() if when is None else when, UTC).strftime("%Y%m%dT%H%M%SZ")
    return name + f" (conflict {client_id.hex()[:8]} {stamp})".encode()


def _same(a: Node | None, b: Node | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.key() == b.key()


async def merge(base: Tree, ours: Tree, theirs: Tree, client_id: bytes, *, ours_wins: bool = False,
                theirs_base: Tree | None = None) -> Tree:
    """Three-way merge of our edits (relative to ``base``) onto ``theirs``.

    Different paths merge; the same path changed on both sides keeps both, ours renamed to a
    conflict copy (``ours_wins``: theirs is the copy — an ingested drop over the owner's edits).
    Clean (non-dirty) subtrees of ours at their base place equal base, so theirs is taken for them.
    A clean subtree of ours that moved is rewritten (see :func:`_unshare`): theirs may still hold
    it, and one page at two paths is refused as hostile by every reader.

    ``theirs_base``: what theirs changed is judged against this tree instead of ``base``: ``base``
    rewritten under a new key epoch (``rekey --rewrite``), the same files under other refs. A
    directory ours edited is then merged entry by entry even where theirs did not change it, so
    that what ours left alone in it is taken rewritten from theirs.
    """

    async def kids(t: Tree, d: Node | None) -> dict[bytes, Node]:
        return dict(await t.children(d)) if isinstance(d, Dir) else {}

    if not ours.root.dirty:
        return Tree(theirs.root, theirs.loader, theirs.finder)
    tb = base if theirs_base is None else theirs_base
    top: dict[bytes, Node] = {}
    root = Dir(ours.root.meta, children=top, dirty=True)
    # iterative (a tree may be deeper than Python's recursion limit): each item fills one merged directory
    work: list[tuple[Node | None, Node | None, Dir, Dir, dict[bytes, Node]]] = [
        (base.root, tb.root, ours.root, theirs.root, top)]
    while work:
        b, bt, o, t, out = work.pop()
        bk, btk, ok, tk = await kids(base, b), await kids(tb, bt), await kids(ours, o), await kids(theirs, t)
        for name in sorted(set(bk) | set(ok) | set(tk)):
            bn, btn, on, tn = bk.get(name), btk.get(name), ok.get(name), tk.get(name)
            pick: Node | None
            both_dirs = isinstance(on, Dir) and isinstance(tn, Dir) and on.dirty
            if _same(on, bn):
                pick = tn
            elif not (both_dirs and theirs_base is not None) and (_same(tn, btn) or _same(on, tn)):
                pick = on
                await _unshare(base, ours, on, bn)
            elif both_dirs:
                assert isinstance(on, Dir) and isinstance(tn, Dir)
                sub: dict[bytes, Node] = {}
                pick = Dir(on.meta, children=sub, dirty=True)
                work.append((bn, btn, on, tn, sub))
            else:  # both changed it (a clean dir of ours here differs from base: ours moved it here)
                if on is not None:
                    await _unshare(base, ours, on, bn)
                pick, copy = (on, tn) if ours_wins else (tn, on)
                if copy is not None:
                    out[conflict_name(name, client_id)] = copy
            if pick is not None:
                out[name] = pick
    merged = Tree(root, theirs.loader, theirs.finder)
    merged.fresh_pages = True
    return merged


async def _unshare(base: Tree, ours: Tree, node: Node | None, was: Node | None) -> None:
    """Mark every clean directory in ``node`` (ours, placed where base had ``was``) that is not at
    its base place dirty, all the way down, so the commit writes it into fresh pages.

    Only the dirty part of ours is walked (plus the base directories beside it); a moved clean
    subtree is loaded whole, which is the price of merging a move (rare: a lost commit race).
    """
    stack: list[tuple[Node | None, Node | None]] = [(node, was)]
    while stack:
        n, w = stack.pop()
        if not isinstance(n, Dir):
            continue
        if not n.dirty:
            if not _same(n, w):
                await _rewrite(ours, n)
            continue
        old = dict(await base.children(w)) if isinstance(w, Dir) else {}
        stack.extend((c, old.get(name)) for name, c in (await ours.children(n)).items())


async def _rewrite(tree: Tree, top: Dir) -> None:
    """Mark ``top`` and every directory below it dirty (loading them): saved anew, into new pages."""
    stack = [top]
    while stack:
        d = stack.pop()
        d.dirty = True
        stack.extend(c for c in (await tree.children(d)).values() if isinstance(c, Dir))
