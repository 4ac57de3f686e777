"""A mount whose vault fails on purpose: ``python faultmount.py VAULT MOUNTPOINT CACHE``.

A name ``fault-<Class>`` makes the vault's ``stat`` raise that class of ``sigmavault.engine.errors``
(``fault-KeyError``: a bare KeyError, i.e. a bug), so a test can see through a real FUSE syscall
which errno each error class answers. Every other name is served normally. Runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import sigmavault
from sigmavault.engine import errors
from sigmavault.engine.catalog.results import Stat
from sigmavault.mount.options import MountOptions
from sigmavault.mount.session import Session

PREFIX = b"fault-"


async def main(url: str, mountpoint: str, cache: str) -> None:
    vault = await sigmavault.open(url, passphrase=os.environ["SIGMAVAULT_PASSPHRASE"])
    real_stat = vault.stat

    async def stat(path: str | bytes) -> Stat:
        name = os.fsencode(path).rsplit(b"/", 1)[-1]
        if name.startswith(PREFIX):
            which = name[len(PREFIX):].decode()
            if which == "KeyError":
                raise KeyError("a bug somewhere below the handler")
            raise getattr(errors, which)("injected by the test")
        return await real_stat(path)

    vault.stat = stat  # type: ignore[method-assign]
    try:
        await Session(vault, MountOptions(cache_dir=Path(cache))).serve(Path(mountpoint))
    finally:
        await vault.aclose()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
