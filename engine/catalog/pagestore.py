"""Between the in-memory tree and sealed catalog pages: load a directory, save the dirty ones.

Loading a directory fetches its pages (from the local cache when present, re-verified by keyed
id; else from page packs through the store) and decodes them strictly. Saving walks the dirty
directories bottom-up, encodes each into pages split by name range, appends them to the open
page pack and records their refs in the parent's entry, so only the paths that changed are
rewritten (copy-on-write). The catalog counts its page loads the local cache answered
(``page_hits``) and those it fetched instead (``page_misses``, a cached page that fails its keyed
id check included); a ``verify --full`` load through its own reader counts as neither.
"""

from __future__ import annotations

import hmac
import os
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence

from ..errors import IntegrityError
from ..format.commits import Commit
from ..format.pages import DIR, FILE, LINK, BlobRef, Entry, PageView, encoded_page_runs, view_page
from ..format.refs import final_ref
from ..local.cache import Cache
from ..repo.packs import PackWriter
from ..repo.reader import BlobReader
from ..repo.store import ObjectStore
from .tree import Dir, File, Link, Loader, Meta, Node, Tree

#: the encoded bytes of the decoded pages a catalog keeps in memory (their objects take ~2-3x this)
DECODED_MEMO_BYTES = 8 << 20


def node_from_entry(e: Entry) -> Node:
    meta = Meta(e.mode, e.uid, e.gid, e.mtime_ns, e.ctime_ns, dict(e.xattrs))
    if e.type == FILE:
        assert e.size is not None
        return File(meta, e.size, list(e.blobs or ()), e.inline)
    if e.type == DIR:
        return Dir(meta, list(e.pages or ()))
    assert e.target is not None
    return Link(meta, e.target)


def entry_from_node(name: bytes, node: Node) -> Entry:
    m = node.meta
    x = tuple(sorted(m.xattrs.items())) if m.xattrs else ()
    mode = m.mode & 0o7777
    # positional: name, type, mode, uid, gid, mtime_ns, ctime_ns, xattrs, size, blobs, inline, pages, target
    if isinstance(node, File):
        if node.inline is not None:
            return Entry(name, FILE, mode, m.uid, m.gid, m.mtime_ns, m.ctime_ns, x, node.size, None, node.inline)
        return Entry(name, FILE, mode, m.uid, m.gid, m.mtime_ns, m.ctime_ns, x, node.size,
                     tuple(map(final_ref, node.blobs)))
    if isinstance(node, Dir):
        return Entry(name, DIR, mode, m.uid, m.gid, m.mtime_ns, m.ctime_ns, x, pages=tuple(node.pages))
    return Entry(name, LINK, mode, m.uid, m.gid, m.mtime_ns, m.ctime_ns, x, target=node.target)


def _aligned(blobs: tuple[BlobRef, ...], chunk_size: int) -> bool:
    *body, tail = blobs
    return all(b.length == chunk_size for b in body) and tail.length <= chunk_size


def _checked_node(e: Entry, chunk_size: int) -> Node:
    """The node of a loaded entry, after the check a page alone cannot make: a file's blobs are
    chunk-aligned (each but the last exactly one chunk), so every reader maps offsets alike."""
    if e.blobs and not _aligned(e.blobs, chunk_size):
        raise IntegrityError(f"file {os.fsdecode(e.name)!r} has blobs that are not chunk-aligned "
                             "(a hostile or damaged catalog)")
    return node_from_entry(e)


