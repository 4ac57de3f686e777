"""``sigmavault import LOCAL... [--to VAULT_DIR]``: copy files and whole trees into the vault, as one generation.

Like ``cp -r``: each LOCAL lands at ``VAULT_DIR/<its name>``. Mode, uid/gid and mtime of files and
directories are kept; symlinks are stored as symlinks (never followed); other special files
(sockets, FIFOs, devices) are skipped with a warning. Existing vault files are replaced, so an
import that failed or was interrupted can simply be run again (chunks already uploaded are
deduplicated). The new generation is committed only at the end: a failure or Ctrl-C leaves the
vault at its previous generation.
"""

from __future__ import annotations

import argparse
import os
import stat
from dataclasses import dataclass
from typing import Any

from ..engine.errors import AlreadyExists, LocalIOError, NotFound, UsageError
from ..engine.tree import show, split_path
from ..engine.vault import Vault
from .access import Options, open_vault
from .output import Output, human_size
from .transfer import Progress, progress_for, run_bounded


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("import", parents=[common], help="copy local files and trees into the vault",
                       description="Copy local files and directory trees into the vault (one new generation).")
    p.add_argument("local", nargs="+", metavar="LOCAL", help="local files or directories")
    p.add_argument("--to", default="/", metavar="VAULT_DIR", help="vault directory to import into (default /)")
    p.set_defaults(handler=run)


@dataclass(frozen=True, slots=True)
class Item:
    kind: str  # "file" | "dir" | "symlink"
    local: bytes
    dest: list[bytes]
    st: os.stat_result
    target: bytes | None = None


def _scan(sources: list[bytes], dest: list[bytes]) -> tuple[list[Item], list[bytes]]:
    """Everything to import, parents before children; and the special files that will be skipped."""
    items: list[Item] = []
    skipped: list[bytes] = []
    for src in sources:
        name = os.path.basename(os.path.normpath(os.path.abspath(src)))
        if not name:
            raise UsageError(f"cannot import {os.fsdecode(src)} as a whole: name the folders inside it")
        stack = [(src, [*dest, name])]
        while stack:
            local, parts = stack.pop()
            try:
                st = os.lstat(local)
            except FileNotFoundError:
                raise NotFound(f"{os.fsdecode(local)}: no such file or directory") from None
            except OSError as exc:
                raise LocalIOError(f"cannot read {os.fsdecode(local)}: {exc.strerror}") from exc
            if stat.S_ISLNK(st.st_mode):
                items.append(Item("symlink", local, parts, st, os.readlink(local)))
            elif stat.S_ISREG(st.st_mode):
                items.append(Item("file", local, parts, st))
            elif stat.S_ISDIR(st.st_mode):
                items.append(Item("dir", local, parts, st))
                try:
                    names = sorted(os.listdir(local), reverse=True)
                except OSError as exc:
                    raise LocalIOError(f"cannot list {os.fsdecode(local)}: {exc.strerror}") from exc
                stack.extend((os.path.join(local, n), [*parts, n]) for n in names)
            else:
                skipped.append(local)
    return items, skipped


def _path(parts: list[bytes]) -> bytes:
    return b"/" + b"/".join(parts)


async def _put_file(vault: Vault, item: Item, progress: Progress) -> None:
    try:
        await vault.put(_path(item.dest), os.fsdecode(item.local))
    except FileNotFoundError:
        raise NotFound(f"{os.fsdecode(item.local)} disappeared during the import") from None
    except OSError as exc:
        raise LocalIOError(f"cannot read {os.fsdecode(item.local)}: {exc.strerror}") from exc
    progress.file_done(show(item.dest), "file", item.st.st_size)


async def _put_link(vault: Vault, item: Item) -> None:
    assert item.target is not None
    try:
        await vault.symlink(_path(item.dest), item.target)
    except AlreadyExists:  # importing again: replace what is there
        await vault.rm(_path(item.dest), recursive=False)
        await vault.symlink(_path(item.dest), item.target)


async def run(opts: Options, args: argparse.Namespace, out: Output) -> None:
    dest = split_path(args.to)  # UsageError for NUL or '..' before anything is opened
    sources = [os.fsencode(s) for s in args.local]
    for s in sources:
        if not os.path.lexists(s):
            raise NotFound(f"{os.fsdecode(s)}: no such file or directory")
    items, skipped = _scan(sources, dest)
    for s in skipped:
        out.warn(f"skipped {os.fsdecode(s)}: not a regular file, directory or symlink")
    files = [i for i in items if i.kind == "file"]
    total = sum(i.st.st_size for i in files)
    progress = progress_for(out, "import")
    async with await open_vault(opts) as vault:
        before = vault.generation
        progress.start(len(files), total)
        try:
            if dest:
                await vault.mkdir(_path(dest), parents=True, exist_ok=True)
            for d in (i for i in items if i.kind == "dir"):
                await vault.mkdir(_path(d.dest), exist_ok=True)
            await run_bounded(files, lambda i: _put_file(vault, i, progress))
            for link in (i for i in items if i.kind == "symlink"):
                await _put_link(vault, link)
                progress.file_done(show(link.dest), "symlink", 0)
            for d in reversed([i for i in items if i.kind == "dir"]):  # children first: their mtime sticks
                await vault.set_meta(_path(d.dest), mode=d.st.st_mode & 0o7777, mtime_ns=d.st.st_mtime_ns,
                                     uid=d.st.st_uid, gid=d.st.st_gid)
                progress.file_done(show(d.dest), "dir", 0)
            gen = await vault.commit()
        finally:
            progress.close()
    counts = {k: sum(1 for i in items if i.kind == k) for k in ("file", "dir", "symlink")}
    doc = {"event": "done", "generation": gen, "previous_generation": before, "files": counts["file"],
           "directories": counts["dir"], "symlinks": counts["symlink"], "bytes": total, "skipped": len(skipped)}
    out.result(doc, f"imported {counts['file']} files, {counts['dir']} directories, {counts['symlink']} symlinks "
                    f"({human_size(total)}) → generation {gen}")
