"""Names of the local backend's temporary files, and who may remove a leftover one.

A write goes to ``.tmp-<host>-<boot id>-<pid ns>-<pid>-<16 hex>`` in the object's folder and is
linked to its real name when complete. After ``kill -9`` or a power cut the temporary stays. It
may be removed at once only when the kernel can tell its writer is gone: the same boot id (a
random id per boot of this machine) and the same pid namespace (else the pid means another
process), and no process with that pid. Anything else (another machine sharing the folder, another
boot, another container, an unlabelled name from an older version) might belong to a live writer,
so it is removed only after :data:`GRACE` (24 h). The host name is only there for people reading it.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from dataclasses import dataclass
from functools import cache

PREFIX = ".tmp-"
GRACE = 24 * 3600.0
_HEX = re.compile(r"[0-9a-f]+")


@cache
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip().replace("-", "")[:32] or "0"
    except OSError:
        return "0"  # unknown: never "this boot", so only the grace period applies


@cache
def _pid_ns() -> str:
    try:
        link = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return "0"
    digits = "".join(c for c in link if c.isdigit())
    return digits or "0"


@cache
def _host() -> str:
    return re.sub(r"[^A-Za-z0-9._]", "_", socket.gethostname())[:64] or "host"


def new_name() -> str:
    """A fresh temporary name for this process (the pid is read each time: it changes on fork)."""
    return f"{PREFIX}{_host()}-{_boot_id()}-{_pid_ns()}-{os.getpid()}-{secrets.token_hex(8)}"


@dataclass(frozen=True, slots=True)
class Owner:
    host: str | None
    pid: int | None
    here: bool  # this boot and pid namespace: the pid can be checked
    alive: bool

    def describe(self) -> str:
        if self.pid is None:
            return "written by an unknown writer"
        if self.here:
            return f"written by process {self.pid} on this machine, {'running' if self.alive else 'gone'}"
        return f"written by process {self.pid} on host {self.host} (another machine, boot or container)"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return True  # cannot tell: keep it
    return True


def owner(name: str) -> Owner:
    """Who wrote temporary ``name`` (from its name alone; nothing in it is trusted beyond that)."""
    parts = name[len(PREFIX):].rsplit("-", 4)
    if len(parts) != 5 or not name.startswith(PREFIX):
        return Owner(None, None, False, False)
    host, boot, ns, pid, rand = parts
    if not (_HEX.fullmatch(boot) and ns.isdigit() and pid.isdigit() and _HEX.fullmatch(rand)) or len(pid) > 10:
        return Owner(None, None, False, False)
    here = boot == _boot_id() and boot != "0" and ns == _pid_ns() and ns != "0"
    return Owner(host, int(pid), here, here and _alive(int(pid)))


def removable(name: str, mtime: float, now: float) -> bool:
    """Whether a leftover temporary may be deleted now (see the module docstring)."""
    o = owner(name)
    if o.here:
        return not o.alive
    return now - mtime > GRACE
