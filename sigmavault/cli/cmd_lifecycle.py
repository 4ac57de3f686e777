"""The history's own records: ``forget`` (keep rules, restic's semantics) and ``audit`` (who did what, when).

``forget`` decides over the generations still kept and records the decision in the hash chain
(a commit of the same root whose ``meta`` names what went, the rules, who and when); forgotten
generations no longer show in ``log`` nor open with ``restore --at``/``diff``. Their data stays
until a prune. ``--dry-run`` shows the decision and changes nothing. ``audit`` lists every commit
record (forgotten ones too), keystore changes and forgets with who and when; text another writer
recorded (slot labels, host names) is printed escaped.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .. import AuditEntry, Rules, UsageError
from .access import Options, open_vault
from .output import Output, human_size, iso_time, shown

PRUNE_MODULE = "sigmavault.cli.cmd_prune"


def _count(text: str) -> int:
    if text == "unlimited":
        return -1
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a count: {text!r} (a number, or 'unlimited')") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"a count must not be negative: {n} (use 'unlimited' to keep all)")
    return n


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "forget",
        parents=[common],
        help="forget generations by keep rules (restic's semantics)",
        description="Keep the generations any rule keeps (the newest always) and forget the rest: "
        "they no longer show in log nor restore. Buckets use local time; the data stays "
        "until a prune. The decision is recorded in the history (see `audit`).",
    )
    for rule, what in (
        ("last", "the newest N generations"),
        ("hourly", "the newest of each of the last N hours"),
        ("daily", "the newest of each of the last N days"),
        ("weekly", "the newest of each of the last N ISO weeks"),
        ("monthly", "the newest of each of the last N months"),
        ("yearly", "the newest of each of the last N years"),
    ):
        p.add_argument(f"--keep-{rule}", type=_count, default=0, metavar="N", help=f"keep {what} ('unlimited': all)")
    p.add_argument(
        "--keep-within",
        metavar="DURATION",
        help="keep every generation newer than DURATION before the newest one (e.g. 30d, 1y6m, 2d12h)",
    )
    p.add_argument("--dry-run", action="store_true", help="show what would be forgotten; change nothing")
    p.add_argument("--prune", action="store_true", help="then delete the data no kept generation needs")
    p.add_argument("--force", action="store_true",
                   help="also forget the newest clean generation before a suspect one (see `guard status`)")
    p.set_defaults(handler=forget)
    p = sub.add_parser(
        "audit",
        parents=[common],
        help="who changed what and when: commits, key changes, forgets",
        description="Every commit record of the history, oldest first: who wrote it (key slot, "
        "client, host if recorded), when, what it changed; keystore changes and forgets.",
    )
    p.add_argument(
        "--since",
        metavar="DATE",
        help="only events from DATE on (YYYY-MM-DD or ISO time; local time unless it names a zone)",
    )
    p.set_defaults(handler=audit)


def prune_hook() -> Callable[..., Any]:
    """The prune step of ``forget --prune``: UsageError until a prune command exists (checked
    before anything is forgotten, so the flag never half-runs)."""
    if importlib.util.find_spec(PRUNE_MODULE) is None:
        raise UsageError("prune is not available yet: run forget without --prune")
    module = importlib.import_module(PRUNE_MODULE)
    return module.after_forget  # type: ignore[no-any-return]


def _ranges(gens: tuple[int, ...] | list[int]) -> str:
    parts: list[str] = []
    for g in gens:
        if parts and parts[-1].split("-")[-1] == str(g - 1):
            parts[-1] = f"{parts[-1].split('-')[0]}-{g}"
        else:
            parts.append(str(g))
    return ", ".join(parts) or "none"


async def forget(opts: Options, args: argparse.Namespace, out: Output) -> None:
    rules = Rules(
        args.keep_last,
        args.keep_hourly,
        args.keep_daily,
        args.keep_weekly,
        args.keep_monthly,
        args.keep_yearly,
        args.keep_within,
    )
    if rules.empty:
        raise UsageError("name at least one --keep-* rule (forget never forgets everything by accident)")
    prune = prune_hook() if args.prune else None
    async with await open_vault(opts) as vault:
        r = await vault.forget(rules, dry_run=args.dry_run, force=args.force)
        if prune is not None:
            await prune(vault, opts, args, out)
    doc = {
        "dry_run": r.dry_run,
        "rules": dict(r.rules),
        "forgotten": list(r.forgotten),
        "kept": [{"generation": g, "reasons": list(why)} for g, why in r.kept.items()],
        "records": list(r.records),
    }
    verb = "would forget" if r.dry_run else "forgot"
    lines = [
        f"keep {len(r.kept)} generation{'s' if len(r.kept) != 1 else ''}:",
        *(f"{g:>8}  {', '.join(why)}" for g, why in r.kept.items()),
        f"{verb} {len(r.forgotten)} generation{'s' if len(r.forgotten) != 1 else ''}: {_ranges(r.forgotten)}",
    ]
    if r.dry_run:
        lines.append("dry run: nothing was changed")
    elif r.records:
        lines.append(f"recorded as generation {_ranges(r.records)}")
    out.result(doc, lines)


def _since(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since {text!r}: use a date (2026-01-31) or an ISO time (2026-01-31T08:00)") from None
    return int(when.timestamp())  # naive: local time


def who_text(e: Any) -> str:
    """``slot 1a2b3c4d "label" client 5e6f7a8b host h`` with every recorded string escaped."""
    parts = []
    if e.slot is not None or e.slot_label is not None:
        parts.append(
            f"slot {(e.slot or '?')[:8]}" + (f' "{shown(e.slot_label, 40)}"' if e.slot_label is not None else "")
        )
    parts.append(f"client {e.client[:8]}")
    if e.host is not None:
        parts.append(f"host {shown(e.host, 64)}")
    return " ".join(parts)


def counts_text(counts: Any) -> str:
    if not counts:
        return ""
    return (
        f"+{counts.get('added', 0)} ~{counts.get('changed', 0)} -{counts.get('removed', 0)} files, "
        f"{human_size(counts.get('bytes', 0))}"
    )


def _entry_doc(e: AuditEntry) -> dict[str, Any]:
    return {
        "event": e.event,
        "generation": e.generation,
        "time": e.time,
        "time_utc": iso_time(e.time),
        "client": e.client,
        "slot": e.slot,
        "slot_label": e.slot_label,
        "host": e.host,
        "counts": None if e.counts is None else dict(e.counts),
        "forgot": [list(r) for r in e.forgot],
        "rules": dict(e.rules),
        "keystore_generation": e.keystore_generation,
        "forgotten_by": e.forgotten_by,
        "writer": e.writer,
        "writer_label": e.writer_label,
        "drop": e.drop,
        "dest": e.dest,
        "why": e.why,
        "keys": [dict(k) for k in e.keys],
        "epoch": e.epoch,
    }


def _slot_hex(b64: str | None) -> str:
    try:
        return base64.urlsafe_b64decode((b64 or "") + "=" * (-len(b64 or "") % 4)).hex()[:8] or "?"
    except ValueError:
        return "?"


def _entry_line(e: AuditEntry) -> str:
    if e.event == "keys" and e.keys:  # recorded by the client that changed them
        what = "; ".join(f"{k['op']} {k.get('type', '?')} slot {_slot_hex(k.get('slot'))}"
                         + (f' "{shown(k["label"], 40)}"' if k.get("label") else "") for k in e.keys)
        return (f"{e.generation:>6}  {iso_time(e.time)}  keys    {shown(what, 400)}  (by {who_text(e)}; "
                f"keystore generation {e.keystore_generation})")
    if e.event == "keys":  # the commit that first names the new keystore, not necessarily who changed it
        return (
            f"{e.generation:>6}  {iso_time(e.time)}  keys    keystore generation {e.keystore_generation} "
            "from here on (a key slot was added, removed or changed; which one is not recorded)"
        )
    if e.event in ("drop", "refused"):  # a write-only client's drop, taken in or refused by this commit
        writer = f"writer {(e.writer or '?')[:8]}" + (f' "{shown(e.writer_label, 40)}"' if e.writer_label else "")
        what = (f"drop {e.drop} → {shown(e.dest or '?', 200)}: {counts_text(e.counts)}" if e.event == "drop"
                else f"drop {e.drop} refused: {shown(e.why or '?', 200)}")
        return f"{e.generation:>6}  {iso_time(e.time)}  {e.event:<7} {writer}  {what}  (by {who_text(e)})"
    head = f"{e.generation:>6}  {iso_time(e.time)}  {e.event:<6}  {who_text(e)}"
    if e.event in ("prune", "repair"):
        c = e.counts or {}
        what = (f"deleted {c.get('deleted', 0)} objects ({human_size(c.get('bytes', 0))})"
                + (f", {c['repacked']} of them repacked packs" if c.get("repacked") else "") if e.event == "prune"
                else ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(c.items())))
        return f"{head}  {what}"
    if e.event == "rekey":
        return f"{head}  key epoch {e.epoch} starts (a new vault key; keystore generation {e.keystore_generation})"
    if e.event == "rewrite":
        return f"{head}  every kept generation re-encrypted under key epoch {e.epoch} (old generations read through it)"
    if e.event == "repack":
        c = e.counts or {}
        return (f"{head}  repacked: moved {c.get('blobs', 0)} blobs and {c.get('pages', 0)} directories out of "
                f"{c.get('packs', 0)} mostly unused packs (key epoch {e.epoch}; old generations read through it)")
    if e.event == "forget":
        rules = " ".join(f"{k}={shown(str(v), 20)}" for k, v in e.rules.items())
        gens = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in e.forgot)
        return f"{head}  forgot {shown(gens, 200)} (rules {rules})"
    gone = f"  [forgotten by {e.forgotten_by}]" if e.forgotten_by is not None else ""
    return f"{head}  {counts_text(e.counts) or 'no counts recorded'}{gone}"


async def audit(opts: Options, args: argparse.Namespace, out: Output) -> None:
    since = _since(args.since)
    async with await open_vault(opts) as vault:
        entries = await vault.audit(since)
    out.result({"events": [_entry_doc(e) for e in entries]}, [_entry_line(e) for e in entries])
