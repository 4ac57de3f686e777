"""The vault: the asyncio library API over one unlocked vault (DESIGN.md §3–§7).

A :class:`Vault` owns the object store, the two open packs, the catalog tree of the generation it
is editing and the local state. Every method validates its arguments before touching anything and
raises only :class:`VaultError` subclasses. Edits are serialized by one lock; content uploads of
concurrent ``put`` calls run in parallel. ``put`` uploads a file's chunks before it returns; other
clients see the change at :meth:`Vault.commit`, which flushes the packs, writes the changed
catalog pages and then the commit record with a create-only put (DESIGN.md §6, CRYPTO.md §5.2).
Losing that race reloads the new head, merges three ways and tries the next generation.

Cancellation: a cancelled ``put``/``commit`` leaves the vault at its last commit; objects it
already uploaded are unreferenced garbage until a later commit reuses them (content addressing).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hmac
import os
import stat as stat_mod
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import replace
from pathlib import Path
from types import TracebackType

from ..actors.mixer import Mixer
from ..backends.base import Backend
from ..config import Tuning
from .cache import Cache
from .catalog import Catalog
from .commits import ChainHead, Commit, commit_name, seal_commit, verify_successor
from .content import ContentWriter, Source, plan_patch, read_blobs
from .diff import Change, diff_trees, summarize
from .errors import IntegrityError, NotFound, UsageError, VaultError
from .export import ExportOptions, export_tree
from .history import History
from .index import BlobIndex
from .keys import KIND_CHUNK, KIND_DATA_PACK, KIND_PAGE_PACK
from .packs import PackWriter, PendingRef, final_ref
from .pages import XATTR_NAME_MAX, XATTR_SIZE_MAX, BlobRef
from .pipeline import Ingest, ProgressHook
from .reader import VaultFile
from .results import LogEntry, Stat, VerifyReport, node_stat
from .store import ObjectStore
from .tree import Dir, File, Link, Loader, Meta, Node, Tree, merge, show, split_path


class Vault:
    """An open, unlocked vault. Create with :func:`sigmavault.create` or :func:`sigmavault.open`."""

    def __init__(self, *, url: str, backend: Backend, history: History, store: ObjectStore, cache: Cache,
                 head: ChainHead, inline_max: int, tuning: Tuning) -> None:
        self.url = url
        self._backend = backend
        self._history = history
        self._store = store
        self._cache = cache
        self._head = head
        self._tuning = tuning
        self._readahead = tuning.readahead
        self._inline_max = inline_max
        self._mixer: Mixer | None = None
        self._mixer_lock = asyncio.Lock()
        self._lock = asyncio.Lock()
        self._index = BlobIndex(cache, backend, lambda: (self._head.gen, self._tree_at(self._head.commit)))
        self._data_pack = PackWriter(store, KIND_DATA_PACK, on_sealed=self._index.stored)
        self._page_pack = PackWriter(store, KIND_PAGE_PACK)
        self._catalog = Catalog(store, self._page_pack, cache, tuning.page_target)
        self._content = ContentWriter(store, self._data_pack, self._index)
        self._tree = self._tree_at(head.commit)
        self._closed = False
        self._readonly = False
        #: commit records sent whose answer was lost, by generation: if one landed it is ours
        self._unsure: dict[int, bytes] = {}
        #: seconds between adopting other clients' commits before a read (None: only :meth:`refresh`)
        self.refresh_interval: float | None = tuning.refresh_interval
        self._refreshed = time.monotonic()
        #: shown once after ``create``: the recovery code (a secret; print it for the user, never log it)
        self.recovery_code: str | None = None

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Vault:
        return self

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
                        ) -> None:
        try:
            if et is None and self.pending:
                await self.commit()
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Release the backend and the cache. Does not commit. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._readonly:
            return  # a snapshot view shares the vault's resources
        try:
            if self._mixer is not None:
                await self._mixer.aclose()
        finally:
            try:
                await self._backend.aclose()
            finally:
                self._cache.close()

    @property
    def generation(self) -> int:
        """The generation this vault shows (the head it opened, committed or last refreshed to)."""
        return self._head.gen

    @property
    def fingerprint(self) -> str:
        """The vault's fingerprint (hex): compare it with the one shown at ``create`` to trust a new device."""
        return self._history.fingerprint.hex()

    @property
    def pending(self) -> bool:
        """True when there are edits not yet committed."""
        return self._tree.root.dirty

    @property
    def backend(self) -> Backend:
        """The object store underneath (sealed objects only)."""
        return self._backend

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("the vault is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self._readonly:
            raise UsageError("this is a read-only snapshot of an earlier generation")

    def _tree_at(self, c: Commit, load: Loader | None = None) -> Tree:
        root = Dir(Meta(0o755, 0, 0, c.time * 10**9, c.time * 10**9), list(c.root))
        return Tree(root, load or self._catalog.load)

    async def rebuild_index(self) -> int:
        """Refill the local dedup index from the catalog of the head now; returns the refs added.

        Not needed after a deleted cache: the first write refills it (damaged subtrees skipped).
        """
        return await self._index.fill(force=True)

    async def _walk_nodes(self, top: Node | None = None, parts: list[bytes] | None = None
                          ) -> AsyncIterator[tuple[list[bytes], Node]]:
        stack: list[tuple[list[bytes], Node]] = [(parts or [], top or self._tree.root)]
        while stack:
            p, n = stack.pop()
            yield p, n
            if isinstance(n, Dir):
                kids = await self._tree.children(n, p)
                stack.extend((p + [k], kids[k]) for k in sorted(kids, reverse=True))

    # --- reading --------------------------------------------------------------------------

    async def _adopt_newer(self, *, only_if_due: bool) -> bool:
        """Adopt other clients' commits (never over pending edits, never in a snapshot or with
        refreshing off); ``only_if_due``: only once ``refresh_interval`` has passed. True if newer."""
        if self.refresh_interval is None or self._readonly or self.pending:
            return False
        if only_if_due and time.monotonic() - self._refreshed < self.refresh_interval:
            return False
        before = self._head.gen
        return await self.refresh() != before

    async def _lookup(self, parts: list[bytes]) -> Node:
        """The node at ``parts`` for a read: refreshed on the timer, and once more on NotFound (the
        path may be another client's newer work)."""
        await self._adopt_newer(only_if_due=True)
        try:
            return await self._tree.lookup(parts)
        except NotFound:
            if not await self._adopt_newer(only_if_due=False):
                raise
            return await self._tree.lookup(parts)

    async def stat(self, path: str | bytes) -> Stat:
        """The metadata of a file, directory or symlink (``"/"`` is the root). Raises NotFound."""
        self._check_open()
        parts = split_path(path)
        node = await self._lookup(parts)
        return node_stat(parts[-1] if parts else b"/", node)

    async def ls(self, path: str | bytes = "/") -> list[Stat]:
        """A directory's entries sorted by name (a file: its own stat alone). Raises NotFound."""
        self._check_open()
        parts = split_path(path)
        node = await self._lookup(parts)
        if not isinstance(node, Dir):
            return [node_stat(parts[-1], node)]
        kids = await self._tree.children(node, parts)
        return [node_stat(name, kids[name]) for name in sorted(kids)]

    async def walk(self, path: str | bytes = "/") -> AsyncIterator[tuple[str, Stat]]:
        """Every path below ``path`` (depth first, sorted), with its stat. Raises NotFound."""
        self._check_open()
        parts = split_path(path)
        node = await self._lookup(parts)
        async for p, n in self._walk_nodes(node, parts):
            if p != parts or not isinstance(n, Dir):
                yield show(p), node_stat(p[-1] if p else b"/", n)

    async def _file(self, parts: list[bytes]) -> File:
        node = await self._lookup(parts)
        if not isinstance(node, File):
            raise UsageError(f"{show(parts)} is not a file")
        return node

    async def open_read(self, path: str | bytes, offset: int = 0, length: int | None = None
                        ) -> AsyncGenerator[bytes, None]:
        """Stream a file's content: ``length`` bytes (default: to the end) from byte ``offset``.

        ``async for piece in vault.open_read(path)``; pieces are at most one chunk, fetched with
        readahead and each verified. Stopping early (``break``) releases the stream. Raises
        NotFound, UsageError (not a file, a negative offset or length), IntegrityError (naming
        the path).
        """
        self._check_open()
        if offset < 0 or (length is not None and length < 0):
            raise UsageError("offset and length must not be negative")
        parts = split_path(path)
        node = await self._file(parts)
        async with contextlib.aclosing(self._stream(parts, node, offset, length)) as pieces:
            async for piece in pieces:
                yield piece

    async def open(self, path: str | bytes) -> VaultFile:
        """Open a file for reading: ``async with await vault.open(path) as f: await f.read(n)``.

        The :class:`VaultFile` has ``read(size=-1)``, ``seek(offset, whence)``, ``tell()``,
        ``size`` and ``aclose()``; it keeps reading the content the file had when opened, with
        memory bounded by one chunk plus the readahead. Raises NotFound, UsageError (not a file).
        """
        self._check_open()
        parts = split_path(path)
        node = await self._file(parts)
        return VaultFile(show(parts), node, lambda n, off, ln: self._stream(parts, n, off, ln), self._check_open)

    async def _stream(self, parts: list[bytes], node: File, offset: int, length: int | None
                      ) -> AsyncGenerator[bytes, None]:
        """The one read route: ``node``'s content in ``[offset, offset+length)``, verified blob by blob."""
        end = node.size if length is None else min(node.size, offset + length)
        if offset >= end:
            return
        if node.inline is not None:
            yield node.inline[offset:end]
            return
        if not all(isinstance(b, BlobRef) or b.done for b in node.blobs):
            await self._content.flush()  # the tail is still in the open pack: make it readable
        blobs, pos = [], 0
        for b in node.blobs:  # only the blobs the range touches: no readahead past its end
            if pos >= end:
                break
            blobs.append(final_ref(b))
            pos += b.length
        left = end - offset
        try:
            mixer = await self.mixer() if any(b.kind == KIND_CHUNK for b in blobs) else None
            async with contextlib.aclosing(read_blobs(self._store, blobs, offset, self._readahead, mixer)) as pieces:
                async for piece in pieces:  # closed at once if our consumer stops early
                    if len(piece) >= left:
                        yield piece[:left]
                        return
                    left -= len(piece)
                    yield piece
        except IntegrityError as exc:
            raise IntegrityError(f"{show(parts)}: {exc.message}") from None

    async def read_bytes(self, path: str | bytes, offset: int = 0, length: int | None = None) -> bytes:
        """A file's content (or ``length`` bytes from ``offset``) in memory. Prefer :meth:`open_read`
        or :meth:`open` for large files. Raises NotFound, UsageError, IntegrityError."""
        return b"".join([piece async for piece in self.open_read(path, offset, length)])

    async def get(self, path: str | bytes, dest: str | os.PathLike[str], *, overwrite: bool = False) -> int:
        """Copy a file, symlink or whole directory out of the vault to ``dest``; returns the file bytes written.

        Named like ``cp -r``: a file into an existing directory lands inside it; a tree becomes an
        absent or empty ``dest``; a non-empty one raises AlreadyExists unless ``overwrite`` (merge,
        replacing files of the same name). Symlinks on the disk below ``dest`` are never followed;
        setuid/setgid/sticky bits are dropped. Files are written to a temporary name and renamed
        into place, so an interrupted export never leaves a truncated file under the real name.
        """
        self._check_open()
        return (await export_tree(self, path, Path(os.fspath(dest)), ExportOptions(force=overwrite))).bytes

    # --- writing --------------------------------------------------------------------------

    async def put(self, path: str | bytes, source: Source, *, mode: int | None = None,
                  mtime_ns: int | None = None) -> Stat:
        """Store ``source`` (local path, bytes, binary file object or async iterator of bytes) at ``path``.

        Parent directories are created. An existing file is replaced; a directory is not.
        """
        self._check_writable()
        parts = split_path(path)
        if not parts:
            raise UsageError("a file needs a name")
        meta = await self._meta_of(source, mode, mtime_ns)
        async with self.ingest() as ing:
            await ing.add(parts, source, meta)
        return await self.stat(b"/".join(parts))

    async def mixer(self) -> Mixer:
        """The vault's mixer (started on first use, closed with the vault)."""
        async with self._mixer_lock:
            if self._mixer is None:
                t = self._tuning
                mixer = Mixer.for_epoch(self._store.keys, self._store.chunk_size, self._store.sealer.pad_floor,
                                        kind=t.mixer, workers=t.mixer_workers, slots=t.mixer_slots)  # type: ignore[arg-type]
                await mixer.start()
                self._mixer = mixer
            return self._mixer

    @contextlib.asynccontextmanager
    async def ingest(self, progress: ProgressHook | None = None) -> AsyncIterator[Ingest]:
        """A write pipeline for many files: ``await ing.add(parts, source, meta)`` for each.

        Files reach the catalog as they complete; leaving waits for all of them. Nothing is committed.
        """
        self._check_writable()

        async def file_done(parts: list[bytes], node: File) -> None:
            async with self._lock:
                await self._tree.put(parts, node)

        mixer = await self.mixer()
        async with Ingest(placement=self._content.placement(self._inline_max), mixer=mixer,
                          backend=self._backend, stored=self._content.stored,
                          file_done=file_done, uploads=self._tuning.upload_concurrency,
                          mixers=self._tuning.mixer_slots, progress=progress) as ing:
            yield ing

    @property
    def chunk_size(self) -> int:
        """The vault's chunk size in bytes (fixed at ``create``)."""
        return self._store.chunk_size

    async def patch(self, path: str | bytes, size: int, chunks: Mapping[int, bytes], *, mode: int | None = None,
                    mtime_ns: int | None = None) -> Stat:
        """Rewrite a file (or create it) re-mixing only the chunks that changed (the mount's write path).

        The new content has ``size`` bytes; chunk ``i`` covers ``[i·chunk_size, (i+1)·chunk_size)``.
        ``chunks`` maps indices to their complete new bytes; every other chunk below the new size is
        taken unchanged from the existing file, which must then have it at the same length (a caller
        that shrinks or grows a partial last chunk supplies it). Files that end up at most
        ``inline_max`` bytes are stored inline. Raises UsageError for an inconsistent patch.
        """
        self._check_writable()
        parts = split_path(path)
        if not parts or size < 0:
            raise UsageError("invalid patch")
        cs = self._store.chunk_size
        try:
            old = await self._tree.lookup(parts)
        except NotFound:
            old = None
        if old is not None and not isinstance(old, File):
            raise UsageError(f"{show(parts)} is not a file")
        pieces = plan_patch(old, size, chunks, cs, show(parts))
        meta = old.meta if old is not None else Meta.now(0o644)
        meta.mtime_ns = time.time_ns() if mtime_ns is None else mtime_ns
        meta.ctime_ns = time.time_ns()
        if mode is not None:
            meta.mode = mode & 0o7777
        if size <= self._inline_max:
            if any(isinstance(p, PendingRef) and not p.done for p in pieces):
                await self._content.flush()
            inline = b"".join([p if isinstance(p, bytes) else await self._store.read(final_ref(p)) for p in pieces])
            node = File(meta, size, [], inline)
        else:
            blobs = await self._content.write_pieces(pieces, self._tuning.upload_concurrency)
            node = File(meta, size, blobs, None)
        async with self._lock:
            await self._tree.put(parts, node)
        return node_stat(parts[-1], node)

    @staticmethod
    async def _meta_of(source: Source, mode: int | None, mtime_ns: int | None) -> Meta:
        meta = Meta.now(0o644)
        if isinstance(source, (str, os.PathLike)):
            try:
                st = await asyncio.to_thread(os.stat, os.fspath(source))
            except FileNotFoundError:
                raise NotFound(f"{os.fspath(source)}: no such file") from None
            if stat_mod.S_ISDIR(st.st_mode):
                raise UsageError(f"{os.fspath(source)} is a directory")
            meta = Meta.of_stat(st)
        if mode is not None:
            meta.mode = mode & 0o7777
        if mtime_ns is not None:
            meta.mtime_ns = mtime_ns
        return meta

    async def mkdir(self, path: str | bytes, *, parents: bool = False, exist_ok: bool = False,
                    mode: int = 0o755) -> None:
        """Make a directory (``parents``: and missing parents). Raises AlreadyExists (unless
        ``exist_ok`` and it is a directory), NotFound (a missing parent), UsageError."""
        self._check_writable()
        parts = split_path(path)
        async with self._lock:
            d = await self._tree.mkdir(parts, parents=parents, exist_ok=exist_ok)
            if d.dirty:
                d.meta.mode = mode & 0o7777

    async def symlink(self, path: str | bytes, target: str | bytes, *, replace: bool = False,
                      mtime_ns: int | None = None) -> None:
        """Create a symlink at ``path`` pointing to ``target`` (stored as given, never followed)."""
        self._check_writable()
        parts = split_path(path)
        raw = os.fsencode(target) if isinstance(target, str) else bytes(target)
        if not raw or b"\0" in raw:
            raise UsageError("invalid symlink target")
        meta = Meta.now(0o777)
        if mtime_ns is not None:
            meta.mtime_ns = mtime_ns
        async with self._lock:
            await self._tree.put(parts, Link(meta, raw), replace=replace)

    async def set_meta(self, path: str | bytes, *, mode: int | None = None, mtime_ns: int | None = None,
                       uid: int | None = None, gid: int | None = None) -> None:
        """Change the permission bits, modification time or owner ids of a path. Raises NotFound."""
        self._check_writable()
        parts = split_path(path)
        async with self._lock:
            node = await self._tree.lookup(parts)
            m = node.meta
            new = (m.mode if mode is None else mode & 0o7777, m.mtime_ns if mtime_ns is None else mtime_ns,
                   m.uid if uid is None else uid, m.gid if gid is None else gid)
            if new == (m.mode, m.mtime_ns, m.uid, m.gid):
                return  # nothing changes: no new generation for an unchanged re-import
            m.mode, m.mtime_ns, m.uid, m.gid = new
            m.ctime_ns = time.time_ns()
            await self._tree.touch(parts)

    async def rm(self, path: str | bytes, *, recursive: bool = False) -> None:
        """Remove a file, symlink or directory (a non-empty one only with ``recursive``).

        Raises NotFound, UsageError (the root, or a non-empty directory without ``recursive``).
        """
        self._check_writable()
        parts = split_path(path)
        async with self._lock:
            await self._tree.remove(parts, recursive=recursive)

    async def mv(self, src: str | bytes, dst: str | bytes, *, replace: bool = True) -> None:
        """Move or rename ``src`` to ``dst`` (whose parent must exist). An existing ``dst`` file is
        replaced unless ``replace=False``; a directory is never replaced by a file or the reverse.
        Raises NotFound, AlreadyExists, UsageError (moving a directory into itself)."""
        self._check_writable()
        s, d = split_path(src), split_path(dst)
        async with self._lock:
            await self._tree.move(s, d, replace=replace)

    # --- for the mount: chunk-granular reads, extended attributes ----------------------------

    async def chunks(self, path: str | bytes) -> tuple[int, bytes | None, list[BlobRef]]:
        """A file's size, its inline content (or None) and its blob refs in order (blob i = chunk i).

        Blobs still in the open data pack are flushed first, so every ref returned is readable
        with :meth:`read_chunk`. Raises NotFound, UsageError (not a file).
        """
        self._check_open()
        node = await self._file(split_path(path))
        if node.inline is not None:
            return node.size, node.inline, []
        if not all(isinstance(b, BlobRef) or b.done for b in node.blobs):
            await self._content.flush()
        return node.size, None, [final_ref(b) for b in node.blobs]

    async def read_chunk(self, ref: BlobRef) -> bytes:
        """One blob's plaintext (a ref from :meth:`chunks`), verified against its keyed id.

        Raises IntegrityError (missing, tampered or substituted object).
        """
        self._check_open()
        return await self._store.read(ref)

    async def xattrs(self, path: str | bytes) -> dict[bytes, bytes]:
        """The extended attributes of a path (a copy). Raises NotFound."""
        self._check_open()
        return dict((await self._tree.lookup(split_path(path))).meta.xattrs)

    async def set_xattr(self, path: str | bytes, name: bytes, value: bytes | None) -> None:
        """Set (or with ``value=None`` remove) one extended attribute of a path.

        Raises NotFound (no such path, or removing an attribute that is not set) and UsageError
        (a name that is empty, contains NUL or exceeds 255 bytes; a value over 64 KiB).
        """
        self._check_writable()
        if not 0 < len(name) <= XATTR_NAME_MAX or b"\0" in name:
            raise UsageError("invalid extended attribute name")
        if value is not None and len(value) > XATTR_SIZE_MAX:
            raise UsageError("extended attribute value too large")
        parts = split_path(path)
        async with self._lock:
            node = await self._tree.lookup(parts)
            if value is None:
                if node.meta.xattrs.pop(name, None) is None:
                    raise NotFound("no such extended attribute")
            else:
                node.meta.xattrs[name] = bytes(value)
            node.meta.ctime_ns = time.time_ns()
            await self._tree.touch(parts)

    # --- commits --------------------------------------------------------------------------

    async def commit(self) -> int:
        """Make all edits visible as the next generation; returns it (the current one if nothing changed).

        On a lost race with another client: reload, three-way merge (conflicts kept as conflict
        copies), retry. A commit of ours whose answer was lost is recognised by its bytes and is
        never merged as a rival's. Modelled in ``models/commit.py``: change both together.
        Raises BackendError, IntegrityError, RollbackError.
        """
        self._check_writable()
        async with self._lock:
            if not self.pending:
                return self._head.gen
            base = self._tree_at(self._head.commit)
            for _attempt in range(64):
                # a keystore rewritten elsewhere must be seen before we commit under it (CRYPTO.md §5.2 step 3)
                await self._history.reread_keystore()
                await self._content.flush()
                root = await self._catalog.save(self._tree)
                await self._page_pack.flush()
                gen = self._head.gen + 1
                c = Commit(self._history.vault_id, gen, self._head.hash, self._store.epoch,
                           self._history.keystore_gen, tuple(root), self._history.client_id, int(time.time()))
                data = seal_commit(self._store.sealer, c)
                try:
                    created = await self._store.put(commit_name(gen), data)
                except BaseException:
                    self._unsure[gen] = data  # it may have landed though we saw an error
                    raise
                # a retried put whose first answer was lost finds our own bytes there: we won
                if created or await self._holds(gen, data):
                    self._head = verify_successor(self._head, gen, data, self._history.open_commit)
                    self._history.advance(self._head)
                    self._tree.mark_clean()
                    self._index.committed(gen)
                    self._unsure.clear()
                    return gen
                # another client won generation ``gen``: merge onto the new head and try the next one
                base = await self._catch_up(base)
            raise VaultError("could not commit: the vault keeps changing under us; try again")

    async def _holds(self, gen: int, data: bytes) -> bool:
        """Whether ``c/{gen}`` holds exactly ``data`` (sealing is randomised: equal bytes are ours)."""
        found = await self._history.fetch(gen)
        return found is not None and hmac.compare_digest(found, data)

    async def _catch_up(self, base: Tree) -> Tree:
        """Move to the newest head, merging the pending edits onto it; returns the new merge base.

        A commit of ours whose answer was lost (``_unsure``) is our base, not theirs: merging it
        as theirs would turn our own edits that others have since replaced into conflict copies.
        """
        nxt = self._head.gen + 1
        sent = self._unsure.pop(nxt, None)
        if sent is not None and await self._holds(nxt, sent):
            self._head = verify_successor(self._head, nxt, sent, self._history.open_commit)
            self._history.advance(self._head)
            base = self._tree_at(self._head.commit)
        new_head = await self._history.find_head(self._head)
        if new_head.gen != self._head.gen:
            theirs = self._tree_at(new_head.commit)
            self._tree = await merge(base, self._tree, theirs, self._history.client_id)
            base = theirs
            self._head = new_head
        return base

    async def refresh(self) -> int:
        """Adopt commits made by other clients now; returns the generation.

        With edits pending, they are merged onto the newer head (as :meth:`commit` does). Reads
        also refresh by themselves every ``refresh_interval`` seconds and when a path is not found,
        but only while nothing is pending. Raises RollbackError, IntegrityError, BackendError.
        """
        self._check_open()
        self._refreshed = time.monotonic()
        async with self._lock:
            if self.pending:
                await self._catch_up(self._tree_at(self._head.commit))
                return self._head.gen
            new_head = await self._history.find_head(self._head)
            if new_head.gen != self._head.gen:
                self._tree = self._tree_at(new_head.commit)
                self._head = new_head
            return self._head.gen

    async def at(self, generation: int) -> Vault:
        """A read-only view of an earlier generation (a snapshot): ls, stat, walk, open_read, get.

        Raises NotFound for a generation that does not exist yet. The view shares this vault's
        connections; it needs no closing, and it fails once this vault is closed.
        """
        self._check_open()
        if not 0 <= generation <= self._head.gen:
            raise NotFound(f"generation {generation} does not exist (the newest is {self._head.gen})")
        view = copy.copy(self)
        view._tree = self._tree_at(await self._history.commit_at(generation))
        view._readonly = True
        view._closed = False
        return view

    async def diff(self, old: int, new: int | None = None) -> AsyncIterator[Change]:
        """Changes from generation ``old`` to ``new`` (default: the current tree, edits included)."""
        a = (await self.at(old))._tree
        b = self._tree if new is None else (await self.at(new))._tree
        async for change in diff_trees(a, b):
            yield change

    async def log(self, limit: int | None = None, *, changes: bool = False) -> list[LogEntry]:
        """The generations, newest first (the newest ``limit`` of them). ``changes``: also what each
        changed against the one before (unchanged subtrees are not read)."""
        self._check_open()
        out = []
        stop = -1 if limit is None else max(-1, self._head.gen - limit)
        for gen in range(self._head.gen, stop, -1):
            c = await self._history.commit_at(gen)
            entry = LogEntry(gen, c.time, c.client.hex()[:8])
            if changes:
                before = self._tree_at(await self._history.commit_at(max(0, gen - 1)))  # 0 is the empty start
                s = await summarize(before, self._tree_at(c))
                entry = replace(entry, added=s.added, modified=s.modified, removed=s.removed, bytes=s.bytes)
            out.append(entry)
        return out

    async def verify(self, full: bool = False) -> VerifyReport:
        """Check every generation and every object (``full``: download and authenticate everything,
        trusting no cache); see :mod:`sigmavault.engine.verify`."""
        from .verify import verify_vault

        self._check_open()
        return await verify_vault(self, full)
