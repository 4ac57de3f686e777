"""``sigmavault import LOCAL... [--to VAULT_DIR]`` and ``sigmavault backup LOCAL... [--to VAULT_DIR]``.

``import`` names like ``cp -r``: one LOCAL imported to a ``--to`` path that does not exist yet
becomes that path (``import photos --to /pics`` makes ``/pics`` the copy of ``photos``); into an
existing directory, a ``--to`` ending in ``/`` (made if missing) and always with several LOCALs,
each LOCAL lands at ``VAULT_DIR/<its name>``.
Mode, uid/gid and mtime of files, directories and symlinks are kept; symlinks are stored as
symlinks (never followed); other special files (sockets, FIFOs, devices) are skipped with a
warning. All files flow through one write pipeline (chunker → coordinate → mixer → writer).
Existing vault files are replaced, so an import that failed or was interrupted can simply be run
again: chunks already uploaded are found by the dedup index and not sent again. The new
generation is committed only at the end: a failure or Ctrl-C leaves the vault at its previous
generation.

With ``--writer-credential`` (a write-only client, ``key add --writer``) both commands write one
signed drop instead of a commit: ``--to`` (default: the writer's folder) is the exact destination,
inside the writer's folder; one LOCAL becomes it, several land inside it. The writer sees nothing
of the vault, so nothing is skipped as unchanged; the owner's next commit takes the drop in.

``backup`` is the incremental form, and always puts LOCAL at ``VAULT_DIR/<its name>`` so every run
maps to the same vault paths: files unchanged since their last backup into the same vault path
(size, mtime and inode, remembered in the local cache) are skipped without being read, symlinks
and directories unchanged are left alone, and an unchanged tree commits no new generation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

import sigmavault

from .. import NotFound, UsageError, Vault
from .._internal import ImportReport, Item, import_items, run_counts, run_meta, scan, score, show, split_path
from .._internal import Progress as PipelineProgress
from .access import Options, open_vault
from .output import Output, count, human_size, shown
from .transfer import progress_for


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    for name, incremental, text in (
        ("import", False, "copy local files and trees into the vault (one new generation)"),
        ("backup", True, "incremental import: skip files unchanged since their last backup (a new generation)"),
    ):
        p = sub.add_parser(name, parents=[common], help=text, description=text[0].upper() + text[1:] + ".")
        p.add_argument("local", nargs="+", metavar="LOCAL", help="local files or directories")
        p.add_argument("--to", default=None, metavar="VAULT_DIR",
                       help="where to put them (default /): inside it if it is a directory or ends in '/', "
                            "else one LOCAL becomes it (import only); with --writer-credential the exact "
                            "destination, inside the writer's folder (default: that folder)")
        p.set_defaults(handler=run, incremental=incremental)
    text = "take in the drops of write-only clients now (a new generation if there are any)"
    p = sub.add_parser("ingest", parents=[common], help=text,
                       description=text[0].upper() + text[1:] + ". Any commit does this too (an import, a mount's "
                                   "commit); a drop that fails its checks is refused, recorded and shown by audit.")
    p.set_defaults(handler=ingest)


async def _lands_onto(vault: Vault, args: argparse.Namespace, dest: list[bytes]) -> bool:
    """cp -r naming: one source imported to a path that does not exist yet becomes that path."""
    if args.incremental or len(args.local) != 1 or not dest or (args.to or "").endswith("/"):
        return False  # a trailing slash says "a directory": the source goes inside it
    try:
        await vault.stat(show(dest))
    except NotFound:
        return True
    return False


async def run(opts: Options, args: argparse.Namespace, out: Output) -> None:
    dest = split_path(args.to or "/")  # UsageError for NUL or '..' before anything is opened
    for s in args.local:
        if not os.path.lexists(s):
            raise NotFound(f"{s}: no such file or directory")
    if opts.writer_credential is not None:
        await _drop(opts, args, out)
        return
    progress = progress_for(out, args.command)
    moved = 0
    sizes: dict[str, int] = {}

    def hook(report: ImportReport, prog: PipelineProgress | None, path: str | None) -> None:
        nonlocal moved
        if prog is not None and prog.bytes_done > moved:
            progress.advance(prog.bytes_done - moved)
            moved = prog.bytes_done
        if path is not None:
            shown = "/" + path.lstrip("/")
            progress.file_done(shown, "file", sizes.get(shown, 0))  # the events add up to the total

    async with await open_vault(opts) as vault:
        onto = await _lands_onto(vault, args, dest)
        items, skipped = await asyncio.to_thread(scan, [Path(s) for s in args.local], dest, onto=onto)
        for s in skipped:
            out.warn(f"skipped {s}: not a regular file, directory or symlink")
        files = [i for i in items if i.kind == "file"]
        total = sum(i.size for i in files)
        sizes.update((show(i.dest), i.size) for i in files)
        before = vault.generation
        existing = await _existing(vault, items, dest[:-1] if onto else dest)
        progress.start(len(files), total)
        try:
            report = await import_items(vault, items, dest[:-1] if onto else dest, incremental=args.incremental,
                                        hook=hook, sample=True)
            counts = run_counts(existing, [b"/".join(i.dest) for i in files], report.signals, report.prior)
            guard = await vault.guard_state(scoring=True)
            reasons = score(counts, guard.baseline, guard.thresholds, guard.recent)
            meta = run_meta(counts, reasons, guard)
            gen = await vault.commit(meta)
            if reasons and gen == before:
                gen = await vault.guard_record(meta)  # nothing changed, but say so
        finally:
            progress.close()
    if reasons:
        out.warn(f"suspicious change: generation {gen}: {'; '.join(reasons)}")
        out.event({"event": "anomaly", "generation": gen, "reasons": reasons, "counts": counts})
    doc = {"event": "done", "generation": gen, "previous_generation": before, "files": report.files,
           "directories": report.directories, "symlinks": report.symlinks, "bytes": total,
           "bytes_read": report.bytes_read, "new": report.added, "changed": report.changed,
           "unchanged": report.skipped, "uploaded": report.uploaded, "skipped": len(skipped),
           "suspect": bool(reasons)}
    out.result(doc, summary(args.command, report, gen, before))


async def _drop(opts: Options, args: argparse.Namespace, out: Output) -> None:
    """A write-only run: every LOCAL through the same import route into a drop (see the module doc)."""
    if len(opts.places) > 1:
        raise UsageError("write-only clients are not supported on dispersed vaults yet")
    cred = opts.writer_credential
    assert cred is not None
    progress = progress_for(out, args.command)
    async with await sigmavault.open(opts.target, writer_credential=cred, dest=args.to) as writer:
        dest = writer.dest
        onto = len(args.local) == 1 and not (args.to or "").endswith("/") and bool(dest)
        items, skipped = await asyncio.to_thread(scan, [Path(s) for s in args.local], dest, onto=onto)
        for s in skipped:
            out.warn(f"skipped {s}: not a regular file, directory or symlink")
        files = [i for i in items if i.kind == "file"]
        total = sum(i.size for i in files)
        progress.start(len(files), total)
        moved = 0

        def hook(report: ImportReport, prog: PipelineProgress | None, path: str | None) -> None:
            nonlocal moved
            if prog is not None and prog.bytes_done > moved:
                progress.advance(prog.bytes_done - moved)
                moved = prog.bytes_done

        try:
            report = await import_items(writer, items, dest[:-1] if onto else dest, hook=hook)
            seq = await writer.commit()
        finally:
            progress.close()
    where = show(dest)
    doc = {"event": "done", "drop": seq, "destination": where, "files": report.files,
           "directories": report.directories, "symlinks": report.symlinks, "bytes": total,
           "uploaded": report.uploaded, "skipped": len(skipped)}
    out.result(doc, f"dropped {count(report.files, 'file')}, {count(report.directories, 'directory')}, "
                    f"{count(report.symlinks, 'symlink')} ({human_size(total)}) for {where} as drop {seq}; "
                    "the vault's next commit by its owner takes it in")


async def ingest(opts: Options, args: argparse.Namespace, out: Output) -> None:
    async with await open_vault(opts) as vault:
        before = vault.generation
        gen = await vault.commit()
        drops = vault.head_drops() if gen != before else None
    taken: list[dict[str, Any]] = [] if drops is None else [
        {"writer": i.writer.hex(), "drop": i.seq, "dest": os.fsdecode(i.dest), "files": i.files, "bytes": i.bytes}
        for i in drops.ingested]
    refused: list[dict[str, Any]] = [] if drops is None else [{"writer": r.writer.hex(), "drop": r.seq, "why": r.why}
                                        for r in drops.refused]
    lines = [f"drop {t['drop']} of writer {t['writer'][:8]} → {shown(t['dest'], 200)}: "
             f"{count(t['files'], 'file')}, {human_size(t['bytes'])}" for t in taken]
    lines += [f"drop {r['drop']} of writer {r['writer'][:8]} refused: {shown(r['why'], 200)}" for r in refused]
    lines.append(f"took in {count(len(taken), 'drop')} → generation {gen}" if gen != before
                 else f"no drops waiting; still generation {gen}")
    out.result({"generation": gen, "previous_generation": before, "ingested": taken, "refused": refused}, lines)


async def _existing(vault: Vault, items: list[Item], dest: list[bytes]) -> list[bytes]:
    """The vault's files under the roots this run backs up, before it (the guard's denominator; catalog only)."""
    out: list[bytes] = []
    for item in items:
        if len(item.dest) == len(dest) + 1 and item.kind == "dir":
            with contextlib.suppress(NotFound):
                out += await vault.file_paths(b"/".join(item.dest))
    return out


def summary(command: str, report: ImportReport, gen: int, before: int) -> str:
    """``backed up 3 files (1 new, 1 changed, 1 unchanged), 2 directories, 1 symlink (4.0 KiB read) → generation 5``."""
    parts = [f"{report.added} new"]
    if command == "backup":
        parts += [f"{report.changed} changed", f"{report.skipped} unchanged"]
    else:
        parts.append(f"{report.changed} replaced")
    what = "backed up" if command == "backup" else "imported"
    where = f"generation {gen}" if gen != before else f"nothing changed, still generation {gen}"
    return (f"{what} {count(report.files, 'file')} ({', '.join(parts)}), {count(report.directories, 'directory')}, "
            f"{count(report.symlinks, 'symlink')} ({human_size(report.bytes_read)} read) → {where}")
