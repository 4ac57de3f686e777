"""One mount's life: clean up a stale mount point, serve FUSE requests, commit on a timer, unmount cleanly.

:func:`serve` runs in the process's event loop (pyfuse3 keeps global state: one mount per
process; it switches pyfuse3 to asyncio right before mounting, so importing this module changes
nothing). It owns a task group with the FUSE main loop, the write-back flusher, readahead fetches
and the timer that commits pending edits every ``commit_interval`` seconds of activity and adopts
other clients' commits every ``refresh_interval`` seconds (also on ``open``, at most once a
second). SIGTERM and SIGINT end the main loop; then the file system is unmounted, every dirty
file is flushed and the vault committed, whatever stopped the loop. A mount point left dead by a
killed process (``ENOTCONN``) is detached with ``fusermount3 -u -z`` before mounting again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import pyfuse3
import pyfuse3.asyncio

from ..engine.errors import UsageError, VaultError
from ..engine.vault import Vault
from .files import FileContent
from .inodes import InodeTable
from .ops import Operations
from .options import MountOptions

log = logging.getLogger(__name__)


def is_dead_mount(mountpoint: Path) -> bool:
    try:
        os.stat(mountpoint)
    except OSError as exc:
        return exc.errno in (errno.ENOTCONN, errno.ECONNABORTED)
    return False


def fuse_mounted(mountpoint: Path) -> bool:
    """True when ``mountpoint`` is a FUSE mount point (alive or dead)."""
    target = os.path.realpath(mountpoint)
    try:
        with open("/proc/self/mounts", encoding="utf-8") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[1].replace("\\040", " ") == target and fields[2].startswith("fuse"):
                    return True
    except OSError:
        pass
    return False


def detach(mountpoint: Path, *, lazy: bool = True) -> bool:
    """Unmount with fusermount3 (``-z``: even if busy). Returns True on success."""
    args = ["fusermount3", "-u", *(["-z"] if lazy else []), str(mountpoint)]
    r = subprocess.run(args, capture_output=True, text=True, check=False)
    return r.returncode == 0


def prepare(mountpoint: Path) -> None:
    """Check the mount point; clear a dead mount left by a crashed process. Raises UsageError."""
    if is_dead_mount(mountpoint):
        log.warning("%s is a dead mount (a crashed sigmavault?): detaching it", mountpoint)
        if not detach(mountpoint):
            raise UsageError(f"{mountpoint} is a dead mount and fusermount3 -u -z failed")
    if fuse_mounted(mountpoint):
        raise UsageError(f"{mountpoint} is already mounted")
    if not mountpoint.is_dir():
        raise UsageError(f"{mountpoint} is not a directory")


def kernel_readahead(target: str, kib: int) -> None:
    """Let the kernel read ahead ``kib`` KiB on the mount at ``target`` (a resolved path; the default,
    128 KiB, caps sequential reads).

    Runs in a thread once the mount serves requests: the kernel sets the readahead from the FUSE
    INIT reply, so it must be raised after that (the stat below waits for it, answered by our own
    loop). The device is found through /proc/self/mountinfo. Best effort: needs root (or a
    writable /sys); otherwise the default stays.
    """
    try:
        os.stat(target)
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 4 and fields[4].encode().decode("unicode_escape") == target:
                    Path(f"/sys/class/bdi/{fields[2]}/read_ahead_kb").write_text(f"{kib}\n")
    except OSError as exc:
        log.debug("could not raise the kernel readahead: %s", exc)


def fs_source(url: str) -> str:
    """The mount's source as /proc/mounts and ``df`` show it: ``sigmavault:<vault>`` (no query options,
    a local path made absolute; commas and backslashes escaped for FUSE's option parser)."""
    where = url.split("?", 1)[0]
    if "://" not in where:
        where = os.path.abspath(os.path.expanduser(where))
    return "sigmavault:" + where.replace("\\", "\\\\").replace(",", "\\,")


