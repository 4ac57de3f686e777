"""The unlock agent: a per-user process that keeps unwrapped keystore keys (KSKs) in memory for a while.

Like ssh-agent. ``sigmavault unlock`` starts it (``python -m sigmavault.cli.agent SOCKET``) or
reuses it and hands it a vault's KSK; later commands ask it for the KSK of the vault whose
fingerprint they have pinned, and still fetch the keystore and check its MAC, fingerprint and
generation on every open. ``sigmavault lock`` makes it forget everything, and it exits when
the last key's time is up (or when nothing is handed to it soon after it starts).

It answers only over a Unix socket ``runtime_dir()/agent.sock`` (directory 0700, socket 0600) and
only to peers of its own uid (``SO_PEERCRED``). It refuses core dumps and ptrace-style access
(``PR_SET_DUMPABLE 0``). Protocol: one request line, one reply line, then the connection closes;
each line a JSON object of at most 4 KiB::

    {"op":"ping"}                                   -> {"ok":true,"pid":N,"vaults":n}
    {"op":"put","fp":HEX32,"ksk":B64U,"slot":HEX,"ttl":S} -> {"ok":true}
    {"op":"get","fp":HEX32}                         -> {"ok":true,"ksk":B64U,"slot":HEX,"left":S} | {"ok":false}
    {"op":"lock"}                                   -> {"ok":true,"forgot":n}   (and the agent exits)

Keys never appear in its logs (it keeps none) or in argv/environment (they arrive over the socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import stat
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import IntegrityError, config
from .._internal import LockedError, Secret, b64u, harden, unb64u
from .unixpath import reachable

MAX_LINE = 4096
START_GRACE = 30.0  # seconds an agent that was handed nothing waits before it exits
MAX_TTL = 30 * 86400
_FP = re.compile(r"[0-9a-f]{32}")
_SLOT = re.compile(r"(?:[0-9a-f]{32})?")


def socket_path() -> Path:
    return config.runtime_dir() / "agent.sock"


def private_dir() -> Path:
    """The runtime directory, created 0700 and checked to be ours and private. LockedError if not."""
    folder = config.runtime_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise LockedError(f"the agent directory {folder} is not a directory owned by you")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(folder, 0o700)
    return folder


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (Linux ``SO_PEERCRED``)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


@dataclass(slots=True)
class _Entry:
    ksk: Secret = field(repr=False)
    slot: str
    deadline: float  # time.monotonic()


class Agent:
    """The agent's state and request handling (one instance per process)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ino: int | None = None  # of the socket this agent bound
        self._keys: dict[str, _Entry] = {}
        self._changed = asyncio.Event()
        self.done = asyncio.Event()

    def _forget(self, fp: str) -> None:
        entry = self._keys.pop(fp, None)
        if entry is not None:
            entry.ksk.wipe()

    def _expire(self) -> None:
        now = time.monotonic()
        for fp in [fp for fp, e in self._keys.items() if e.deadline <= now]:
            self._forget(fp)

    def stop(self) -> None:
        for fp in list(self._keys):
            self._forget(fp)
        self.done.set()
        self._changed.set()
        self.unlink()

    def unlink(self) -> None:
        """Remove our socket (not a successor's) so new clients start a new agent at once."""
        with contextlib.suppress(OSError):
            if self.ino is not None and self.path.stat().st_ino == self.ino:
                self.path.unlink()
        self.ino = None

    async def keep_time(self) -> None:
        """Forget keys when their time is up; end the agent when it holds none."""
        deadline = time.monotonic() + START_GRACE
        while True:
            self._expire()
            if self._keys:
                deadline = min(e.deadline for e in self._keys.values())
            elif time.monotonic() >= deadline or self.done.is_set():
                self.done.set()
                return
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - time.monotonic()) + 0.01)

    def answer(self, req: dict[str, Any]) -> dict[str, Any]:
        self._expire()
        op = req.get("op")
        if op == "ping":
            return {"ok": True, "pid": os.getpid(), "vaults": len(self._keys)}
        if op == "put":
            fp, slot, ttl = req.get("fp"), req.get("slot", ""), req.get("ttl")
            if not (isinstance(fp, str) and _FP.fullmatch(fp) and isinstance(slot, str) and _SLOT.fullmatch(slot)
                    and type(ttl) is int and 0 < ttl <= MAX_TTL and isinstance(req.get("ksk"), str)):
                return {"ok": False, "error": "bad request"}
            try:
                ksk = Secret(unb64u(req["ksk"], 32), "ksk")
            except IntegrityError:
                return {"ok": False, "error": "bad request"}
            self._forget(fp)
            self._keys[fp] = _Entry(ksk, slot, time.monotonic() + ttl)
            self._changed.set()
            return {"ok": True}
        if op == "get":
            entry = self._keys.get(req["fp"]) if isinstance(req.get("fp"), str) else None
            if entry is None:
                return {"ok": False}
            left = int(entry.deadline - time.monotonic())
            return {"ok": True, "ksk": b64u(entry.ksk.reveal()), "slot": entry.slot, "left": left}
        if op == "lock":
            n = len(self._keys)
            for fp in list(self._keys):
                self._forget(fp)
            self.unlink()
            asyncio.get_running_loop().call_later(0.2, self.stop)  # after this reply has gone out
            return {"ok": True, "forgot": n}
        return {"ok": False, "error": "unknown request"}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            if sock is None or peer_uid(sock) != os.getuid():
                return  # another user: say nothing
            line = await asyncio.wait_for(reader.readline(), 5)
            if len(line) > MAX_LINE or not line.endswith(b"\n"):
                return
            try:
                req = json.loads(line)
            except ValueError:
                return
            reply = self.answer(req) if isinstance(req, dict) else {"ok": False, "error": "bad request"}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # a broken or slow client only loses its own request
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def _alive(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        try:
            with reachable(path) as name:
                s.connect(name)
        except OSError:
            return False
    return True


async def serve(path: Path) -> None:
    agent = Agent(path)
    if path.exists() or path.is_symlink():
        if _alive(path):
            return  # another agent got there first: it serves
        path.unlink()
    old_umask = os.umask(0o177)
    try:
        with reachable(path) as name:
            server = await asyncio.start_unix_server(agent.handle, path=name, limit=MAX_LINE + 2)
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    agent.ino = path.stat().st_ino
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        loop.add_signal_handler(sig, agent.stop)
    try:
        async with server:
            await agent.keep_time()
    finally:
        agent.unlink()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else socket_path()
    harden.harden()
    harden.take_secret_env()
    os.chdir("/")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    asyncio.run(serve(path))


if __name__ == "__main__":
    main()
