"""Changing a vault's working tree: files in (``put``, ``ingest``, ``patch``), directories, links, metadata.

:class:`Edits` is the writing half of the :class:`~.vault.Vault` front: a :class:`~.view.View` of
the working tree that can also change it. Content goes through the write pipeline (the vault's
mixer, started on first use) and is durable when a method returns; the tree changes are pending
until :meth:`Vault.commit`. Edits are serialized by one lock (the one the committer takes);
content uploads of concurrent ``put`` calls run in parallel. Snapshots are views without this
half: they have no write method at all.

Cancellation: a cancelled ``put`` leaves the tree unchanged; objects it already uploaded are
unreferenced garbage until a later commit reuses them (content addressing).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat as stat_mod
import time
from collections.abc import AsyncIterator, Mapping

from ..actors.messages import Planned as Planned  # re-exported: the mount hands chunks to ingest() this way
from ..actors.mixer import Mixer
from .catalog.results import Stat, node_stat
from .catalog.tree import Dir, File, Link, Meta, show, split_path
from .content.pipeline import FileDone, Ingest, ProgressHook, StageLedger
from .content.writer import Source, plan_patch
from .errors import IsADirectory, NotFound, UsageError
from .format.pages import XATTR_NAME_MAX, XATTR_SIZE_MAX
from .format.refs import Blob
from .view import Parts, View


class Edits(View):
    """The working tree of a vault, writable (see the module doc); :class:`Vault` adds commits."""

    def __init__(self, parts: Parts, inline_max: int) -> None:
        super().__init__(parts)
        self._inline_max = inline_max
        self._lock = asyncio.Lock()  # serializes tree edits and commits
        self._mixer: Mixer | None = None
        self._mixer_lock = asyncio.Lock()
        self._starting = asyncio.Lock()  # a write run's start: its mixer, and the epoch it seals under
        self._writing = 0  # write runs (ingests) under way
        self._ledger = StageLedger()  # the stage counters of every pipeline run (metrics)

    async def aclose(self) -> None:
        """Release the mixer, the backend and the cache. Does not commit. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._release()
            if self._mixer is not None:
                await self._mixer.aclose()
        finally:
            try:
                await self._backend.aclose()
            finally:
                await self._parts.cache.aclose()

    async def _release(self) -> None:
        """What the front ends before its parts close (a vault: its writer lease)."""

    def _check_writable(self) -> None:
        self._check_open()

    async def _begin_write(self, alone: bool = False) -> None:
        """Called before the first upload or dedup decision of a write (the vault takes its lease);
        ``alone``: no other write run is under way (the vault may switch to a newer epoch then)."""

    # --- the write route: content through the pipeline ---------------------------------------

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

    async def _drop_mixer(self) -> None:
        """The store seals under a new epoch: the next write starts a mixer for it (the mixer is keyed per epoch)."""
        async with self._mixer_lock:
            old, self._mixer = self._mixer, None
        if old is not None:
            await old.aclose()

    async def _seal(self, kind: int, name: str, stored: bytes, pad_floor: int | None) -> bytes:
        """Seal a pack off the event loop: in the mixer once content started it, else (a commit of
        catalog pages alone) in a thread, so a metadata-only commit spawns no mixer workers."""
        if self._mixer is not None:
            return (await self._mixer.seal(kind, name, stored, pad_floor=pad_floor)).take()
        return await asyncio.to_thread(self._store.sealer.seal, kind, name, stored, pad_floor=pad_floor)

    @contextlib.asynccontextmanager
    async def ingest(self, progress: ProgressHook | None = None, *, sample: bool = False,
                     on_file: FileDone | None = None) -> AsyncIterator[Ingest]:
        """A write pipeline for many files: ``await ing.add(parts, source, meta)`` for each.

        Files reach the catalog as they complete; leaving waits for all of them. Nothing is committed.
        ``sample``: keep each file's content signals in ``ing.signals`` (the guard's), with whether a
        file was at its path before and whether the content is the same. ``on_file``: hand each
        completed file's node to it instead of the catalog (the mount stores full chunks ahead of
        the :meth:`patch` that links them; its blobs are durable only once the ``async with`` ends
        without an error: a chunk deduplicated against one still uploading in the same run is
        reported before that upload ends).
        """
        self._check_writable()
        running: list[Ingest] = []  # the pipeline below, once it runs (its signals)

        async def file_done(parts: list[bytes], node: File) -> None:
            async with self._lock:
                signals = running[0].signals if running else None
                sig = None if signals is None else signals.get(b"/".join(parts))
                old = await self._tree.put(parts, node)
                if sig is not None:
                    sig.existed, sig.size = old is not None, node.size
                    if isinstance(old, File):
                        sig.old_size = old.size
                        sig.same = old.size == node.size and old.inline == node.inline \
                            and [b.id for b in old.blobs] == [b.id for b in node.blobs]

        async with self._starting:  # a run starting while another one switches epochs takes the new mixer
            await self._begin_write(alone=not self._writing)
            mixer = await self.mixer()
            self._writing += 1
        try:
            async with Ingest(placement=self._content.placement(self._inline_max), mixer=mixer,
                              backend=self._backend, stored=self._content.stored, landed=self._content.landed,
                              file_done=on_file or file_done, uploads=self._tuning.upload_concurrency,
                              mixers=self._tuning.mixer_slots, progress=progress, ledger=self._ledger,
                              sample=sample) as ing:
                running.append(ing)
                yield ing
        finally:
            self._writing -= 1

    async def patch(self, path: str | bytes, size: int, chunks: Mapping[int, bytes | Blob], *,
                    mode: int | None = None, mtime_ns: int | None = None) -> Stat:
        """Rewrite a file (or create it) re-mixing only the chunks that changed (the mount's write path).

        The new content has ``size`` bytes; chunk ``i`` covers ``[i·chunk_size, (i+1)·chunk_size)``.
        ``chunks`` maps indices to their complete new bytes, or to a blob already stored (by an
        :meth:`ingest` run with ``on_file`` that ended well); every other chunk below the new size is
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
        if isinstance(old, Dir):
            raise IsADirectory(f"{show(parts)} is a directory")
        if old is not None and not isinstance(old, File):
            raise UsageError(f"{show(parts)} is not a file")
        pieces = plan_patch(old, size, chunks, cs, show(parts))
        meta = old.meta if old is not None else Meta.now(0o644)
        meta.mtime_ns = time.time_ns() if mtime_ns is None else mtime_ns
        meta.ctime_ns = time.time_ns()
        if mode is not None:
            meta.mode = mode & 0o7777
        if size > self._inline_max:  # the pieces go the one write route; kept blobs pass through
            async with self.ingest() as ing:
                await ing.add(parts, Planned(tuple(pieces)), meta)
            return await self.stat(b"/".join(parts))
        inline = b"".join([p if isinstance(p, bytes) else await self._reader.read(p) for p in pieces])
        node = File(meta, size, [], inline)
        async with self._lock:
            await self._tree.put(parts, node)
        return node_stat(parts[-1], node)

    # --- the tree ------------------------------------------------------------------------------

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
