"""Process hygiene for every process that holds vault keys: no core dumps, no secrets in children.

:func:`harden` sets ``RLIMIT_CORE`` to 0 and ``PR_SET_DUMPABLE`` to 0 (no core file, and other
processes of the same user can no longer read this one's memory or ``/proc/<pid>/environ``
through ptrace rules). It is called by the CLI, the mount (also its ``--background`` child), the
unlock agent and each mixer worker; ``exec`` resets the dumpable flag, so every new program must
call it itself.

Secrets given through the environment (``SIGMAVAULT_PASSPHRASE``, ``SIGMAVAULT_RECOVERY_CODE``)
are taken out of it by :func:`take_secret_env` as the CLI starts, so no child inherits them (the
agent, a background mount, mixer workers); the CLI reads them with :func:`secret_env`. A library
user's environment is left alone (:func:`secret_env` falls back to it), and children that the
CLI starts get :func:`child_env` in any case.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource

SECRET_VARS = ("SIGMAVAULT_PASSPHRASE", "SIGMAVAULT_RECOVERY_CODE")
PR_SET_DUMPABLE = 4
_taken: dict[str, str] = {}


def harden() -> None:
    """No core dumps, not dumpable (best effort where the platform has no ``prctl``)."""
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def take_secret_env() -> None:
    """Move the secret variables out of ``os.environ`` (and so out of every later child's)."""
    for name in SECRET_VARS:
        value = os.environ.pop(name, None)
        if value is not None:
            _taken[name] = value


def secret_env(name: str) -> str | None:
    """A secret variable: the value taken at start, else the environment's (library use)."""
    return _taken.get(name, os.environ.get(name))


def child_env() -> dict[str, str]:
    """The environment for a child process: this one's without the secret variables."""
    return {k: v for k, v in os.environ.items() if k not in SECRET_VARS}
