"""``sigmavault export VAULT_PATH LOCAL_DEST [--force]``: copy a file or a whole tree out of the vault.

``LOCAL_DEST`` is the name the copy gets (not a folder to put it in); if it exists, nothing is
written unless ``--force`` (then files are replaced and directories merged). Files are written
to a temporary name and renamed into place when complete, so an interrupted or failed export
(disk full, damaged data) never leaves a truncated file under the real name. Mode and mtime are
restored; symlinks are recreated as symlinks. A data object that is missing or fails
authentication stops the export with an error naming the vault file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ..engine.errors import AlreadyExists, IntegrityError, LocalIOError, NotFound
from ..engine.export import write_dir, write_file, write_link
from ..engine.results import Stat
from ..engine.tree import Meta, show, split_path
from ..engine.vault import Vault
from .access import Options, open_vault
from .output import Output, human_size
from .transfer import progress_for, run_bounded


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("export", parents=[common], help="copy a vault file or tree to the local disk",
                       description="Copy VAULT_PATH (file or directory tree) to LOCAL_DEST.")
    p.add_argument("vault_path", metavar="VAULT_PATH")
    p.add_argument("local_dest", metavar="LOCAL_DEST")
    p.add_argument("-f", "--force", action="store_true", help="overwrite / merge into an existing LOCAL_DEST")
    p.set_defaults(handler=run)


async def checked(path: str, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Re-raise a missing data object as damage to the vault file that needed it."""
    try:
        async for piece in stream:
            yield piece
    except NotFound:
        raise IntegrityError(f"{path}: a data object of this file is missing from the storage") from None


def _meta(st: Stat) -> Meta:
    return Meta(st.mode, st.uid, st.gid, st.mtime_ns, st.ctime_ns)


async def run(opts: Options, args: argparse.Namespace, out: Output) -> None:
    target = Path(args.local_dest)
    if (target.exists() or target.is_symlink()) and not args.force:
        raise AlreadyExists(f"{target} already exists (use --force to overwrite)")
    async with await open_vault(opts) as vault:
        await export_to(vault, args.vault_path, target, out, "export")


async def export_to(vault: Vault, vault_path: str, target: Path, out: Output, label: str) -> None:
    """Copy ``vault_path`` of ``vault`` (or of a snapshot view) to ``target``, with progress and a result."""
    try:
        top = await vault.stat(vault_path)
    except NotFound:
        raise NotFound(f"{vault_path}: no such file or directory in the vault") from None
    base = show(split_path(vault_path))
    entries: list[tuple[str, Stat]] = [(base, top)]
    if top.type == "dir":
        entries += [e async for e in vault.walk(vault_path)]
    total = sum(st.size for _, st in entries if st.type == "file")
    progress = progress_for(out, label)
    progress.start(sum(1 for _, st in entries if st.type == "file"), total)
    try:
        nbytes = await _export(vault, base, entries, target, progress)
    finally:
        progress.close()
    files = sum(1 for _, st in entries if st.type == "file")
    doc = {"event": "done", "path": base, "destination": str(target), "files": files, "bytes": nbytes,
           "directories": sum(1 for _, st in entries if st.type == "dir"), "generation": vault.generation}
    out.result(doc, f"{label}d {files} files ({human_size(nbytes)}) to {target}" if label == "restore"
               else f"exported {files} files ({human_size(nbytes)}) to {target}")


async def _export(vault: Vault, base: str, entries: list[tuple[str, Stat]], target: Path, progress: Any) -> int:
    def local(path: str) -> Path:
        rel = path[len(base):].lstrip("/") if base != "/" else path.lstrip("/")
        return target / rel if rel else target

    written = 0
    dirs = [(p, st) for p, st in entries if st.type == "dir"]
    for p, st in dirs:
        await write_dir(local(p), _meta(st))

    async def one(entry: tuple[str, Stat]) -> None:
        nonlocal written
        p, st = entry
        if st.type == "symlink":
            assert st.target is not None
            await write_link(local(p), os.fsencode(st.target))
        else:
            written += await write_file(local(p), _meta(st), checked(p, vault.open_read(p)))
        progress.file_done(p, st.type, st.size)

    await run_bounded([e for e in entries if e[1].type != "dir"], one)
    for p, st in reversed(dirs):  # after their content: writing into a directory changes its mtime
        try:
            await asyncio.to_thread(os.utime, local(p), ns=(st.mtime_ns, st.mtime_ns))
            await asyncio.to_thread(os.chmod, local(p), st.mode & 0o7777)
        except OSError as exc:
            raise LocalIOError(f"cannot set the time of {local(p)}: {exc.strerror}") from exc
    return written
