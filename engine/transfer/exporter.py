"""Writing vault content to the local filesystem (export, restore, ``Vault.get``): naming and order.

It reads through a :class:`Source` (a vault or a snapshot, as the front hands it), never ``Vault`` itself.

Naming follows ``cp -r``: a file or symlink exported to an existing directory lands inside it;
a tree exported to an absent or empty directory becomes that directory, and a non-empty one is
refused (AlreadyExists) unless ``force``, which merges into it, replacing files of the same name.
The destination path the user gave is resolved as given (its own symlinks followed, as ``cp``
does); below it nothing is ever followed (see :mod:`.localdest`).

Metadata: permission bits without setuid/setgid/sticky (tar's rule without
``--same-permissions``) unless ``keep_special_bits``; owner and group only as root with
``same_owner``; mtime always. Disk-full and permission problems become :class:`LocalIOError`
naming the path; a temporary file is removed.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from ..catalog.results import Stat
from ..catalog.tree import show, split_path
from ..errors import AlreadyExists, NotFound, UsageError, first_error
from . import localdest as ld


class Source(Protocol):
    """What an export reads from: a vault or a snapshot of one (anything with these four reads)."""

    async def stat(self, path: str | bytes) -> Stat: ...

    def walk(self, path: str | bytes = "/") -> AsyncIterator[tuple[str, Stat]]: ...

    def open_read(self, path: str | bytes, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]: ...

    async def read_files(self, paths: Sequence[str | bytes]) -> list[bytes]: ...


T = TypeVar("T")
FILE_WORKERS = 4  # files of a tree written at once
BATCH_FILE = 256 << 10  # files up to this size are read whole and written many per thread hop
BATCH_FILES = 64  # at most this many files ...
BATCH_BYTES = 2 << 20  # ... or bytes per batch, per worker


@dataclass(frozen=True, slots=True)
class ExportOptions:
    force: bool = False  # merge into a non-empty destination, replacing files of the same name
    keep_special_bits: bool = False  # restore setuid, setgid and sticky bits
    same_owner: bool = False  # restore owner and group (root only)
    delete: bool = False  # remove what the vault does not have below the destination (a tree only)
    dry_run: bool = False  # with delete: only report what would be removed; write nothing


@dataclass(frozen=True, slots=True)
class ExportReport:
    files: int
    directories: int
    bytes: int  # content of the regular files written
    destination: Path  # where the copy is (DEST itself, or DEST/<name> for a file into a directory)
    removed: int = 0  # entries removed (or, in a dry run, that would be) by ``delete``


async def export_tree(vault: Source, vault_path: str | bytes, dest: Path, options: ExportOptions = ExportOptions(),
                      *, on_start: Callable[[int, int], None] | None = None,
                      on_file: Callable[[str, str, int], None] | None = None,
                      on_delete: Callable[[Path], None] | None = None) -> ExportReport:
    """Copy a file, symlink or tree of ``vault`` (or of a snapshot view) to ``dest`` (see the module doc).

    Directories first, then files and symlinks, FILE_WORKERS at a time, then each directory's mode
    and mtime (writing into a directory changes its mtime). ``on_start(files, file_bytes)`` and
    ``on_file(path, type, bytes_written)`` report progress. With ``delete``, what the vault does not
    have below the destination is removed after the files are written (``on_delete(local path)``
    for each); with ``dry_run`` only reported, and nothing is written. Raises NotFound,
    AlreadyExists, UsageError, IntegrityError (naming the damaged file), LocalIOError.
    """
    if options.same_owner and os.geteuid() != 0:
        raise UsageError("restoring the owner (--same-owner) needs root")
    if options.dry_run and not options.delete:
        raise UsageError("--dry-run shows what --delete would remove: give both")
    parts = split_path(vault_path)
    try:
        top = await vault.stat(vault_path)
    except NotFound:
        raise NotFound(f"{os.fsdecode(vault_path)}: no such file or directory in the vault") from None
    is_dir = top.type == "dir"
    if options.delete and not is_dir:
        raise UsageError(f"--delete needs a directory; {show(parts)} is a {top.type}")
    base = show(parts)
    entries = [(base, top)]
    if is_dir:
        entries += [e async for e in vault.walk(vault_path)]
    if options.dry_run:
        if not dest.is_dir():
            return ExportReport(0, 0, 0, dest)  # nothing there to remove
        root_fd, where = await asyncio.to_thread(os.open, dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), dest
    else:
        root_fd, where = await asyncio.to_thread(_open_destination, dest, is_dir, parts[-1] if parts else b"",
                                                 options.force)
    # Directories are numbered in walk order (parents first; 0 is the destination root), and every
    # item names its parent by number: cheap keys however deep the tree is.
    index: dict[str, int] = {base: 0} if is_dir else {}
    dirs: list[_Item] = []
    others: list[_Item] = []
    for path, st in entries:
        if not is_dir:
            item = _Item(path, os.fsencode(where.name), 0, st)
        elif path == base:
            item = _Item(path, b"", -1, st)
        else:
            up, _, name = path.rpartition("/")
            item = _Item(path, os.fsencode(name), index[up or "/"], st)
        if st.type == "dir":
            index[path] = len(dirs)
            dirs.append(item)
        else:
            others.append(item)
    files = [i.st for i in others if i.st.type == "file"]
    if on_start:
        on_start(len(files), sum(st.size for st in files))
    handles = ld.DirHandles(root_fd, [i.name for i in dirs] or [b""], [i.parent for i in dirs] or [-1])

    def shown(path: str) -> Path:
        rel = path[len(base):].lstrip("/") if is_dir else ""
        return where / rel if rel else where

    async def at(d: int, path: str, job: Callable[[int], object]) -> None:
        """Run ``job(fd of directory d)`` in a thread; errors name ``path``."""
        try:
            fd = handles.acquire(d)
            try:
                await _settled(job, fd)
            finally:
                handles.release(d)
        except OSError as exc:
            raise ld.local_error(exc, shown(path)) from exc

    written = 0
    pending = iter(others)

    def done(item: _Item, n: int) -> None:
        nonlocal written
        written += n  # after the await: `written += await …` would lose other workers' counts
        if on_file:
            on_file(item.path, item.st.type, n)

    async def write_batch(items: list[_Item]) -> None:
        """Read small files whole, all at once, and write them, many per thread hop (a hop per file
        cost more than its syscalls)."""
        batch = list(zip(items, await vault.read_files([i.path for i in items]), strict=True))
        jobs: list[tuple[int, bytes, bytes, ld.Attrs]] = []
        try:
            for item, data in batch:
                try:
                    jobs.append((handles.acquire(item.parent), item.name, data, _attrs(item.st, options)))
                except OSError as exc:
                    raise ld.local_error(exc, shown(item.path)) from exc
            failed = await _settled(ld.write_files, jobs)
        finally:
            for item, _ in batch[: len(jobs)]:
                handles.release(item.parent)
        if failed is not None:
            raise ld.local_error(failed[1], shown(batch[failed[0]][0].path)) from failed[1]
        for item, data in batch:
            done(item, len(data))

    async def worker() -> None:
        batch: list[_Item] = []
        size = 0
        for item in pending:  # a shared iterator: each entry is taken by exactly one worker
            n = 0
            if item.st.type == "symlink":
                assert item.st.target is not None
                link = os.fsencode(item.st.target)
                await at(item.parent, item.path, functools.partial(_link_job, item.name, link,
                                                                   _attrs(item.st, options)))
            elif item.st.size <= BATCH_FILE:
                batch.append(item)
                size += item.st.size
                if len(batch) >= BATCH_FILES or size >= BATCH_BYTES:
                    await write_batch(batch)
                    batch, size = [], 0
                continue
            else:
                try:
                    n = await _write_file(handles, item.parent, item.name, _attrs(item.st, options),
                                          vault.open_read(item.path))
                except OSError as exc:
                    raise ld.local_error(exc, shown(item.path)) from exc
            done(item, n)
        if batch:
            await write_batch(batch)

    async def prune() -> int:
        """Remove (or in a dry run list) every local entry the vault does not have, directory by directory."""
        wanted: dict[int, set[bytes]] = {d: set() for d in range(len(dirs))}
        for item in dirs[1:] + others:
            wanted[item.parent].add(item.name)
        removed = 0
        for d, item in enumerate(dirs):
            try:
                fd = handles.acquire(d)
            except OSError as exc:
                if options.dry_run:
                    continue  # not on the disk yet (or not a real directory): nothing below it to remove
                raise ld.local_error(exc, shown(item.path)) from exc
            try:
                names = {os.fsencode(n) for n in await _settled(os.listdir, fd)}
                for name in sorted(names - wanted[d]):
                    gone = shown(item.path) / os.fsdecode(name)
                    if not options.dry_run:
                        try:
                            await _settled(ld.remove_entry, fd, name)
                        except OSError as exc:
                            raise ld.local_error(exc, gone) from exc
                    removed += 1
                    if on_delete:
                        on_delete(gone)
            finally:
                handles.release(d)
        return removed

    removed = 0
    try:
        if not options.dry_run:
            for item in dirs[1:]:
                await at(item.parent, item.path, functools.partial(_dir_job, item.name, options.force))
            try:
                async with asyncio.TaskGroup() as tg:
                    for _ in range(FILE_WORKERS):
                        tg.create_task(worker())
            except BaseExceptionGroup as eg:
                raise first_error(eg) from None
        if options.delete:
            removed = await prune()
        if not options.dry_run:
            for d in range(len(dirs) - 1, -1, -1):
                await at(d, dirs[d].path, functools.partial(_apply_job, _attrs(dirs[d].st, options)))
    finally:
        handles.close()
    if options.dry_run:
        return ExportReport(0, 0, 0, where, removed)
    return ExportReport(len(files), len(dirs), written, where, removed)


@dataclass(frozen=True, slots=True)
class _Item:
    path: str  # in the vault
    name: bytes  # on the disk, in its parent directory
    parent: int  # number of the parent directory (-1 for the destination root)
    st: Stat


async def _settled(fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)`` in a thread, waited for even when cancelled meanwhile: it may use a directory
    descriptor that is released (and possibly closed) as soon as we return."""
    fut = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        await asyncio.wait([fut])
        if not fut.cancelled():
            fut.exception()  # retrieved; the cancellation is what propagates
        raise


