"""Importing local trees into a vault: ``import`` and the incremental ``backup``.

The local tree is scanned first (in a thread: names, types, sizes, metadata), so progress can show a
total and an ETA; then every regular file goes through one write pipeline (:meth:`Vault.ingest`),
directories and symlinks straight into the catalog. It works on what the front hands it (a
:class:`Target`: the vault's edits, its pipeline and its local cache), never on ``Vault`` itself.
With ``incremental`` (backup), a file whose size, mtime and inode match what the local cache
recorded at its last import into the same vault path — and which is still in the vault at that
size — is skipped without being read. The cache learns a
file's stat only after the pipeline stored it, so an interrupted run re-reads what it did not finish
(chunks already uploaded are found by the dedup index and not uploaded again).
"""

from __future__ import annotations

import asyncio
import os
import stat as stat_mod
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..catalog.results import Stat
from ..catalog.tree import Meta, split_path
from ..content.pipeline import Ingest, Progress, ProgressHook
from ..content.signals import FileSignal, pack, unpack
from ..errors import LocalIOError, NotFound, UsageError
from ..local.cache import Cache

STAT_BATCH = 1024  # files whose recorded stats a backup reads from the local cache in one hop


class Target(Protocol):
    """What an import writes into (a writable vault): its edits, its write pipeline, its local cache."""

    @property
    def cache(self) -> Cache: ...

    async def stat(self, path: str | bytes) -> Stat: ...

    async def mkdir(self, path: str | bytes, *, parents: bool = False, exist_ok: bool = False,
                    mode: int = 0o755) -> None: ...

    async def rm(self, path: str | bytes, *, recursive: bool = False) -> None: ...

    async def set_meta(self, path: str | bytes, *, mode: int | None = None, mtime_ns: int | None = None,
                       uid: int | None = None, gid: int | None = None) -> None: ...

    async def symlink(self, path: str | bytes, target: str | bytes, *, replace: bool = False,
                      mtime_ns: int | None = None) -> None: ...

    def ingest(self, progress: ProgressHook | None = None, *,
               sample: bool = False) -> AbstractAsyncContextManager[Ingest]: ...


@dataclass(frozen=True, slots=True)
class Item:
    local: str  # absolute (scan builds paths as str: a Path per file cost more than its lstat)
    dest: list[bytes]
    kind: str  # "file" | "dir" | "symlink"
    size: int
    meta: Meta
    ino: int
    target: bytes = b""


@dataclass(slots=True)
class ImportReport:
    files: int = 0
    directories: int = 0
    symlinks: int = 0
    bytes_total: int = 0  # bytes of the files considered
    bytes_read: int = 0  # bytes actually read (not skipped)
    skipped: int = 0  # unchanged files skipped by backup
    added: int = 0  # files that were not in the vault at their path
    changed: int = 0  # files that replaced one at their path (backup: read because size/mtime/inode moved)
    uploaded: int = 0  # bytes of new objects written
    deduped: int = 0  # pieces found already stored
    errors: list[str] = field(default_factory=list)
    #: with ``sample``: the content signals of each file read, by vault path, and the signal the
    #: local cache kept from the previous version's import (the guard scores them)
    signals: dict[bytes, FileSignal] = field(default_factory=dict)
    prior: dict[bytes, FileSignal] = field(default_factory=dict)


ImportHook = Callable[[ImportReport, Progress | None, str | None], None]


