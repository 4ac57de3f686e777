"""``scripts/model-check``: explore the protocol models and report (exit 0: every invariant holds)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from . import commit, disperse, dropgc, drops, prune, rekey, rewrite
from .explore import Result, Spec, explore

PROTOCOLS: dict[str, ModuleType] = {"commit": commit, "prune": prune, "disperse": disperse, "drops": drops,
                                    "dropgc": dropgc, "rekey": rekey, "rewrite": rewrite}


def mutants() -> list[tuple[str, str, str]]:
    """Every seeded mutant as ``(protocol, mutant, what it breaks)``."""
    return [(p, m, what) for p, mod in PROTOCOLS.items() for m, what in mod.MUTANTS.items()]


def level_for(protocol: str, mutant: str | None, level: str) -> str:
    """The bounds to run: ``small`` for a mutant unless the module says it needs more."""
    if mutant is None or level != "small":
        return level
    return str(getattr(PROTOCOLS[protocol], "LEVEL_OF", {}).get(mutant, level))


def check(protocol: str, level: str = "default", mutant: str | None = None) -> Result:
    build: Callable[..., Spec[Any]] = PROTOCOLS[protocol].spec
    result = explore(build(level_for(protocol, mutant, level), mutant))
    if mutant is not None:
        result.protocol = f"{protocol} --mutant {mutant}"
    return result


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="model-check", description=(
        "Explore every interleaving of the concurrency protocol models within bounds; "
        "exit 0 when every invariant holds, 1 with the shortest failing trace otherwise."))
    ap.add_argument("protocols", nargs="*", metavar="PROTOCOL", help=f"some of: {', '.join(PROTOCOLS)} (default all)")
    ap.add_argument("--mutant", metavar="NAME", help="run a seeded bug instead of the protocol (see --list-mutants)")
    ap.add_argument("--list-mutants", action="store_true", help="print 'PROTOCOL MUTANT' lines and exit")
    ap.add_argument("--deep", action="store_true", help="explore larger bounds (the slow test run)")
    ap.add_argument("--bounds", choices=("small", "default", "deep"), help="bounds by name (--deep is --bounds deep)")
    args = ap.parse_args(argv)
    for p in args.protocols:
        if p not in PROTOCOLS:
            ap.error(f"unknown protocol {p!r}: use {', '.join(PROTOCOLS)}")
    if args.list_mutants:
        for p, m, _what in mutants():
            if not args.protocols or p in args.protocols:
                print(p, m)
        return 0
    level = args.bounds or ("deep" if args.deep else "default")
    chosen = args.protocols or list(PROTOCOLS)
    if args.mutant is not None:
        chosen = [p for p in chosen if args.mutant in PROTOCOLS[p].MUTANTS]
        if not chosen:
            ap.error(f"unknown mutant {args.mutant!r} (see --list-mutants)")
    failed = False
    for p in chosen:
        result = check(p, level, args.mutant)
        print(result.report(), flush=True)
        failed = failed or result.violation is not None
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
