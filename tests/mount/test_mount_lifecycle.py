"""Crash and sharing: kill -9 during writes then remount; two mounts of one vault see each other's commits."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from mounttools import MIB, Mounts, is_mounted, needs_fuse

pytestmark = needs_fuse


def test_kill9_during_writes_then_remount(mounts: Mounts, tmp_path: Path) -> None:
    m = mounts.mount("mnt", "--commit-interval", "3600")
    committed = os.urandom(3 * MIB + 17)
    (m.mountpoint / "keep").mkdir()
    with open(m.mountpoint / "keep" / "safe.bin", "wb") as f:
        f.write(committed)
        f.flush()
        os.fsync(f.fileno())  # flush + commit
    writer = subprocess.Popen([sys.executable, "-c", (
        "import os,sys\n"
        "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)\n"
        "while True:\n"
        "    os.write(fd, os.urandom(1 << 20))\n"), str(m.mountpoint / "busy.bin")],
        stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        m.kill9()
    finally:
        writer.kill()
        writer.wait(30)
    assert is_mounted(m.mountpoint)  # dead, still in the mount table: the next mount clears it
    m2 = mounts.mount("mnt")
    assert (m2.mountpoint / "keep" / "safe.bin").read_bytes() == committed
    assert not (m2.mountpoint / "busy.bin").exists()  # never committed
    (m2.mountpoint / "after.txt").write_text("still writable")
    assert m2.stop() == 0


def test_two_mounts_see_each_others_commits(mounts: Mounts) -> None:
    fast = ("--commit-interval", "0.3", "--refresh-interval", "0.3")
    a = mounts.mount("mnt_a", *fast, home="home_a")
    b = mounts.mount("mnt_b", *fast, home="home_b")
    data = os.urandom(2 * MIB + 5)
    (a.mountpoint / "from_a.bin").write_bytes(data)
    (b.mountpoint / "dir_b").mkdir()
    (b.mountpoint / "dir_b" / "from_b.txt").write_text("hello from b")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        got = b.mountpoint / "from_a.bin"  # a's timer may commit the file half written: wait for all of it
        if got.exists() and got.stat().st_size == len(data) and (a.mountpoint / "dir_b" / "from_b.txt").exists():
            break
        time.sleep(0.2)
    assert (b.mountpoint / "from_a.bin").read_bytes() == data
    assert (a.mountpoint / "dir_b" / "from_b.txt").read_text() == "hello from b"
    assert a.stop() == 0 and b.stop() == 0
