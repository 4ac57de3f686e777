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
from pathlib import Path
from typing import Any

from ..engine.errors import AlreadyExists
from ..engine.export import export_tree
from ..engine.tree import show, split_path
from ..engine.vault import Vault
from .access import Options, open_vault
from .output import Output, human_size
from .transfer import progress_for


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("export", parents=[common], help="copy a vault file or tree to the local disk",
                       description="Copy VAULT_PATH (file or directory tree) to LOCAL_DEST.")
    p.add_argument("vault_path", metavar="VAULT_PATH")
    p.add_argument("local_dest", metavar="LOCAL_DEST")
    p.add_argument("-f", "--force", action="store_true", help="overwrite / merge into an existing LOCAL_DEST")
    p.set_defaults(handler=run)


async def run(opts: Options, args: argparse.Namespace, out: Output) -> None:
    target = Path(args.local_dest)
    if (target.exists() or target.is_symlink()) and not args.force:
        raise AlreadyExists(f"{target} already exists (use --force to overwrite)")
    async with await open_vault(opts) as vault:
        await export_to(vault, args.vault_path, target, out, "export")


async def export_to(vault: Vault, vault_path: str, target: Path, out: Output, label: str) -> None:
    """Copy ``vault_path`` of ``vault`` (or of a snapshot view) to ``target``, with progress and a result."""
    progress = progress_for(out, label)
    try:
        report = await export_tree(vault, vault_path, target, on_start=progress.start, on_file=progress.file_done)
    finally:
        progress.close()
    base = show(split_path(vault_path))
    doc = {"event": "done", "path": base, "destination": str(target), "files": report.files,
           "bytes": report.bytes, "directories": report.directories, "generation": vault.generation}
    verb = "restored" if label == "restore" else "exported"
    out.result(doc, f"{verb} {report.files} files ({human_size(report.bytes)}) to {target}")
