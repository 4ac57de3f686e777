"""Reading one tree of a vault: the read base the :class:`~.vault.Vault` extends, and :class:`Snapshot`.

A :class:`View` answers ``stat``, ``ls``, ``walk``, ``open_read``, ``open``, ``read_bytes``,
``get`` and the mount's chunk-granular reads over one catalog tree, through the vault's shared
parts (:class:`Parts`: backend, store, catalog, content writer, settings). It has no write
methods. The vault is a view of its working tree that can also write and commit; a
:class:`Snapshot` (what ``vault.at(generation)`` returns) is a view of one earlier generation and
nothing more: it cannot write because it has no write methods, not because a flag says no, and it
never adopts newer commits, so it keeps reading its generation while the vault moves on.

Every method validates its arguments before touching anything and raises only
:class:`VaultError` subclasses.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..actors.mixer import Mixer
from ..backends.base import Backend
from .catalog.pagestore import Catalog
from .catalog.results import Stat, node_stat
from .catalog.tree import Dir, File, Node, Tree, show, split_path
from .content.reader import read_blobs
from .content.vaultfile import VaultFile
from .content.writer import ContentWriter
from .errors import IntegrityError, IsADirectory, NotFound, UsageError
from .format.refs import Blob
from .local.cache import Cache
from .local.settings import Tuning
from .repo.reader import BlobReader
from .repo.store import ObjectStore
from .transfer.exporter import ExportOptions, export_tree


@dataclass(slots=True)
class Parts:
    """What one open vault is made of, shared by the vault and every snapshot of it."""

    url: str
    backend: Backend
    fingerprint: bytes
    store: ObjectStore
    cache: Cache
    catalog: Catalog
    content: ContentWriter
    reader: BlobReader
    tuning: Tuning


class View:
    """Reads over one catalog tree of a vault (the base of :class:`Vault` and :class:`Snapshot`)."""

    _tree: Tree  # the tree read: the vault's working tree, or a snapshot's generation

    def __init__(self, parts: Parts) -> None:
        self._parts = parts
        self.url = parts.url
        self._backend = parts.backend
        self._store = parts.store
        self._catalog = parts.catalog
        self._content = parts.content
        self._reader = parts.reader
        self._tuning = parts.tuning
        self._readahead = parts.tuning.readahead
        self._closed = False

    @property
    def generation(self) -> int:
        """The generation this view shows."""
        raise NotImplementedError

    @property
    def fingerprint(self) -> str:
        """The vault's fingerprint (hex): compare it with the one shown at ``create`` to trust a new device."""
        return self._parts.fingerprint.hex()

    @property
    def backend(self) -> Backend:
        """The object store underneath (sealed objects only)."""
        return self._backend

    @property
    def chunk_size(self) -> int:
        """The vault's chunk size in bytes (fixed at ``create``)."""
        return self._store.chunk_size

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("the vault is closed")

    async def mixer(self) -> Mixer:
        """The vault's mixer (started on first use, closed with the vault)."""
        raise NotImplementedError

    async def _adopt_newer(self, *, only_if_due: bool) -> bool:
        """Adopt other clients' commits before a read; True if there were newer ones. A view of a
        fixed generation never does."""
        return False

    async def _walk_nodes(self, top: Node | None = None, parts: list[bytes] | None = None
                          ) -> AsyncIterator[tuple[list[bytes], Node]]:
        stack: list[tuple[list[bytes], Node]] = [(parts or [], top or self._tree.root)]
        while stack:
            p, n = stack.pop()
            yield p, n
            if isinstance(n, Dir):
                kids = await self._tree.children(n, p)
                stack.extend((p + [k], kids[k]) for k in sorted(kids, reverse=True))

    async def _lookup(self, parts: list[bytes]) -> Node:
        """The node at ``parts`` for a read: refreshed on the timer, and once more on NotFound (the
        path may be another client's newer work)."""
        await self._adopt_newer(only_if_due=True)
        try:
            return await self._tree.peek(parts)
        except NotFound:
            if not await self._adopt_newer(only_if_due=False):
                raise
            return await self._tree.peek(parts)

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

    async def file_paths(self, path: str | bytes = "/") -> list[bytes]:
        """Every file below ``path`` as ``b"a/b"`` parts joined (no stats: the guard's count of what a
        backup's roots held). Raises NotFound."""
        self._check_open()
        parts = split_path(path)
        node = await self._lookup(parts)
        out: list[bytes] = []
        stack: list[tuple[list[bytes], Node]] = [(parts, node)]
        while stack:
            p, n = stack.pop()
            if isinstance(n, Dir):
                kids = await self._tree.children(n, p)
                stack.extend((p + [k], kid) for k, kid in kids.items())
            elif isinstance(n, File):
                out.append(b"/".join(p))
        return out

    async def _file(self, parts: list[bytes]) -> File:
        node = await self._lookup(parts)
        if isinstance(node, Dir):
            raise IsADirectory(f"{show(parts)} is a directory")
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

    async def read_files(self, paths: Sequence[str | bytes]) -> list[bytes]:
        """The whole content of each file, for many small files at once (export's batches): their
        blobs are read and checked together (:meth:`.repo.reader.BlobReader.read_many`). Raises
        NotFound, UsageError (not a file), IntegrityError (naming the first damaged file)."""
        self._check_open()
        files = [(parts, await self._file(parts)) for parts in map(split_path, paths)]
        got = await self._reader.read_many([b for _, node in files if node.inline is None for b in node.blobs])
        out: list[bytes] = []
        at = 0
        for parts, node in files:
            if node.inline is not None:
                out.append(node.inline)
                continue
            pieces: list[bytes] = []
            for piece in got[at : at + len(node.blobs)]:
                if isinstance(piece, IntegrityError):
                    raise IntegrityError(f"{show(parts)}: {piece.message}")
                pieces.append(piece)
            at += len(node.blobs)
            out.append(b"".join(pieces)[: node.size])
        return out

    async def read_bytes(self, path: str | bytes, offset: int = 0, length: int | None = None) -> bytes:
        """A file's content (or ``length`` bytes from ``offset``) in memory. Prefer :meth:`open_read`
        or :meth:`open` for large files. Raises NotFound, UsageError, IntegrityError."""
        return b"".join([piece async for piece in self.open_read(path, offset, length)])

    async def get(self, path: str | bytes, dest: str | os.PathLike[str], *, overwrite: bool = False) -> int:
        """Copy a file, symlink or whole directory out of the vault to ``dest``; returns the file bytes written.

        Named like ``cp -r``: a file into an existing directory lands inside it; a tree becomes an
        absent or empty ``dest``; a non-empty one raises AlreadyExists unless ``overwrite`` (merge,
        replacing files of the same name). Symlinks on the disk below ``dest`` are never followed;
        setuid/setgid/sticky bits are dropped. Files are written unnamed (or under a temporary
        name) and put in place when complete, so an interrupted export never leaves a truncated
        file under the real name.
        """
        self._check_open()
        return (await export_tree(self, path, Path(os.fspath(dest)), ExportOptions(force=overwrite))).bytes

    async def xattrs(self, path: str | bytes) -> dict[bytes, bytes]:
        """The extended attributes of a path (a copy). Raises NotFound."""
        self._check_open()
        return dict((await self._tree.lookup(split_path(path))).meta.xattrs)

    # --- the read route: verified content, whole files or chunk by chunk -------------------------

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
        blobs: list[Blob] = []
        pos = 0
        for b in node.blobs:  # only the blobs the range touches: no readahead past its end
            if pos >= end:
                break
            blobs.append(b)  # a blob still in the open pack is read from its memory: no flush
            pos += b.length
        left = end - offset
        try:
            async with contextlib.aclosing(read_blobs(self._reader, blobs, offset, self._readahead)) as pieces:
                async for piece in pieces:  # closed at once if our consumer stops early
                    if len(piece) >= left:
                        yield piece[:left]
                        return
                    left -= len(piece)
                    yield piece
        except IntegrityError as exc:
            raise IntegrityError(f"{show(parts)}: {exc.message}") from None

    async def chunks(self, path: str | bytes) -> tuple[int, bytes | None, list[Blob]]:
        """A file's size, its inline content (or None) and its blobs in order (blob i = chunk i).

        A blob still in the open data pack is returned as it is (a pending ref): :meth:`read_chunk`
        reads it from the pack's memory, or from the store once the pack is sealed; nothing is
        flushed. Raises NotFound, UsageError (not a file).
        """
        self._check_open()
        node = await self._file(split_path(path))
        if node.inline is not None:
            return node.size, node.inline, []
        return node.size, None, list(node.blobs)

    async def read_chunk(self, ref: Blob) -> bytes:
        """One blob's plaintext (a blob from :meth:`chunks`), verified against its keyed id.

        Raises IntegrityError (missing, tampered or substituted object).
        """
        self._check_open()
        return await self._reader.read(ref)


class Snapshot(View):
    """A read-only view of one generation (what :meth:`Vault.at` returns): ls, stat, walk, open_read,
    open, read_bytes, get and the chunk reads; no method that writes exists on it.

    It keeps showing its generation however far the vault moves on. It shares the vault's
    connections: it needs no closing, and it fails (UsageError) once the vault is closed.
    """

    def __init__(self, source: View, generation: int, tree: Tree) -> None:
        super().__init__(source._parts)
        self._source = source
        self._generation = generation
        self._tree = tree

    def __repr__(self) -> str:
        return f"<Snapshot at generation {self._generation}>"

    @property
    def generation(self) -> int:
        return self._generation

    def _check_open(self) -> None:
        self._source._check_open()

    async def aclose(self) -> None:
        """Nothing to release: a snapshot shares the vault's connections (closing it never closes them)."""

    async def mixer(self) -> Mixer:
        return await self._source.mixer()
