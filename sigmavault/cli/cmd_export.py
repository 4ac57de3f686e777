"""``sigmavault export VAULT_PATH LOCAL_DEST [--force] [--delete [--dry-run]]``: copy a file or tree out.

Naming is ``cp -r``'s: a file exported to an existing directory lands inside it; a tree exported to
an absent or empty LOCAL_DEST becomes LOCAL_DEST; a non-empty one is refused (exit 5) unless
``--force``, which merges into it, replacing files of the same name (directories there are kept;
nothing is deleted unless ``--delete``, which then removes what the vault does not have —
``--delete --dry-run`` only lists that). Files are written unnamed (or under a temporary name) and put
in place when complete, so an interrupted or failed export (disk full, damaged data) never leaves a
truncated file under the real name. Mode (without setuid/setgid/sticky unless
``--keep-special-bits``) and mtime are restored, the owner only as root with ``--same-owner``;
symlinks are recreated as symlinks, and a symlink already on the disk below LOCAL_DEST is
replaced, never followed. A data object that is missing or fails authentication stops the export
with an error naming the vault file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .. import Snapshot, Vault
from .._internal import ExportOptions, export_tree, show, split_path
from .access import Options, open_vault
from .output import Output, count, human_size
from .transfer import progress_for

FORCE_HELP = ("merge into a non-empty LOCAL_DEST, overwriting files of the same name "
              "(nothing else there is deleted)")
NAMING = ("A file goes inside LOCAL_DEST if that is a directory; a tree becomes LOCAL_DEST if it is absent "
          "or empty, and a non-empty LOCAL_DEST is refused unless --force.")


def add_destination_options(p: argparse.ArgumentParser) -> None:
    """The options export and restore share: what to do at the destination and which metadata to restore."""
    p.add_argument("-f", "--force", action="store_true", help=FORCE_HELP)
    p.add_argument("--keep-special-bits", action="store_true",
                   help="restore setuid, setgid and sticky bits (dropped by default)")
    p.add_argument("--same-owner", action="store_true", help="restore owner and group (root only)")
    p.add_argument("--delete", action="store_true",
                   help="after copying a tree, remove what the vault does not have below LOCAL_DEST")
    p.add_argument("--dry-run", action="store_true", help="with --delete: list what would be removed, change nothing")


def export_options(args: argparse.Namespace) -> ExportOptions:
    return ExportOptions(force=args.force, keep_special_bits=args.keep_special_bits, same_owner=args.same_owner,
                         delete=args.delete, dry_run=args.dry_run)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("export", parents=[common], help="copy a vault file or tree to the local disk",
                       description=f"Copy VAULT_PATH (file or directory tree) to LOCAL_DEST. {NAMING}")
    p.add_argument("vault_path", metavar="VAULT_PATH")
    p.add_argument("local_dest", metavar="LOCAL_DEST")
    add_destination_options(p)
    p.set_defaults(handler=run)


async def run(opts: Options, args: argparse.Namespace, out: Output) -> None:
    async with await open_vault(opts) as vault:
        await export_to(vault, args.vault_path, Path(args.local_dest), export_options(args), out, "export")


async def export_to(vault: Vault | Snapshot, vault_path: str, target: Path, options: ExportOptions, out: Output,
                    label: str) -> None:
    """Copy ``vault_path`` of ``vault`` (or of a snapshot view) to ``target``, with progress and a result."""
    progress = progress_for(out, label)
    doomed = "would remove" if options.dry_run else "removed"

    def deleted(path: Path) -> None:
        out.event({"event": "delete", "path": str(path), "dry_run": options.dry_run})
        if not out.json:
            out.lines([f"{doomed} {path}"])

    try:
        report = await export_tree(vault, vault_path, target, options, on_start=progress.start,
                                   on_file=progress.file_done, on_delete=deleted)
    finally:
        progress.close()
    base = show(split_path(vault_path))
    doc = {"event": "done", "path": base, "destination": str(report.destination), "files": report.files,
           "bytes": report.bytes, "directories": report.directories, "removed": report.removed,
           "dry_run": options.dry_run, "generation": vault.generation}
    if options.dry_run:
        out.result(doc, f"dry run: would remove {count(report.removed, 'entry')} from {report.destination}; "
                        "nothing was changed")
        return
    verb = "restored" if label == "restore" else "exported"
    gone = f", removed {count(report.removed, 'entry')}" if options.delete else ""
    out.result(doc, f"{verb} {count(report.files, 'file')} ({human_size(report.bytes)}) to {report.destination}"
                    + gone)
