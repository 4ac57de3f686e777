"""The local-disk backend: one file per object under a root directory (imports only leaf modules).

Layout on disk (DESIGN.md §4)::

    <root>/k/<16 hex>                keystores      (flat)
    <root>/c/<16 hex>                commits        (flat)
    <root>/l/<name>                  leases         (flat)
    <root>/o/<first 2 hex>/<64 hex>  chunks, packs  (fan-out: 256 directories keep each one small)
    <root>/s/<first 2 hex>/<64 hex>  shards         (fan-out)
    <dir>/.tmp-<host>-<boot id>-<pid ns>-<pid>-<16 hex>   a write in progress, or left over by a crash

``put_if_absent`` is the durable create-only write of CRYPTO.md §5.2: temp file in the target
directory → write → ``fsync`` → ``os.link(temp, final)`` (``EEXIST`` means the object exists:
return ``False``) → unlink the temp → ``fsync`` the directory. It never renames: a rename would
silently overwrite, and a lost commit race would become an undetected fork. A reader therefore
sees either no object or the whole, already-synced object; temp names never pass
:func:`check_name`, so they are never listed.

A temporary's name says who wrote it: host name, kernel boot id, pid namespace and pid. The first
write of a backend instance into a folder sweeps that folder's leftovers: a temporary of a dead
process of this very boot and pid namespace goes at once (the kernel says the writer is gone);
any other (another machine, another boot, another container, or an old unlabelled name) only
once it is 24 hours old, because a live writer elsewhere may still be about to link it.
:meth:`LocalBackend.leftover_temporaries` lists what is left for ``verify``.

Each operation runs as ONE ``asyncio.to_thread`` call (open, write, sync, link, unlink in one
hop): for small objects the thread hop costs more than the syscalls, so batching them per
operation is measurably faster than ``aiofiles``, which hops once per syscall. ``OSError`` is
translated at the edge: a missing object → :class:`NotFound`; disk full, permission denied,
read-only file system and other local failures → :class:`LocalIOError` naming the path.
Cancelling an operation abandons the thread's result; a put that was cancelled either created
the whole object or nothing (its temp file is removed by the thread even so).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

from ..engine.errors import LocalIOError, NoSpace, NotFound
from . import temps
from .base import PREFIXES, Properties, check_name, check_prefix, is_valid_name

_FANOUT = ("o/", "s/")
_DROPS = "d/"  # d/<writer>/<seq>, d/<writer>/{o,g,l}/…: a folder per writer, its objects, markers, leases below it
_TEMP = temps.PREFIX
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
# module-level names: inside the class, ``list`` is the method of the Backend protocol
_Entries = list[os.DirEntry[str]]
_Names = list[str]
_Parts = list[bytes]
_Paths = list[Path]
_Leftovers = list[tuple[str, str]]
_Folders = list[tuple[str, Path]]


def _local_error(exc: OSError, path: Path, action: str) -> LocalIOError:
    """Map an OSError to a LocalIOError a user can act on (the caller chains it with ``from``)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace(f"disk full while {action} {path}: free some space and retry")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return LocalIOError(f"permission denied while {action} {path}: check the owner and mode of the vault folder")
    if exc.errno == errno.EROFS:
        return LocalIOError(f"read-only file system while {action} {path}")
    reason = exc.strerror or type(exc).__name__
    return LocalIOError(f"local I/O error while {action} {path}: {reason}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, _READ)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _drop_cached(fd: int) -> None:
    """Let the kernel reuse a just-synced object's (clean) page-cache pages at once.

    On a VM that reports free memory to its host, every page the cache takes fresh costs a host
    fault; writing sealed objects into fresh pages was half the CPU of a mount's ``dd`` (perf:
    ``copy_folio_from_iter_atomic``). Dropped after each object, the next one reuses the same pages
    (measured: 0.45 -> 0.07 CPU s per 256 MiB of new 4 MiB files). Reading an object back soon after
    then comes from the disk, once: the mount and the readers keep their own caches of opened chunks.
    """
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: no posix_fadvise on this OS
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


class LocalBackend:
    """Objects as files under ``root``. With ``create=True`` the first write makes ``root`` itself.

    Without ``create``, a write into a ``root`` that does not exist raises :class:`LocalIOError`
    instead of quietly creating it (e.g. on the root file system when a drive is unplugged).
    """

    __slots__ = ("_create", "_root", "_swept")

    def __init__(self, root: Path | str, *, create: bool = False) -> None:
        self._root = Path(root).expanduser().absolute()
        self._create = create
        self._swept: set[Path] = set()  # folders whose leftovers this instance already removed

    @property
    def root(self) -> Path:
        return self._root

    @property
    def description(self) -> str:
        return f"local:{self._root}"

    @property
    def properties(self) -> Properties:
        return Properties(concurrency=8, atomic_create=True, persistent=True)

    def path_of(self, name: str) -> Path:
        """The file that holds object ``name`` (raises UsageError for an invalid name)."""
        check_name(name)
        top, rest = name[:2], name[2:]
        if top in _FANOUT:
            return self._root / top[0] / rest[:2] / rest
        return self._root / top[0] / rest

    async def put_if_absent(self, name: str, data: bytes | bytearray | memoryview) -> bool:
        path = self.path_of(name)
        return await asyncio.to_thread(self._put, path, memoryview(data).cast("B"))

    async def get(self, name: str, start: int = 0, end: int | None = None) -> bytes:
        path = self.path_of(name)
        return await asyncio.to_thread(self._get, path, name, start, end)

    async def head(self, name: str) -> int:
        path = self.path_of(name)
        return await asyncio.to_thread(self._head, path, name)

    async def delete(self, name: str) -> None:
        path = self.path_of(name)
        await asyncio.to_thread(self._delete, path)

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        check_prefix(prefix)
        for top in PREFIXES:
            if not (top.startswith(prefix) or prefix.startswith(top)):
                continue
            if top == _DROPS:
                for name in await asyncio.to_thread(self._scan_drops, prefix):
                    yield name
            elif top in _FANOUT:
                for sub in await asyncio.to_thread(self._scan_dirs, top, prefix):
                    for name in await asyncio.to_thread(self._scan_files, top, sub, prefix):
                        yield name
            else:
                for name in await asyncio.to_thread(self._scan_files, top, "", prefix):
                    yield name

    async def aclose(self) -> None:
        return None

    async def cleanup_temp(self, min_age: float = 3600.0) -> int:
        """Remove temp files left by crashed writes, older than ``min_age`` seconds; return how many.

        The age guard keeps a concurrent writer's in-flight temp file alive; pass ``0`` when no
        other process uses the vault.
        """
        return await asyncio.to_thread(self._cleanup, min_age)

    # -- blocking halves, each run in one worker thread -------------------------------------

    def _make_dir(self, directory: Path) -> None:
        """Create ``directory`` (a prefix or fan-out folder) durably: fsync its parent after."""
        if not self._create and not self._root.is_dir():
            raise LocalIOError(f"the vault folder {self._root} does not exist")
        missing = []
        walk = directory
        while not walk.exists():
            missing.append(walk)
            walk = walk.parent
        for new in reversed(missing):
            with contextlib.suppress(FileExistsError):  # another writer made it first
                new.mkdir()
            _fsync_dir(new.parent)

    async def leftover_temporaries(self) -> _Leftovers:
        """Temporary files not owned by a running writer of this machine: (path in the vault, whose)."""
        return await asyncio.to_thread(self._leftovers)

    def _leftovers(self) -> _Leftovers:
        out: _Leftovers = []
        now = time.time()
        for folder in self._folders():
            for entry in self._scan(folder):
                if entry.name.startswith(_TEMP):
                    owner = temps.owner(entry.name)
                    if owner.alive:
                        continue
                    try:
                        age = now - entry.stat(follow_symlinks=False).st_mtime
                    except FileNotFoundError:
                        continue
                    out.append((str(Path(entry.path).relative_to(self._root)),
                                f"{owner.describe()}, {age / 3600:.1f} h old"))
        return out

    def _sweep(self, directory: Path) -> None:
        """Remove the leftovers in ``directory`` that no live writer can still link (once per instance)."""
        if directory in self._swept:
            return
        self._swept.add(directory)
        now = time.time()
        for entry in self._scan(directory):
            if not entry.name.startswith(_TEMP):
                continue
            try:
                if temps.removable(entry.name, entry.stat(follow_symlinks=False).st_mtime, now):
                    os.unlink(entry.path)
            except FileNotFoundError:
                continue  # its writer finished, or another sweeper was faster
            except OSError as exc:
                raise _local_error(exc, Path(entry.path), "removing") from exc

    def _put(self, path: Path, data: memoryview) -> bool:
        directory = path.parent
        self._sweep(directory)
        temp = directory / temps.new_name()
        try:
            try:
                fd = os.open(temp, _FLAGS, 0o644)
            except FileNotFoundError:
                self._make_dir(directory)
                fd = os.open(temp, _FLAGS, 0o644)
        except OSError as exc:
            raise _local_error(exc, path, "writing") from exc
        linked = False
        pending = True  # the temp file exists until the unlink below
        try:
            try:
                view = data
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)  # the bytes are on disk before the name can point at them
                _drop_cached(fd)
            finally:
                os.close(fd)
            try:
                os.link(temp, path)  # atomic and create-only: EEXIST if the object exists
                linked = True
            except FileExistsError:
                pass
            os.unlink(temp)
            pending = False
            if linked:
                _fsync_dir(directory)  # one sync makes both the new name and the unlink durable
            return linked
        except OSError as exc:
            raise _local_error(exc, path, "writing") from exc
        finally:
            if pending:  # failed before the unlink: leave nothing partial behind
                with contextlib.suppress(OSError):
                    os.unlink(temp)

    def _get(self, path: Path, name: str, start: int, end: int | None) -> bytes:
        try:
            fd = os.open(path, _READ)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"object {name} not found in {self.description}") from None
        except OSError as exc:
            raise _local_error(exc, path, "reading") from exc
        try:
            size = os.fstat(fd).st_size
            stop = size if end is None else min(end, size)
            start = max(start, 0)
            parts: _Parts = []
            pos = start
            while pos < stop:
                chunk = os.pread(fd, stop - pos, pos)
                if not chunk:
                    break  # the file shrank under us: objects never do, so this is damage
                parts.append(chunk)
                pos += len(chunk)
            return parts[0] if len(parts) == 1 else b"".join(parts)
        except OSError as exc:
            raise _local_error(exc, path, "reading") from exc
        finally:
            os.close(fd)

    def _head(self, path: Path, name: str) -> int:
        try:
            return os.stat(path).st_size
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"object {name} not found in {self.description}") from None
        except OSError as exc:
            raise _local_error(exc, path, "reading") from exc

    def _delete(self, path: Path) -> None:
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError as exc:
            raise _local_error(exc, path, "deleting") from exc

    def _scan(self, directory: Path) -> _Entries:
        try:
            with os.scandir(directory) as entries:
                return list(entries)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise _local_error(exc, directory, "listing") from exc

    def _scan_dirs(self, top: str, prefix: str) -> _Names:
        """The fan-out folders of ``top`` that can hold names starting with ``prefix``."""
        subs: _Names = []
        for entry in self._scan(self._root / top[0]):
            start = top + entry.name
            if len(entry.name) == 2 and (start.startswith(prefix) or prefix.startswith(start)):
                subs.append(entry.name)
        return sorted(subs)

    def _scan_files(self, top: str, sub: str, prefix: str) -> _Names:
        directory = self._root / top[0] / sub if sub else self._root / top[0]
        names: _Names = []
        for entry in self._scan(directory):
            name = top + entry.name
            # a file in the wrong fan-out folder is not reachable by get(), so it is not listed
            if name.startswith(prefix) and is_valid_name(name) and entry.name.startswith(sub):
                names.append(name)
        return names

    def _drop_dirs(self, prefix: str = "") -> _Folders:
        """(name prefix, folder) of every writer folder and its objects folder that can hold ``prefix``."""
        out: _Folders = []
        for entry in self._scan(self._root / "d"):
            start = f"d/{entry.name}/"
            if entry.is_dir() and (start.startswith(prefix) or prefix.startswith(start)):
                out += [(start, Path(entry.path))] + [(start + f"{sub}/", Path(entry.path) / sub) for sub in "ogl"]
        return out

    def _scan_drops(self, prefix: str) -> _Names:
        names: _Names = []
        for start, folder in self._drop_dirs(prefix):
            names += [start + e.name for e in self._scan(folder)
                      if (start + e.name).startswith(prefix) and is_valid_name(start + e.name)]
        return names

    def _folders(self) -> _Paths:
        folders = [self._root / top[0] for top in PREFIXES]
        fanout = [Path(e.path) for top in _FANOUT for e in self._scan(self._root / top[0]) if e.is_dir()]
        return folders + fanout + [folder for _, folder in self._drop_dirs()]

    def _cleanup(self, min_age: float) -> int:
        deadline = time.time() - min_age
        removed = 0
        for folder in self._folders():
            for entry in self._scan(folder):
                if not entry.name.startswith(_TEMP):
                    continue
                try:
                    if entry.stat(follow_symlinks=False).st_mtime <= deadline:
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise _local_error(exc, Path(entry.path), "removing") from exc
        return removed
