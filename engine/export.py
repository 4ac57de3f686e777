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
from collections.abc import AsyncIterator
from pathlib import Path

from .errors import LocalIOError
from .tree import Meta


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


async def write_file(target: Path, meta: Meta, stream: AsyncIterator[bytes]) -> int:
    tmp = target.with_name(f".{target.name}.sv-part-{secrets.token_hex(4)}")
    written = 0
    try:
        f = await asyncio.to_thread(open, tmp, "wb")
    except OSError as exc:
        raise _local_error(exc, target) from exc
    try:
        try:
            async for piece in stream:
                await asyncio.to_thread(f.write, piece)
                written += len(piece)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()  # a generator left early must stop its readahead now, not at GC
            await asyncio.to_thread(f.close)
        await asyncio.to_thread(_finish, tmp, target, meta)
    except OSError as exc:
        await asyncio.to_thread(_unlink_quiet, tmp)
        raise _local_error(exc, target) from exc
    except BaseException:
        await asyncio.shield(asyncio.to_thread(_unlink_quiet, tmp))
        raise
    return written


def _finish(tmp: Path, target: Path, meta: Meta) -> None:
    os.chmod(tmp, meta.mode & 0o7777)
    os.utime(tmp, ns=(meta.mtime_ns, meta.mtime_ns))
    os.replace(tmp, target)


def _unlink_quiet(path: Path) -> None:
    path.unlink(missing_ok=True)
