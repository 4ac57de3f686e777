"""Looking at a vault as a whole: ``info``, ``log`` and ``verify [--full]``.

``log`` lists the generations with the client that wrote each and what it changed (from the
catalog diff, which skips unchanged subtrees). ``info`` shows the fingerprint (compare it on a
second device, or pass it there with ``--fingerprint``), the generation, how many data objects
the storage holds and their bytes, and the vault's parameters. ``verify`` checks every
generation: every object one needs is present with its length (``--full``: downloaded and
authenticated, no cache trusted), and lists the store for unreferenced objects and leftovers
(engine/transfer/verify.py); each problem names the affected vault path, and any problem makes the
command fail with the integrity exit code (6).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Any

from .. import IntegrityError, NotFound, Vault
from .access import Options, open_vault
from .cmd_lifecycle import counts_text, who_text
from .output import Output, human_size, iso_time, shown


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("info", parents=[common], help="fingerprint, generation, size and parameters")
    p.set_defaults(handler=info)
    p = sub.add_parser("log", parents=[common], help="the generations, newest first, with what each changed",
                       description="Each generation, newest first: its time, the client that wrote it, the paths "
                                   "it added (+), modified (~) and removed (-), and the bytes of the files it added "
                                   "or modified.")
    p.add_argument("-n", "--limit", type=int, default=None, metavar="N", help="show only the newest N")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also who wrote each (key slot, client, host if recorded) and what it recorded or forgot")
    p.set_defaults(handler=log)
    p = sub.add_parser("verify", parents=[common], help="check that every file's data is present and intact")
    p.add_argument("--full", action="store_true",
                   help="download and authenticate every object (commits, keystore, pages, data), trusting no cache")
    p.set_defaults(handler=verify)


async def _objects(vault: Vault) -> tuple[int, int]:
    backend = vault.backend
    names = [n async for n in backend.list("o/")]
    sizes: list[int] = []
    limit = asyncio.Semaphore(max(1, backend.properties.concurrency))

    async def size(name: str) -> None:
        async with limit:
            with contextlib.suppress(NotFound):  # deleted while we looked (garbage collection)
                sizes.append(await backend.head(name))

    async with asyncio.TaskGroup() as tg:
        for n in names:
            tg.create_task(size(n))
    return len(sizes), sum(sizes)


async def info(opts: Options, args: argparse.Namespace, out: Output) -> None:
    async with await open_vault(opts) as vault:
        keys = vault.keys
        count, nbytes = await _objects(vault)
        p, nslots = keys.params, len(keys.slots())
        doc: dict[str, Any] = {
            "url": vault.url, "fingerprint": vault.fingerprint, "generation": vault.generation,
            "keystore_generation": keys.generation, "key_slots": nslots, "epoch": keys.epoch,
            "objects": count, "object_bytes": nbytes,
            "parameters": {"suite": p.suite, "prf": p.prf, "chunk_size": p.chunk_size, "chunking": p.chunking,
                           "padding": p.padding, "pad_floor": p.pad_floor, "inline_max": p.inline_max,
                           "compression": p.compression},
            "lock": None if p.lock is None else {"days": p.lock.days, "mode": p.lock.mode},
        }
    lock = [] if p.lock is None else [f"locked:       every object for {p.lock.days} days ({p.lock.mode})"]
    out.result(doc, [
        f"vault:        {doc['url']}",
        f"fingerprint:  {doc['fingerprint']}",
        f"generation:   {doc['generation']}",
        f"objects:      {count} ({human_size(nbytes)})",
        f"key slots:    {nslots} (keystore generation {keys.generation}, epoch {keys.epoch})",
        f"chunks:       {human_size(p.chunk_size)} {p.chunking}, {p.suite}, prf {p.prf}, "
        f"padding {p.padding}, compression {p.compression}",
        *lock,
    ])


async def log(opts: Options, args: argparse.Namespace, out: Output) -> None:
    async with await open_vault(opts) as vault:
        entries = await vault.log(None if args.limit is None else max(0, args.limit), changes=True)
    doc = {"generations": [{"generation": e.generation, "time": e.time, "time_utc": iso_time(e.time),
                            "client": e.client, "added": e.added, "modified": e.modified, "removed": e.removed,
                            "bytes": e.bytes, "suspect": e.suspect, "reasons": list(e.reasons), "drops": list(e.drops),
                            **({"slot": e.slot, "slot_label": e.slot_label, "host": e.host, "counts": e.counts,
                                "forgot": None if e.forgot is None else list(e.forgot)} if args.verbose else {})}
                           for e in entries]}
    lines = []
    for e in entries:
        lines.append(f"{e.generation:>6}  {iso_time(e.time)}  client {e.client}  "
                     f"+{e.added} ~{e.modified} -{e.removed}  {human_size(e.bytes or 0)}"
                     + ("  SUSPECT" if e.suspect else ""))
        lines.extend(f"        suspect: {shown(r, 200)}" for r in e.reasons)
        lines.extend(f"        {shown(d, 300)}" for d in e.drops)
        if args.verbose:
            lines.append(f"        by {who_text(e)}")
            if e.forgot is not None:
                lines.append(f"        forget record: forgot {len(e.forgot)} generation(s)")
            elif e.counts is not None:
                lines.append(f"        recorded {counts_text(e.counts)}")
    out.result(doc, lines)


async def verify(opts: Options, args: argparse.Namespace, out: Output) -> None:
    async with await open_vault(opts) as vault:
        report = await vault.verify(full=args.full)
    doc = {"ok": report.ok, "generation": report.generation, "generations": report.generations, "full": args.full,
           "files": report.files, "directories": report.directories, "blobs_checked": report.blobs_checked,
           "objects_checked": report.objects_checked, "bytes_checked": report.bytes_checked,
           "problems": list(report.problems), "notes": list(report.notes)}
    summary = (f"checked {report.generations} generation{'s' if report.generations != 1 else ''} "
               f"(head {report.generation}): {report.files} files, {report.directories} directories, "
               f"{report.blobs_checked} blobs, {report.objects_checked} objects"
               + (f", {human_size(report.bytes_checked)} read and authenticated" if args.full else ""))
    notes = [f"NOTE {n}" for n in report.notes]
    if report.ok:
        out.result(doc, [summary, *notes, "no problems found"])
        return
    out.result(doc, [summary, *notes, *(f"PROBLEM {p}" for p in report.problems)])
    first = report.problems[0]
    more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
    raise IntegrityError(f"verify found {len(report.problems)} problem(s): {first}{more}")