def scan(sources: list[Path], dest: list[bytes], *, onto: bool = False) -> tuple[list[Item], list[str]]:
    """Everything to import, parents before children, and the special files left out (sockets,
    fifos, devices: not file content, as for rclone and restic). A source lands at
    ``dest/<its name>``, or with ``onto`` (one source) at ``dest`` itself, as ``cp -r`` does for a
    destination that does not exist yet. Raises NotFound/LocalIOError/UsageError."""
    items: list[Item] = []
    skipped: list[str] = []

    def add(top: str, top_target: list[bytes]) -> None:
        stack = [(top, top_target)]  # iterative: a tree may be deeper than Python's recursion limit
        while stack:
            local, target = stack.pop()
            try:
                st = os.lstat(local)
            except FileNotFoundError:
                raise NotFound(f"{local}: no such file or directory") from None
            except OSError as exc:
                raise LocalIOError(f"cannot read {local}: {exc.strerror}") from exc
            if stat_mod.S_ISLNK(st.st_mode):
                link = os.readlink(os.fsencode(local))
                items.append(Item(local, target, "symlink", 0, Meta.of_stat(st), st.st_ino, link))
            elif stat_mod.S_ISDIR(st.st_mode):
                items.append(Item(local, target, "dir", 0, Meta.of_stat(st), st.st_ino))
                try:
                    names = sorted(os.listdir(os.fsencode(local)))
                except OSError as exc:
                    raise LocalIOError(f"cannot read {local}: {exc.strerror}") from exc
                join = os.path.join
                stack.extend((join(local, os.fsdecode(name)), [*target, name]) for name in reversed(names))
            elif stat_mod.S_ISREG(st.st_mode):
                items.append(Item(local, target, "file", st.st_size, Meta.of_stat(st), st.st_ino))
            else:
                skipped.append(local)

    if onto and (len(sources) != 1 or not dest):
        raise UsageError("only one source can become the destination itself")
    for src in sources:
        src = src.absolute()  # stable keys for backup's cache, without resolving every file
        name = os.fsencode(src.resolve().name) if src.name in ("", ".", "..") else os.fsencode(src.name)
        if not name and not onto:
            raise UsageError(f"cannot import {src}: it has no name (import its contents instead)")
        add(str(src), dest if onto else dest + [name])
    return items, skipped


async def import_paths(vault: Target, sources: list[str | os.PathLike[str]], dest: str | bytes = "/", *,
                       incremental: bool = False, hook: ImportHook | None = None, sample: bool = False) -> ImportReport:
    """Import files and trees under ``dest`` (created if missing). Does not commit."""
    dest_parts = split_path(dest)
    items, _skipped = await asyncio.to_thread(scan, [Path(os.fspath(s)) for s in sources], dest_parts)
    return await import_items(vault, items, dest_parts, incremental=incremental, hook=hook, sample=sample)


