"""``sigmavault forget-device``: drop this device's local state for a vault (pin, high-water marks, cache).

The local state lives below ``config.state_dir()``, one folder per vault location (see
:mod:`sigmavault.engine.local.devstate`); a dispersed vault's folder is keyed by its vault id, which
its places' keystore names (read by majority, whatever order the places are given in: one lost
place may be left out; no key is needed).
Forgetting it is the way out when a vault was replaced on purpose (a pinned location that now
holds another vault is an integrity error until then). The next open pins the vault it finds
again (trust on first use, or ``--fingerprint``), and rollback protection starts over from there.
Nothing on the storage changes; the vault's keys are not needed.
"""

from __future__ import annotations

import argparse
from typing import Any

from .. import _internal as internal
from .access import Options
from .output import Output


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("forget-device", parents=[common],
                       help="drop this device's local state for the vault (its pin, rollback marks and cache)",
                       description="Delete this device's local state for --vault: the pinned fingerprint, the "
                                   "rollback high-water marks and the cache. The storage is not touched. The next "
                                   "open trusts the vault it finds (or the one --fingerprint names).")
    p.set_defaults(handler=run)


async def run(opts: Options, args: argparse.Namespace, out: Output) -> None:
    folder, removed = await internal.forget_device(opts.target)
    out.result({"url": opts.url, "state_dir": str(folder), "removed": [str(p) for p in removed]},
               f"forgot this device's state for {opts.url} ({folder})" if removed
               else f"this device holds no state for {opts.url} ({folder})")
