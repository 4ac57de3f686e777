"""Talking to the unlock agent (:mod:`.agent`): start or reuse it, hand it a key, ask for one, lock it.

The client trusts an agent only if its socket sits in our private runtime directory, is owned
by us, and the process answering has our uid (``SO_PEERCRED``). An absent, stale or foreign agent
is simply "no agent": commands then ask for a credential as usual. Requests time out quickly so
a wedged agent never hangs a command.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import stat
import subprocess
import sys
from typing import Any

from .. import IntegrityError
from .._internal import LockedError, Secret, b64u, harden, unb64u
from .agent import MAX_LINE, MAX_TTL, peer_uid, private_dir, socket_path
from .unixpath import reachable

TIMEOUT = 3.0
_DURATION = re.compile(r"(\d+)\s*([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """``90``, ``90s``, ``15m``, ``2h``, ``1d`` → seconds (1 s … 30 days). ValueError otherwise."""
    m = _DURATION.fullmatch(text.strip().lower())
    if m is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 15m, 2h, 1d)")
    seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if not 0 < seconds <= MAX_TTL:
        raise ValueError("the duration must be between 1 second and 30 days")
    return seconds


async def request(doc: dict[str, Any]) -> dict[str, Any] | None:
    """One request to the running agent; None if there is no (trustworthy) agent."""
    path = socket_path()
    try:
        st = path.lstat()
    except OSError:
        return None
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.getuid():
        return None
    try:
        with reachable(path) as name:
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(name, limit=MAX_LINE + 2), TIMEOUT)
    except (OSError, TimeoutError):
        return None
    try:
        sock = writer.get_extra_info("socket")
        if sock is None or peer_uid(sock) != os.getuid():
            return None
        writer.write(json.dumps(doc).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), TIMEOUT)
        reply = json.loads(line) if line else None
        return reply if isinstance(reply, dict) else None
    except (OSError, TimeoutError, ValueError, asyncio.LimitOverrunError):
        return None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def fetch(fingerprint: bytes) -> tuple[Secret, bytes] | None:
    """The KSK (and the slot it came from) the agent holds for this vault fingerprint, or None."""
    reply = await request({"op": "get", "fp": fingerprint.hex()})
    if not reply or not reply.get("ok"):
        return None
    try:
        ksk = Secret(unb64u(reply.get("ksk"), 32), "ksk")
        slot = bytes.fromhex(str(reply.get("slot", "")))
    except (IntegrityError, ValueError):
        return None
    return ksk, slot


async def ping() -> dict[str, Any] | None:
    reply = await request({"op": "ping"})
    return reply if reply and reply.get("ok") else None


async def start() -> dict[str, Any]:
    """Reuse the running agent or start one (detached, in its own session). LockedError if it won't come up."""
    status = await ping()
    if status is not None:
        return status
    folder = await asyncio.to_thread(private_dir)
    path = socket_path()
    subprocess.Popen(  # our own interpreter and module; the key goes over the socket later
        [sys.executable, "-m", "sigmavault.cli.agent", os.fspath(path)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True, cwd="/", env=harden.child_env(),
    )
    for _ in range(100):
        await asyncio.sleep(0.05)
        status = await ping()
        if status is not None:
            return status
    raise LockedError(f"the unlock agent did not start (socket {path} in {folder})")


async def store(fingerprint: bytes, ksk: Secret, slot: bytes, ttl: int) -> dict[str, Any]:
    """Hand the agent a vault's KSK for ``ttl`` seconds (starting the agent if needed). LockedError on failure."""
    status = await start()
    reply = await request({"op": "put", "fp": fingerprint.hex(), "ksk": b64u(ksk.reveal()), "slot": slot.hex(),
                           "ttl": ttl})
    if not reply or not reply.get("ok"):
        raise LockedError("the unlock agent refused the key")
    return status


async def hand_over(fingerprint: bytes, ksk: Secret, slot: bytes) -> bool:
    """After a rekey: if the agent holds a key for this vault (the old KSK, which no longer opens
    anything new), replace it with ``ksk`` for the time the old one had left. True if it did; an
    agent that holds nothing for the vault (or none running) is left alone."""
    reply = await request({"op": "get", "fp": fingerprint.hex()})
    left = reply.get("left") if reply and reply.get("ok") else None
    if not isinstance(left, (int, float)) or left < 1:
        return False
    await store(fingerprint, ksk, slot, int(left))
    return True


async def lock() -> int | None:
    """Make the agent forget every key (it then exits). Returns how many it held, None if none ran."""
    reply = await request({"op": "lock"})
    if not reply or not reply.get("ok"):
        return None
    forgot = reply.get("forgot")
    return forgot if isinstance(forgot, int) else 0
