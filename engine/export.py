"""Writing vault content to the local filesystem (export / get): files, directories, symlinks.

A file is streamed to a hidden temporary name beside its target and renamed into place only when
complete, so an interrupted export never leaves a truncated file under the real name. Blocking
calls run in threads. Disk-full and permission problems become :class:`LocalIOError` naming the
path; the temporary file is removed.
"""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import LocalIOError, NotFound
from .pipeline import first_error
from .results import Stat
from .tree import Meta, show, split_path

if TYPE_CHECKING:
    from .vault import Vault


FILE_WORKERS = 4  # files of a tree written at once


@dataclass(frozen=True, slots=True)
class ExportReport:
    files: int
    directories: int
    bytes: int


async def export_tree(vault: Vault, vault_path: str | bytes, target: Path, *,
                      on_start: Callable[[int, int], None] | None = None,
                      on_file: Callable[[str, str, int], None] | None = None) -> ExportReport:
    """Copy a file, symlink or tree of ``vault`` (or of a snapshot view) to exactly ``target``.

    Directories first, then files and symlinks, FILE_WORKERS at a time, then each directory's mode
    and mtime (writing into a directory changes its mtime). ``on_start(files, total_bytes)`` and
    ``on_file(path, type, size)`` report progress. The caller decides about an existing target.
    Raises NotFound, IntegrityError (naming the damaged file), LocalIOError.
    """
    try:
        top = await vault.stat(vault_path)
    except NotFound:
        raise NotFound(f"{os.fsdecode(vault_path)}: no such file or directory in the vault") from None
    base = show(split_path(vault_path))
    entries: list[tuple[str, Stat]] = [(base, top)]
    if top.type == "dir":
        entries += [e async for e in vault.walk(vault_path)]
    dirs = [(p, st) for p, st in entries if st.type == "dir"]
    others = [(p, st) for p, st in entries if st.type != "dir"]
    if on_start:
        on_start(sum(1 for _, st in others if st.type == "file"), sum(st.size for _, st in others))

    def local(path: str) -> Path:
        rel = path[len(base):].lstrip("/") if base != "/" else path.lstrip("/")
        return target / rel if rel else target

    for p, st in dirs:
        await write_dir(local(p), _meta(st))
    written = 0
    pending = iter(others)

    async def worker() -> None:
        nonlocal written
        for p, st in pending:  # a shared iterator: each entry is taken by exactly one worker
            if st.type == "symlink":
                assert st.target is not None
                await write_link(local(p), os.fsencode(st.target))
            else:
                written += await write_file(local(p), _meta(st), vault.open_read(p))
            if on_file:
                on_file(p, st.type, st.size)

    try:
        async with asyncio.TaskGroup() as tg:
            for _ in range(FILE_WORKERS):
                tg.create_task(worker())
    except BaseExceptionGroup as eg:
        raise first_error(eg) from None
    for p, st in reversed(dirs):
        try:
            await asyncio.to_thread(_set_dir_meta, local(p), st)
        except OSError as exc:
            raise _local_error(exc, local(p)) from exc
    return ExportReport(sum(1 for _, st in others if st.type == "file"), len(dirs), written)


def _meta(st: Stat) -> Meta:
    return Meta(st.mode, st.uid, st.gid, st.mtime_ns, st.ctime_ns)


def _set_dir_meta(path: Path, st: Stat) -> None:
    os.utime(path, ns=(st.mtime_ns, st.mtime_ns))
    os.chmod(path, st.mode & 0o7777)


def _local_error(exc: OSError, path: Path) -> LocalIOError:
    if exc.errno == errno.ENOSPC:
        return LocalIOError(f"disk full while writing {path}")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return LocalIOError(f"permission denied: {path}")
    return LocalIOError(f"cannot write {path}: {exc.strerror or exc}")


async def write_dir(target: Path, meta: Meta) -> None:
    try:
        await asyncio.to_thread(target.mkdir, mode=meta.mode | 0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise _local_error(exc, target) from exc


async def write_link(target: Path, link: bytes) -> None:
    def make() -> None:
        if target.is_symlink() or target.exists():
            target.unlink()
        os.symlink(link, os.fsencode(target))

    try:
        await asyncio.to_thread(make)
    except OSError as exc:
        raise _local_error(exc, target) from exc


WRITERS = 4  # pieces of one file being written at once (each at its own offset)


async def write_file(target: Path, meta: Meta, stream: AsyncIterator[bytes]) -> int:
    """Write ``stream`` to ``target`` through a temporary name; returns the bytes written.

    A file that arrives in one piece (every small file) is written, given its metadata and renamed
    in a single thread hop. A larger one is written with up to WRITERS ``pwrite`` calls in flight at
    their own offsets while the next pieces are fetched, so decrypting and writing overlap.
    """
    tmp = target.with_name(f".{target.name}.sv-part-{secrets.token_hex(4)}")
    it = aiter(stream)
    fd = -1
    written = 0
    try:
        try:
            first = await anext(it, None)
            second = await anext(it, None) if first is not None else None
            if second is None:
                data = first or b""
                await asyncio.to_thread(_write_whole, tmp, target, meta, data)
                return len(data)
            fd = await asyncio.to_thread(os.open, tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            inflight: set[asyncio.Future[None]] = set()

            async def write(piece: bytes) -> None:
                nonlocal written, inflight
                while len(inflight) >= WRITERS:
                    done, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                    for d in done:
                        d.result()
                inflight.add(asyncio.ensure_future(asyncio.to_thread(_pwrite_all, fd, piece, written)))
                written += len(piece)

            try:
                await write(first)  # type: ignore[arg-type]
                await write(second)
                async for piece in it:
                    await write(piece)
            finally:
                if inflight:
                    await asyncio.wait(inflight)  # the threads own the fd until they return
            for d in inflight:
                d.result()
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()  # a generator left early must stop its readahead now, not at GC
            if fd >= 0:
                await asyncio.to_thread(os.close, fd)
        await asyncio.to_thread(_finish, tmp, target, meta)
    except OSError as exc:
        await asyncio.to_thread(_unlink_quiet, tmp)
        raise _local_error(exc, target) from exc
    except BaseException:
        await asyncio.shield(asyncio.to_thread(_unlink_quiet, tmp))
        raise
    return written


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _write_whole(tmp: Path, target: Path, meta: Meta, data: bytes) -> None:
    with open(tmp, "xb") as f:
        f.write(data)
    _finish(tmp, target, meta)


def _finish(tmp: Path, target: Path, meta: Meta) -> None:
    os.chmod(tmp, meta.mode & 0o7777)
    os.utime(tmp, ns=(meta.mtime_ns, meta.mtime_ns))
    os.replace(tmp, target)


def _unlink_quiet(path: Path) -> None:
    path.unlink(missing_ok=True)