class Session:
    """The mount's timers and its clean shutdown."""

    def __init__(self, vault: Vault, opts: MountOptions) -> None:
        self.vault = vault
        vault.refresh_interval = None  # the mount adopts commits itself, and then invalidates its views
        self.opts = opts
        self.inodes = InodeTable()
        self.ns_lock = asyncio.Lock()
        self.content = FileContent(vault, opts, self.inodes, self.ns_lock)
        self.ops = Operations(vault, opts, self.content, self.inodes, self.ns_lock, self.refresh_soon)
        self._last_commit = time.monotonic()
        self._last_refresh = time.monotonic()

    async def refresh_soon(self) -> None:
        if time.monotonic() - self._last_refresh >= 1.0:
            await self.refresh()

    async def refresh(self) -> None:
        """Adopt other clients' commits unless local data is still pending (merged at our commit),
        and take in the drops of write-only clients (a commit of its own when there are any)."""
        self._last_refresh = time.monotonic()
        if self.content.pending or self.content.busy or self.vault.pending:
            return
        async with self.ns_lock:
            before = self.vault.generation
            try:
                gen = await self.vault.refresh()
                gen = await self.vault.commit()  # write-only clients' drops waiting: taken in now
            except VaultError as exc:
                log.warning("refresh failed: %s", exc.message)
                return
            if gen != before:
                log.info("adopted generation %d", gen)
                self.content.invalidate()

    async def commit(self) -> None:
        self._last_commit = time.monotonic()
        await self.content.flush_all()
        if self.vault.pending:
            gen = await self.vault.commit(self.ops.watch.meta())
            self.ops.watch.recorded()
            log.info("committed generation %d", gen)

    async def timer(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            dirty = self.content.pending or self.vault.pending
            if dirty and now - self._last_commit >= self.opts.commit_interval:
                try:
                    await self.commit()
                except VaultError as exc:
                    log.error("commit failed (will retry): %s", exc.message)
            elif not dirty and now - self._last_refresh >= self.opts.refresh_interval:
                await self.refresh()

    async def serve(self, mountpoint: Path, *, ready: asyncio.Event | None = None) -> None:
        """Mount, serve until unmounted or signalled, then flush, commit and release the mount point.

        Raises UsageError (bad or busy mount point) and VaultError (the final commit failed:
        the vault stays at its previous commit).
        """
        fuse_opts = set(pyfuse3.default_options)
        fuse_opts |= {f"fsname={fs_source(self.vault.url)}", "subtype=sigmavault", "default_permissions"}
        if self.opts.read_only:
            fuse_opts.add("ro")
        if self.opts.allow_other:
            fuse_opts.add("allow_other")
        self.opts.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        prepare(mountpoint)
        target = os.path.realpath(mountpoint)  # before the mount: resolving it after would ask ourselves
        pyfuse3.asyncio.enable()  # pyfuse3's loop is process-global: switch it only when we serve
        pyfuse3.init(self.ops, str(mountpoint), fuse_opts)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, pyfuse3.terminate)
        loop.add_signal_handler(signal.SIGUSR1, self.ops.watch.unfreeze)  # `sigmavault guard unfreeze`
        closed = False
        try:
            async with asyncio.TaskGroup() as tg:
                self.content.start(tg.create_task)
                helpers = [tg.create_task(self.timer()), tg.create_task(self.content.flusher()),
                           tg.create_task(asyncio.to_thread(kernel_readahead, target, self.opts.kernel_readahead_kb))]
                if ready is not None:
                    ready.set()
                log.info("mounted %s on %s", self.vault.url, mountpoint)
                try:
                    await pyfuse3.main()
                finally:
                    for t in helpers:
                        t.cancel()
            pyfuse3.close(unmount=True)
            closed = True
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
                loop.remove_signal_handler(sig)
            if not closed:
                with contextlib.suppress(Exception):
                    pyfuse3.close(unmount=True)
            try:
                await self.commit()
            finally:
                self.content.close()
        log.info("unmounted %s; vault at generation %d", mountpoint, self.vault.generation)
