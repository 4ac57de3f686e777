"""``sigmavault guard status|clear GEN|tune|unfreeze MOUNTPOINT``: the guard's marks and thresholds.

See :mod:`sigmavault.engine.anomaly` (scoring) and :mod:`sigmavault.mount.watch` (the mount's freeze).

``backup`` and ``import`` score every run against the vault's own baseline and mark a suspect run
in its commit (it still commits). ``status`` lists the marks still standing, the generations
``forget`` keeps because of them, the thresholds in force and how many earlier runs make the
baseline. ``clear GEN`` writes a record (commits are immutable) that lifts GEN's mark; ``tune``
writes a record with new thresholds (integers; shares in per mille), shared by every client.
``unfreeze`` resumes a mount that ``mount --guard freeze`` switched to read-only (SIGUSR1 to it).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .. import UsageError
from .._internal import GUARD_DEFAULTS, protected_in
from .access import Options, open_vault
from .mount import unfreeze
from .output import Output, shown


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("guard", parents=[common], help="ransomware guard: suspect generations and thresholds",
                       description="Show and manage the guard's suspect marks and thresholds.")
    gsub = p.add_subparsers(dest="guard_command", required=True, metavar="GUARD_COMMAND", parser_class=type(p))
    s = gsub.add_parser("status", parents=[common], help="suspect generations, protected ones, thresholds")
    s.set_defaults(handler=status)
    c = gsub.add_parser("clear", parents=[common], help="lift the suspect mark of a generation (a new record)")
    c.add_argument("generation", type=int, metavar="GEN")
    c.set_defaults(handler=clear)
    t = gsub.add_parser("tune", parents=[common], help="set thresholds for every client of the vault (a new record)")
    t.add_argument("--set", action="append", default=[], metavar="NAME=N",
                   help=f"a threshold (repeatable): {', '.join(GUARD_DEFAULTS)}")
    t.add_argument("--reset", action="store_true", help="back to the documented defaults")
    t.set_defaults(handler=tune)
    u = gsub.add_parser("unfreeze", parents=[common], help="make a mount the guard froze writable again")
    u.add_argument("mountpoint", metavar="MOUNTPOINT")
    u.add_argument("--pid-file", metavar="FILE", help="the pid file the mount wrote")
    u.set_defaults(handler=run_unfreeze)


async def status(opts: Options, args: argparse.Namespace, out: Output) -> None:
    async with await open_vault(opts) as vault:
        st = await vault.guard_state()
    protected = sorted(protected_in(st))
    t = st.thresholds
    doc = {"suspect": [{"generation": g, "reasons": list(r)} for g, r in sorted(st.marks.items())],
           "cleared": [{"generation": g, "by": by} for g, by in sorted(st.cleared.items())],
           "protected": protected, "baseline_runs": len(st.baseline), "thresholds": t,
           "mode": "baseline" if len(st.baseline) >= t["baseline_runs"] else "fixed"}
    lines = [f"suspect generation {g}: {'; '.join(shown(x, 200) for x in r)}" for g, r in sorted(st.marks.items())]
    lines.append("no suspect generation" if not st.marks else
                 f"kept by forget unless --force: generation {', '.join(map(str, protected)) or 'none'}")
    lines.append(f"baseline: {len(st.baseline)} earlier clean runs ({doc['mode']} thresholds)")
    lines.append("thresholds: " + " ".join(f"{k}={v}" for k, v in t.items()))
    out.result(doc, lines)


async def clear(opts: Options, args: argparse.Namespace, out: Output) -> None:
    async with await open_vault(opts) as vault:
        st = await vault.guard_state()
        if args.generation not in st.marks:
            raise UsageError(f"generation {args.generation} is not marked suspect (see `sigmavault guard status`)")
        gen = await vault.guard_record({"guard": {"clear": [args.generation]}})
    out.result({"cleared": args.generation, "record": gen},
               f"cleared the suspect mark of generation {args.generation} (recorded as generation {gen})")


def _setting(text: str) -> tuple[str, int]:
    name, eq, value = text.partition("=")
    if not eq or name not in GUARD_DEFAULTS:
        raise UsageError(f"--set {text!r}: use NAME=N with NAME one of {', '.join(GUARD_DEFAULTS)}")
    try:
        n = int(value)
    except ValueError:
        raise UsageError(f"--set {text!r}: the value must be a whole number") from None
    if not 0 <= n <= 1_000_000:
        raise UsageError(f"--set {text!r}: the value must be between 0 and 1000000")
    return name, n


async def tune(opts: Options, args: argparse.Namespace, out: Output) -> None:
    changes = dict(_setting(x) for x in args.set)
    if not changes and not args.reset:
        raise UsageError("name a threshold with --set NAME=N, or --reset")
    async with await open_vault(opts) as vault:
        st = await vault.guard_state()
        new = dict(GUARD_DEFAULTS) if args.reset else st.thresholds
        new.update(changes)
        gen = await vault.guard_record({"guard": {"tune": new}})
    out.result({"thresholds": new, "record": gen},
               [f"thresholds recorded as generation {gen}:", " ".join(f"{k}={v}" for k, v in new.items())])


async def run_unfreeze(opts: Options, args: argparse.Namespace, out: Output) -> None:
    pid = unfreeze(Path(args.mountpoint), Path(args.pid_file) if args.pid_file else None)
    out.result({"mountpoint": args.mountpoint, "pid": pid},
               f"asked the mount on {args.mountpoint} to resume writing (its log says when it has)")
