"""``sigmavault repair`` and ``sigmavault places``: a dispersed vault's places (issue 12).

``repair`` re-creates every missing or corrupt shard and every missing commit or keystore replica
from the surviving places (idempotent; after a kill run it again); a local folder that is gone is
made again. ``places`` shows each place: reachable, latency, shards held, bytes, shards missing.
Both open the vault with all its places (``--vault`` once for each, in any order).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import sigmavault

from .. import UsageError
from .. import _internal as internal
from .access import Options, credential, notice
from .output import Output, human_size


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "repair",
        parents=[common],
        help="rebuild what a dispersed vault's places are missing",
        description="Re-create missing or corrupt shards and commit/keystore copies on every place.",
    )
    p.set_defaults(handler=run_repair)
    p = sub.add_parser(
        "places",
        parents=[common],
        help="each place of a dispersed vault: health and holdings",
        description="Show each place; `places replace OLD NEW` moves a lost place OLD (one of the "
        "--vault given) to the empty location NEW and rebuilds it there.",
    )
    p.add_argument("action", nargs="?", choices=["replace"], help="replace OLD by NEW")
    p.add_argument("old", nargs="?", metavar="OLD")
    p.add_argument("new", nargs="?", metavar="NEW")
    p.set_defaults(handler=run_places)


async def _open(opts: Options, create_places: bool = False, urls: list[str] | None = None) -> sigmavault.Vault:
    if len(opts.urls) < 2:
        raise UsageError("this command is for a dispersed vault: give each of its places with --vault")
    return await sigmavault.open(
        urls or opts.target,
        credential=credential(opts),
        fingerprint=opts.fingerprint,
        on_notice=notice,
        create_places=create_places,
        write_quorum=opts.write_quorum,
    )


async def run_repair(opts: Options, args: argparse.Namespace, out: Output, urls: list[str] | None = None) -> None:
    tty = not out.json and sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if tty:
            sys.stderr.write(f"\rrepair: {done}/{total} checked")
            sys.stderr.flush()

    async with await _open(opts, create_places=True, urls=urls) as vault:
        report = await internal.repair_places(vault, progress)
    if tty:
        sys.stderr.write("\n")
    doc = report.to_json()
    lines = [
        f"checked {report.objects} objects: {report.shards_written} shards written, "
        f"{report.shards_replaced} replaced, {report.records_copied} records copied, "
        f"{report.copies_removed} losing copies removed"
    ]
    lines += [f"cannot rebuild (fewer than needed shards): {name}" for name in report.unrecoverable]
    lines += [f"unreachable: {place}" for place in report.unreachable]
    lines.append(
        "all places complete"
        if report.clean
        else "run `sigmavault repair` again once every place answers"
        if report.unreachable
        else "repaired"
    )
    out.result(doc, lines)


async def run_places(opts: Options, args: argparse.Namespace, out: Output) -> None:
    if args.action == "replace":
        if args.old is None or args.new is None:
            raise UsageError("usage: sigmavault --vault … places replace OLD NEW")
        if args.old not in opts.urls or args.new in opts.urls:
            raise UsageError("OLD must be one of the --vault places and NEW none of them")
        if await internal.has_objects(args.new):
            raise UsageError(f"{args.new} is not empty: a new place must start empty")
        await run_repair(opts, args, out, [args.new if u == args.old else u for u in opts.urls])
        return
    if args.old is not None:
        raise UsageError("places takes no arguments but `replace OLD NEW`")
    async with await _open(opts) as vault:
        rows = await internal.places_status(vault)
    lines = [
        f"{'reachable' if r.reachable else 'UNREACHABLE':11} "
        f"{'-' if r.latency_ms is None else f'{r.latency_ms:.0f} ms':>8}  {r.objects:>8} shards "
        f"{human_size(r.bytes):>10}  {r.shards_missing} missing  {r.place}"
        for r in rows
    ]
    out.result({"places": [r.to_json() for r in rows]}, lines)
