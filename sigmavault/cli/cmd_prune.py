"""Retention commands: ``prune [--max-unused 5%] [--dry-run]`` and ``destroy --yes-destroy-vault``.

``prune`` deletes every object no kept generation references, safely beside writers on other
machines (docs/format.md, "Prune beside writers"): it may wait for writers that were uploading
when it started (their leases) before it deletes. It prints the objects and bytes before and
after (``--json``: one document). Packs whose unused share exceeds ``--max-unused`` are repacked
first: their live blobs move into new packs (the rewrite protocol under the same epoch, a map in the
chain), and the old packs go with the rest; ``--max-unused 100%`` repacks nothing. ``destroy``
crypto-shreds the vault: every keystore first (from then on nothing opens), then every object;
running it again finishes an interrupted run. It needs no passphrase.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from .. import PruneReport, UsageError, Vault
from .._internal import destroy_vault
from .access import Options, open_vault
from .output import Output, human_size

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress

_STAGES = {"scan": "reading generations", "repack": "repacking", "wait": "waiting for writers", "delete": "deleting",
           "k/": "shredding keystores", "l/": "deleting records", "o/": "deleting objects",
           "s/": "deleting shards", "c/": "deleting commits"}


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("prune", parents=[common], help="delete what no kept generation references",
                       description="Delete every object no kept generation references. Safe beside writers on "
                                   "other machines: it may wait for writers that were uploading when it started.")
    p.add_argument("--max-unused", default="5%", metavar="PERCENT",
                   help="repack packs whose unused share exceeds this (default 5%%; 100%% repacks nothing)")
    p.add_argument("--dry-run", action="store_true", help="only show what would be deleted")
    p.set_defaults(handler=prune)
    p = sub.add_parser("destroy", parents=[common], help="crypto-shred the vault: keystores first, then everything",
                       description="Delete every keystore (the data becomes unreadable at once), then every object. "
                                   "Run it again to finish an interrupted run.")
    p.add_argument("--yes-destroy-vault", action="store_true", help="required: there is no undo")
    p.set_defaults(handler=destroy)


def _fraction(text: str) -> float:
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise UsageError(f"--max-unused {text!r}: give a share such as 5% or 0.05")
    return value


class _Stages:
    """Progress of a staged run: a rich bar on a TTY, JSON ``progress`` events with ``--json``."""

    def __init__(self, out: Output) -> None:
        self._out = out
        self._bar: RichProgress | None = None
        self._stage = ""
        if not out.json and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn  # rich only when a bar is drawn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     transient=True)
            self._task = self._bar.add_task("", total=None)
            self._bar.start()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=_STAGES.get(stage, stage), completed=done, total=total or None)
        elif self._out.json and (stage != self._stage or done == total):
            self._out.event({"event": "progress", "stage": stage, "done": done, "total": total})
        self._stage = stage

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


async def prune(opts: Options, args: argparse.Namespace, out: Output) -> None:
    limit = _fraction(args.max_unused)
    stages = _Stages(out)
    try:
        async with await open_vault(opts) as vault:
            r = await vault.prune(max_unused=limit, dry_run=args.dry_run, progress=stages)
    finally:
        stages.close()
    out.result(*_report(r, limit))


async def after_forget(vault: Vault, opts: Options, args: argparse.Namespace, out: Output) -> None:
    """The prune step of ``forget --prune`` (cmd_lifecycle): on the vault the forget used; its
    report is a ``{"event":"prune",…}`` line with ``--json``, lines of text otherwise."""
    limit = _fraction(getattr(args, "max_unused", "5%"))
    stages = _Stages(out)
    try:
        r = await vault.prune(max_unused=limit, dry_run=args.dry_run, progress=stages)
    finally:
        stages.close()
    doc, lines = _report(r, limit)
    if out.json:
        out.event({"event": "prune", **doc})
    else:
        out.lines(lines)


def _report(r: PruneReport, limit: float) -> tuple[dict[str, Any], list[str]]:
    doc: dict[str, Any] = {"dry_run": r.dry_run, "generation": r.generation,
           "before": {"objects": r.objects_before, "bytes": r.bytes_before},
           "after": {"objects": r.objects_after, "bytes": r.bytes_after},
           "unreferenced": r.candidates, "kept_for_writers": r.kept_back, "deleted": r.deleted,
           "deleted_bytes": r.deleted_bytes, "locked": r.locked, "writers_waited_for": r.leases_waited,
           "records_cleared": r.records_cleared, "killed_runs_ended": r.stale_records_ended,
           "write_only_clients": {"deleted": r.drop_deleted, "held": r.writers_held,
                                  "markers_cleared": r.markers_cleared, "leases_cleared": r.writer_leases_cleared},
           "packs": {"count": r.packs, "over_max_unused": r.packs_over_limit, "unused_bytes": r.unused_pack_bytes,
                     "max_unused": limit, "repacked": r.repacked, "repacked_bytes": r.repacked_bytes,
                     "written_bytes": r.repack_written}}
    verb = "would delete" if r.dry_run else "deleted"
    gone = r.candidates if r.dry_run else r.deleted
    lines = [f"before: {r.objects_before} objects ({human_size(r.bytes_before)})",
             f"after:  {r.objects_after} objects ({human_size(r.bytes_after)})"
             + (" (if no writer takes any back)" if r.dry_run else ""),
             f"{verb} {gone} unreferenced objects ({human_size(r.bytes_before - r.bytes_after)})"]
    if r.drop_deleted:
        lines.append(f"{r.drop_deleted} of them stored by write-only clients")
    if r.writers_held:
        lines.append(f"kept every object of {r.writers_held} write-only clients whose drops wait for their objects "
                     "(see `sigmavault verify`)")
    if r.locked:
        lines.append(f"skipped {r.locked} unreferenced objects under a retention lock (a later prune deletes them)")
    if r.kept_back:
        lines.append(f"kept {r.kept_back} objects that writers committed or rescued meanwhile")
    if r.repacked:  # the packs over the limit, and the page packs their repack would leave over it
        over = f"{r.packs_over_limit} of {r.packs} packs were over {limit:.0%} unused"
        lines.append(f"would repack {r.repacked} packs ({over}), freeing about {human_size(r.unused_pack_bytes)}"
                     if r.dry_run else f"repacked {r.repacked} packs ({over}): {human_size(r.repacked_bytes)} of "
                     f"them went, {human_size(r.repack_written)} of new packs")
    return doc, lines


async def destroy(opts: Options, args: argparse.Namespace, out: Output) -> None:
    if not args.yes_destroy_vault:
        raise UsageError(f"destroy deletes the vault at {opts.url} for good (keystores first, then every object); "
                         "nothing can bring it back. Add --yes-destroy-vault to do it")
    stages = _Stages(out)
    try:
        r = await destroy_vault(opts.urls if len(opts.urls) > 1 else opts.url, stages)
    finally:
        stages.close()
    out.result({"destroyed": True, "keystores": r.keystores, "objects": r.objects},
               [f"destroyed {opts.url}: {r.keystores} keystores shredded, {r.objects} other objects deleted"])