class Catalog:
    """Loads and saves directory pages of one vault."""

    def __init__(self, store: ObjectStore, page_pack: PackWriter, cache: Cache, page_target: int, *,
                 reader: BlobReader | None = None) -> None:
        self._store = store
        self._reader = reader if reader is not None else BlobReader(store)
        self._pages = page_pack
        self._cache = cache
        self._target = min(page_target, store.chunk_size // 2)
        #: page loads answered by the local cache (and verified), and those fetched instead (metrics)
        self.page_hits = self.page_misses = 0
        #: pages read lately, by keyed page id (immutable entries: every load builds fresh nodes from
        #: them), bounded by their encoded bytes; a commit's diff and save reread the big directories it
        #: edited from here rather than decoding them again (10,000 entries: ~0.3 s), and a path lookup
        #: bisects the pages it read before again
        self._decoded: OrderedDict[bytes, PageView] = OrderedDict()
        self._decoded_sizes: dict[bytes, int] = {}
        self._decoded_bytes = 0
        #: the root a reader of a commit uses (the history's effective root: a rewrite maps old ones)
        self.roots: Callable[[Commit], Sequence[BlobRef]] = lambda c: c.root

    async def load(self, d: Dir, *, reader: BlobReader | None = None) -> dict[bytes, Node]:
        """The entries of ``d`` from its pages, after the checks a co-writer's catalog must pass.

        Beyond each page's own strict decoding: pages hold disjoint name ranges in ascending order
        (no name twice, none empty), and every file's blobs are chunk-aligned — each but the last
        exactly one chunk, the last at most one — so every reader (stream, mount, export) maps
        offsets to chunks the same way. Pages come from the local cache or through the vault's blob
        reader; with ``reader`` (``verify --full``: one over a fresh store), every page is downloaded
        and authenticated through it, never taken from the local cache, and the cache is left alone.
        """
        out: dict[bytes, Node] = {}
        cs = self._store.chunk_size
        last: bytes | None = None
        for ref in d.pages:
            entries = await self._entries(ref, reader)
            if not entries:
                raise IntegrityError("the directory has an empty catalog page (a hostile or damaged catalog)")
            if last is not None and not last < entries[0].name:
                raise IntegrityError("the directory's catalog pages overlap or are out of order: "
                                     "a name would appear twice (a hostile or damaged catalog)")
            last = entries[-1].name
            for e in entries:
                out[e.name] = _checked_node(e, cs)
        return out

    async def find(self, d: Dir, name: bytes) -> Node | None:
        """The entry ``name`` of ``d`` without loading the whole directory (a read's path lookup).

        The pages hold ascending, disjoint name ranges, so a bisection over them reads a few pages and
        decodes a few names in each (a 10,000-entry root: 4 of its 12 pages, one entry). The found
        entry passes the checks :meth:`load` makes of it; those of the whole directory (the order of
        every page and entry) are made when it is loaded whole (a listing, an edit, ``verify``).
        """
        refs = d.pages
        lo, hi = 0, len(refs)
        while lo < hi:
            mid = (lo + hi) // 2
            view = await self._view(refs[mid])
            if not len(view):
                raise IntegrityError("the directory has an empty catalog page (a hostile or damaged catalog)")
            if name < view.name(0):
                hi = mid
            elif name > view.name(len(view) - 1):
                lo = mid + 1
            else:
                e = view.find(name)
                if e is None:
                    return None
                return _checked_node(e, self._store.chunk_size)
        return None

    async def _entries(self, ref: BlobRef, reader: BlobReader | None) -> tuple[Entry, ...]:
        """The decoded entries of one page: from the memo of read pages, the local cache or the store."""
        if reader is not None:
            return view_page(await reader.read(ref), chunk_size=self._store.chunk_size).entries()
        return (await self._view(ref)).entries()

    async def _view(self, ref: BlobRef) -> PageView:
        """One page, checked as a document: from the memo of read pages, the local cache or the store."""
        view = self._decoded.get(ref.id)
        if view is not None:
            self._decoded.move_to_end(ref.id)
            self.page_hits += 1
            return view
        data = await self._cache.get_page(ref.id)
        keys = self._store.sealer_of(ref).keys
        if data is None or not hmac.compare_digest(keys.page_id_of(data), ref.id):
            self.page_misses += 1
            data = await self._reader.read(ref)
            self._cache.put_page(ref.id, data)
        else:
            self.page_hits += 1
        view = view_page(data, chunk_size=self._store.chunk_size)
        self._remember(ref.id, view, len(data))
        return view

    def _remember(self, page_id: bytes, view: PageView, size: int) -> None:
        if page_id in self._decoded or size > DECODED_MEMO_BYTES // 4:
            return
        self._decoded[page_id] = view
        self._decoded_sizes[page_id] = size
        self._decoded_bytes += size
        while self._decoded_bytes > DECODED_MEMO_BYTES:
            old, _ = self._decoded.popitem(last=False)
            self._decoded_bytes -= self._decoded_sizes.pop(old)

    async def save(self, tree: Tree) -> list[BlobRef]:
        """Encode every dirty directory into the page pack, children before parents; returns the root's refs.

        Iterative (a tree may be deeper than Python's recursion limit); the order is a depth-first
        post-order by name, as a recursive walk would give.
        """
        if not tree.root.dirty:
            return tree.root.pages
        stack: list[tuple[Dir, Iterator[Dir]]] = [(tree.root, _dirty_subdirs(tree.root))]
        while stack:
            d, pending = stack[-1]
            child = next(pending, None)
            if child is not None:
                stack.append((child, _dirty_subdirs(child)))
            else:
                stack.pop()
                d.pages = await self._save_dir(d, keep=not tree.fresh_pages)
        return tree.root.pages

    async def _save_dir(self, d: Dir, *, keep: bool) -> list[BlobRef]:
        """Encode one directory whose dirty subdirectories are already saved.

        A page of the directory's previous version (remembered decoded) whose name range holds
        exactly its entries still is kept as it is; only the runs of changed pages are encoded
        again, split greedily (DESIGN.md: only what changed is rewritten — a 10,000-entry directory
        with one changed entry writes one page, not forty). Not ``keep``: every page is new.
        """
        kids = d.children or {}
        entries = [entry_from_node(name, kids[name]) for name in sorted(kids)]
        refs: list[BlobRef] = []
        keys = self._store.keys
        for run, kept in self._runs(d.pages, entries) if keep else [(entries, None)]:
            if kept is not None:
                refs.append(kept)
                continue
            at = 0
            for data, n in encoded_page_runs(run, target=self._target, chunk_size=self._store.chunk_size):
                page_id = keys.page_id_of(data)
                refs.append((await self._pages.put(data, page_id)).ref())
                self._cache.put_page(page_id, data)
                self._remember(page_id, PageView.of(tuple(run[at:at + n])), len(data))
                at += n
        d.pages = refs
        return refs

    def _runs(self, old: list[BlobRef], entries: list[Entry]) -> list[tuple[list[Entry], BlobRef | None]]:
        """``entries`` cut at the first names of the ``old`` pages: a page whose share is unchanged is
        kept (its ref), adjacent changed shares are joined into one run to encode."""
        # every old page was read whole when the (now dirty) directory loaded
        views = [self._decoded.get(ref.id) for ref in old]
        pages = [v.entries() if v is not None else () for v in views]
        if not pages or not all(pages):
            return [(entries, None)]
        firsts = [p[0].name for p in pages if p]
        shares: list[list[Entry]] = [[] for _ in pages]
        for e in entries:
            shares[max(bisect_right(firsts, e.name) - 1, 0)].append(e)
        out: list[tuple[list[Entry], BlobRef | None]] = []
        for ref, page, share in zip(old, pages, shares, strict=True):
            if tuple(share) == page:
                out.append((share, ref))
            elif out and out[-1][1] is None:
                out[-1][0].extend(share)
            else:
                out.append((share, None))
        return out

    def tree(self, c: Commit, load: Loader | None = None, *, own: bool = False) -> Tree:
        """The tree commit ``c`` names (its effective root, see :attr:`roots`; ``own``: the commit's own
        root, which a writer's working tree came from); its pages are loaded on demand by ``load``
        (default: :meth:`load`)."""
        root = Dir(Meta(0o755, 0, 0, c.time * 10**9, c.time * 10**9), list(c.root if own else self.roots(c)))
        return Tree(root, load or self.load, None if load else self.find)


def _dirty_subdirs(d: Dir) -> Iterator[Dir]:
    kids = d.children or {}
    return iter([n for name in sorted(kids) if isinstance(n := kids[name], Dir) and n.dirty])
