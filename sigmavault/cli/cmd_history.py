"""History commands: ``restore --at GEN PATH DEST`` and ``diff GEN1 [GEN2]`` (``log`` is in cmd_inspect).

Every commit is a snapshot. ``restore`` copies a file or tree as it was at generation GEN (like
``export`` of that snapshot); ``diff`` lists what was added, removed or modified between two
generations (GEN2 defaults to the newest), skipping unchanged subtrees without reading them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._internal import ObjectMissing
from .access import Options, open_vault
from .cmd_export import NAMING, add_destination_options, export_options, export_to
from .output import Output


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("restore", parents=[common], help="copy a file or tree as it was at an earlier generation",
                       description=f"Copy VAULT_PATH as it was at generation GEN to LOCAL_DEST. {NAMING}")
    p.add_argument("--at", type=int, required=True, metavar="GEN", help="the generation (see `sigmavault log`)")
    p.add_argument("--own-tree", action="store_true",
                   help="the generation's own tree (its commit's root), not the one a `rekey --rewrite` map gives "
                        "it: for a map that `verify --full` or `prune` refused (exit 6); works while the old "
                        "objects are kept")
    p.add_argument("vault_path", metavar="VAULT_PATH")
    p.add_argument("local_dest", metavar="LOCAL_DEST")
    add_destination_options(p)
    p.set_defaults(handler=restore)
    p = sub.add_parser("diff", parents=[common], help="what changed between two generations",
                       description="List paths added, removed or modified from GEN1 to GEN2 (default: newest).")
    p.add_argument("gen1", type=int, metavar="GEN1")
    p.add_argument("gen2", type=int, nargs="?", metavar="GEN2")
    p.set_defaults(handler=diff)


async def restore(opts: Options, args: argparse.Namespace, out: Output) -> None:
    async with await open_vault(opts) as vault:
        snapshot = await vault.at(args.at, own=args.own_tree)
        try:
            await export_to(snapshot, args.vault_path, Path(args.local_dest), export_options(args), out, "restore")
        except ObjectMissing as exc:
            if not args.own_tree:
                raise
            raise ObjectMissing(f"generation {args.at}'s own tree is not stored whole ({exc.message}): a prune after "
                                "`rekey --rewrite` deletes it; restore without --own-tree") from None


async def diff(opts: Options, args: argparse.Namespace, out: Output) -> None:
    marks = {"added": "+", "removed": "-", "modified": "M"}
    async with await open_vault(opts) as vault:
        new = vault.generation if args.gen2 is None else args.gen2
        await vault.at(new)  # NotFound with a clear message for a generation that does not exist
        changes = [c async for c in vault.diff(args.gen1, new)]
    if out.json:
        for c in changes:
            out.event({"event": "change", "change": c.kind, "path": c.path, "type": c.type})
    else:
        out.lines(f"{marks[c.kind]} {c.path}{'/' if c.type == 'dir' else ''}" for c in changes)
    out.result({"event": "done", "from": args.gen1, "to": new, "changes": len(changes)},
               None if changes else f"no changes between generations {args.gen1} and {new}")