def _dir_job(name: bytes, force: bool, fd: int) -> None:
    ld.make_dir(fd, name, force)


def _apply_job(attrs: ld.Attrs, fd: int) -> None:
    ld.apply(fd, attrs)


def _link_job(name: bytes, link: bytes, attrs: ld.Attrs, fd: int) -> None:
    ld.write_link(fd, name, link, attrs)


def _attrs(st: Stat, options: ExportOptions) -> ld.Attrs:
    mode = st.mode & (0o7777 if options.keep_special_bits else 0o777)
    return ld.Attrs(mode, st.mtime_ns, (st.uid, st.gid) if options.same_owner else None)


def _open_destination(dest: Path, is_dir: bool, name: bytes, force: bool) -> tuple[int, Path]:
    """The descriptor of the directory receiving the copy, and the path the copy gets.

    For a tree that is the destination directory itself (made if absent); for a file or symlink it
    is the directory the item is written into under ``name``.
    """
    try:
        if dest.is_dir():  # follows the user's own path, as cp does
            if not is_dir:
                fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                where = dest / os.fsdecode(name)
                if not force and _exists(fd, name):
                    os.close(fd)
                    raise AlreadyExists(f"{where} already exists (use --force to overwrite)")
                return fd, where
            if not force and any(os.scandir(dest)):
                raise AlreadyExists(f"{dest} is not empty (use --force to merge into it, "
                                    "overwriting files of the same name)")
            return os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), dest
        if os.path.lexists(dest) and not force:
            raise AlreadyExists(f"{dest} already exists (use --force to overwrite)")
        if not dest.name or dest.name in (".", ".."):
            raise UsageError(f"{dest}: not a usable destination name")
        dest.parent.mkdir(parents=True, exist_ok=True)
        parent = os.open(dest.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if not is_dir:
            return parent, dest
        try:
            ld.make_dir(parent, os.fsencode(dest.name), force)
            return os.open(os.fsencode(dest.name), ld.O_DIR, dir_fd=parent), dest
        finally:
            os.close(parent)
    except OSError as exc:
        raise ld.local_error(exc, dest) from exc


def _exists(fd: int, name: bytes) -> bool:
    try:
        os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


async def _write_file(handles: ld.DirHandles, parent: int, name: bytes, attrs: ld.Attrs,
                      stream: AsyncIterator[bytes]) -> int:
    """Write ``stream`` to ``rel`` unnamed until complete (:mod:`.localdest`); returns the bytes written.

    A file that arrives in one piece (every small file) is written, given its metadata and renamed
    in a single thread hop. A larger one is written piece by piece in a thread while the next pieces
    are fetched, so decrypting and writing overlap. One write at a time: buffered writes to one file
    hold its inode lock, so a second writer only spins on it (perf, 1 GiB export with four in flight:
    a fifth of the CPU in ``rwsem_spin_on_owner``, and twice the wall time of one).
    Raises OSError (for the caller to name the path), IntegrityError from the stream.
    """
    dfd = handles.acquire(parent)
    it = aiter(stream)
    fd = -1
    tmp = b""
    written = 0
    try:
        first = await anext(it, None)
        second = await anext(it, None) if first is not None else None
        if second is None:
            data = first or b""
            await _settled(ld.write_whole, dfd, name, data, attrs)
            return len(data)
        tmp, fd = await _settled(ld.open_temp, dfd)
        inflight: asyncio.Future[None] | None = None

        async def write(piece: bytes) -> None:
            nonlocal written, inflight
            if inflight is not None:
                await inflight
            inflight = asyncio.ensure_future(asyncio.to_thread(ld.pwrite_all, fd, piece, written))
            written += len(piece)

        try:
            await write(first)  # type: ignore[arg-type]
            await write(second)
            async for piece in it:
                await write(piece)
        finally:
            if inflight is not None:
                await asyncio.wait([inflight])  # the thread owns the fd until it returns
        assert inflight is not None
        inflight.result()
        fd, owned = -1, fd
        await _settled(ld.finish_file, dfd, tmp, owned, name, attrs)
        return written
    except BaseException:
        if fd >= 0:
            os.close(fd)
            await _settled(ld.unlink_quiet, dfd, tmp)
        raise
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()  # a generator left early must stop its readahead now, not at GC
        handles.release(parent)
