"""``sigmavault unlock [--for 15m]`` and ``sigmavault lock``: the unlock agent from the user's side.

``unlock`` opens the vault with a credential (checking everything an open checks), then hands
the vault's KSK to the per-user agent (:mod:`.agent`, started if none runs) for the given time;
later commands on this vault ask the agent before prompting. ``lock`` makes the agent forget
every key; it then exits.
"""

from __future__ import annotations

import argparse
from typing import Any

from .. import UsageError
from . import agent_client
from .access import Options, open_vault
from .agent import socket_path
from .output import Output


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("unlock", parents=[common], help="keep the vault unlocked for a while (unlock agent)")
    p.add_argument("--for", dest="duration", default="15m", metavar="DURATION",
                   help="how long: 30s, 15m, 2h, 1d (default 15m)")
    p.set_defaults(handler=unlock)
    p = sub.add_parser("lock", parents=[common], help="make the unlock agent forget every key")
    p.set_defaults(handler=lock)


async def unlock(opts: Options, args: argparse.Namespace, out: Output) -> None:
    try:
        ttl = agent_client.parse_duration(args.duration)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    async with await open_vault(opts, use_agent=False) as vault:
        status = await agent_client.store(*vault.keys.agent_key(), ttl)
        fp = vault.fingerprint
    out.result({"fingerprint": fp, "seconds": ttl, "agent_pid": status.get("pid"), "socket": str(socket_path())},
               f"vault {fp} unlocked for {args.duration} (agent pid {status.get('pid')})")


async def lock(opts: Options, args: argparse.Namespace, out: Output) -> None:
    forgot = await agent_client.lock()
    running = forgot is not None
    out.result({"agent_was_running": running, "forgot": forgot or 0},
               f"locked: the agent forgot {forgot} key(s)" if running else "no unlock agent was running")
