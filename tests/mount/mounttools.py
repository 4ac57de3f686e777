"""Real FUSE mounts for tests: each in its own process (pyfuse3 allows one per process), always cleaned up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sigmavault

PASS = "mount test passphrase"
MIB = 1 << 20
ROOT = Path(__file__).resolve().parents[2]


def fuse_available() -> bool:
    if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
        return False
    try:
        import pyfuse3  # noqa: F401
    except ImportError:
        return False
    return True


needs_fuse = pytest.mark.skipif(not fuse_available(), reason="FUSE (/dev/fuse, fusermount3, pyfuse3) not available")


def make_vault(url: Path) -> None:
    async def go() -> None:
        v = await sigmavault.create(str(url), passphrase=PASS, kdf="minimum", chunk_size=MIB)
        await v.aclose()

    asyncio.run(go())


def put_files(vault: Path, n: int) -> None:
    """``/docs/f00.txt``... ``n`` plain-text files (``plain text I`` repeated), committed."""

    async def go() -> None:
        v = await sigmavault.open(str(vault), passphrase=PASS)
        for i in range(n):
            await v.put(f"/docs/f{i:02}.txt", (f"plain text {i}\n" * 400).encode())
        await v.commit()
        await v.aclose()

    asyncio.run(go())


def is_mounted(mp: Path) -> bool:
    target = os.path.realpath(mp)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == target for line in f)


def is_alive(mp: Path) -> bool:
    """Mounted and answering (a killed mount stays in the table but fails with ENOTCONN)."""
    if not is_mounted(mp):
        return False
    try:
        os.stat(mp)
    except OSError:
        return False
    return True


class Mount:
    """One ``sigmavault mount`` process serving ``mountpoint``."""

    def __init__(self, vault: Path, mountpoint: Path, home: Path, *extra: str) -> None:
        self.vault, self.mountpoint, self.home = vault, mountpoint, home
        self.log = home / f"mount-{mountpoint.name}.log"
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        return {**os.environ, "SIGMAVAULT_HOME": str(self.home), "SIGMAVAULT_PASSPHRASE": PASS}

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sigmavault.cli.mount", "--vault", str(self.vault), *args],
                              env=self.env(), capture_output=True, text=True, timeout=timeout, cwd=ROOT)

    def start(self) -> Mount:
        with contextlib.suppress(OSError):  # a dead mount left by a killed process: the new mount clears it
            self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sigmavault.cli.mount", "--vault", str(self.vault), "mount",
                 str(self.mountpoint), "--cache-dir", str(self.home / f"cache-{self.mountpoint.name}"), *self.extra],
                env=self.env(), stdout=log, stderr=log, cwd=ROOT)
        deadline = time.monotonic() + 60
        while not is_alive(self.mountpoint):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mount did not come up:\n{self.log.read_text()}")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 120) -> int:
        """SIGTERM (flush, commit, unmount) and wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        finally:
            self.cleanup()
        return rc

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        if is_mounted(self.mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], capture_output=True, check=False)

    def rss_peak_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0


class Mounts:
    """Fixture value: start mounts; every one is stopped and unmounted at teardown, even on failure."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.vault = tmp / "vault"
        self.all: list[Mount] = []
        make_vault(self.vault)

    def mount(self, name: str = "mnt", *extra: str, home: str = "home") -> Mount:
        m = Mount(self.vault, self.tmp / name, self.tmp / home, *extra)
        self.all.append(m)
        return m.start()

    def close(self) -> None:
        for m in self.all:
            with contextlib.suppress(Exception):  # keep cleaning the others
                m.cleanup()