async def import_items(vault: Target, items: list[Item], dest_parts: list[bytes], *, incremental: bool = False,
                       hook: ImportHook | None = None, sample: bool = False) -> ImportReport:
    """Import what :func:`scan` found. Does not commit. ``sample``: keep the guard's signals in the report."""
    dest = b"/".join(dest_parts)
    report = ImportReport(bytes_total=sum(i.size for i in items))
    cache = vault.cache
    if dest_parts:
        await vault.mkdir(dest, parents=True, exist_ok=True)

    def key(item: Item) -> bytes:
        return b"/".join(item.dest) + b"\0" + os.fsencode(item.local)  # scan made it absolute

    new_dirs: set[bytes] = set()  # directories this import created: nothing below them exists yet

    async def present(item: Item) -> Stat | None:
        if b"/".join(item.dest[:-1]) in new_dirs:
            return None  # a lookup that fails costs an exception: skip it for every new file of a new tree
        try:
            return await vault.stat(b"/".join(item.dest))
        except NotFound:
            return None

    async def replace_kind(item: Item, st: Stat | None) -> None:
        """A path that changed kind on disk (a symlink became a directory, a directory a file) is
        replaced in the vault too, so a backup follows the tree; earlier generations keep the old one."""
        if st is not None and (st.type == "dir") != (item.kind == "dir"):
            await vault.rm(b"/".join(item.dest), recursive=True)

    files = [i for i in items if i.kind == "file"] if incremental else []
    recorded: dict[bytes, tuple[int, int, int] | None] = {}
    files_seen = 0

    async def unchanged(item: Item, st: Stat | None) -> bool:
        """Asked for every file, in ``items`` order: the recorded stats come in batches, one hop to the
        cache's thread each (not one per file: 100,000 hops were most of an unchanged backup)."""
        nonlocal files_seen
        k = key(item)
        if k not in recorded:
            batch = [key(i) for i in files[files_seen:files_seen + STAT_BATCH]]
            if k not in batch:
                batch.append(k)
            recorded.update(zip(batch, await cache.file_stats(batch), strict=True))  # type: ignore[arg-type]
        files_seen += 1
        seen = recorded.pop(k)
        return seen == (item.size, item.meta.mtime_ns, item.ino) and st is not None and st.type == "file" \
            and st.size == item.size

    def same_link(item: Item, st: Stat | None) -> bool:
        """The vault already holds this symlink as it is on disk (target, owner, mtime): leave it alone,
        so an unchanged tree with symlinks commits no new generation."""
        return st is not None and st.type == "symlink" and st.target is not None \
            and os.fsencode(st.target) == item.target and st.mtime_ns == item.meta.mtime_ns \
            and (st.uid, st.gid) == (item.meta.uid, item.meta.gid)

    stored: list[tuple[bytes, int, int, int, bytes]] = []
    by_dest: dict[bytes, Item] = {}

    def progress(prog: Progress, parts: list[bytes] | None) -> None:
        report.uploaded, report.deduped = prog.uploaded, prog.deduped
        path = None if parts is None else b"/".join(parts)
        if path is not None:
            item = by_dest.pop(path, None)  # each file completes once
            if item is not None:
                stored.append((key(item), item.size, item.meta.mtime_ns, item.ino, path))
        if hook:
            hook(report, prog, os.fsdecode(path) if path else None)

    started: list[Ingest] = []

    async def pipeline(stack: AsyncExitStack) -> Ingest:
        """The write pipeline, started for the first file read: an unchanged backup starts none
        (no mixer, no slots, no writer lease)."""
        if not started:
            ing = await stack.enter_async_context(vault.ingest(progress=progress, sample=sample))
            if ing.signals is not None:
                report.signals = ing.signals  # filled as files complete
            started.append(ing)
        return started[0]

    async def add_file(stack: AsyncExitStack, item: Item, path: bytes) -> None:
        st = await present(item)
        await replace_kind(item, st)
        report.files += 1
        if incremental and await unchanged(item, st):
            report.skipped += 1
            if hook:
                hook(report, None, os.fsdecode(path))
            return
        by_dest[path] = item
        if sample and st is not None:
            seen = unpack((await cache.file_stats([key(item)], extra=True))[0])  # type: ignore[arg-type]
            if seen is not None:
                report.prior[path] = seen
        # the path as a str: a Path per file cost more than its read
        await (await pipeline(stack)).add(item.dest, item.local, item.meta, item.size)
        report.bytes_read += item.size
        if st is None:
            report.added += 1
        else:
            report.changed += 1

    try:
        async with AsyncExitStack() as stack:
            for item in items:
                path = b"/".join(item.dest)
                if item.kind == "dir":
                    st = await present(item)
                    await replace_kind(item, st)
                    if st is None or st.type != "dir":
                        new_dirs.add(path)
                    else:  # there already (two sources of one name merge): look below it
                        new_dirs.discard(path)
                    await vault.mkdir(path, parents=True, exist_ok=True)
                    await vault.set_meta(path, mode=item.meta.mode, mtime_ns=item.meta.mtime_ns,
                                         uid=item.meta.uid, gid=item.meta.gid)
                    report.directories += 1
                elif item.kind == "symlink":
                    st = await present(item)
                    await replace_kind(item, st)
                    if not same_link(item, st):
                        await vault.symlink(path, item.target, replace=True, mtime_ns=item.meta.mtime_ns)
                        await vault.set_meta(path, uid=item.meta.uid, gid=item.meta.gid)
                    report.symlinks += 1
                else:
                    await add_file(stack, item, path)
    finally:
        got = report.signals
        if stored:  # only files the pipeline completed; the guard's signal rides along in the row
            cache.set_file_stats([(k, size, mtime, ino, pack(got[p]) if p in got else b"")
                                  for k, size, mtime, ino, p in stored])
    return report
