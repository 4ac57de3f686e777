"""``mount --guard freeze`` on a real FUSE mount: rewriting many existing files with random bytes
freezes the mount read-only (EROFS, the reason in its log), ``sigmavault guard unfreeze`` resumes
it, and what was written before the freeze is committed (nothing is lost)."""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mounttools import PASS, ROOT, Mounts, needs_fuse, put_files

import sigmavault

pytestmark = needs_fuse


def wait_for(log: Path, text: str, start: int) -> None:
    """Until the mount's log (after byte ``start``) says ``text`` (the order the test needs)."""
    deadline = time.monotonic() + 60
    while text not in log.read_text()[start:]:
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def test_a_burst_of_opaque_rewrites_freezes_the_mount_until_unfrozen(mounts: Mounts, tmp_path: Path) -> None:
    put_files(mounts.vault, 25)
    m = mounts.mount("mnt", "--guard", "freeze")
    docs = m.mountpoint / "docs"
    (docs / "f24.txt").write_text("a benign edit\n" * 100)  # plain content: no event
    for i in range(20):  # ransomware: every existing file rewritten with random bytes
        (docs / f"f{i:02}.txt").write_bytes(os.urandom(6000))
    wait_for(m.log, "froze the mount read-only", 0)
    assert "20 existing files rewritten to near-random content" in m.log.read_text()
    with pytest.raises(OSError) as e:
        (docs / "f21.txt").write_bytes(b"more")
    assert e.value.errno == errno.EROFS
    with pytest.raises(OSError) as e:
        (docs / "f22.txt").unlink()
    assert e.value.errno == errno.EROFS
    assert (docs / "f22.txt").read_text().startswith("plain text 22")  # reads go on
    mark = len(m.log.read_text())
    r = subprocess.run([sys.executable, "-m", "sigmavault", "guard", "unfreeze", str(m.mountpoint)],
                       env=m.env(), capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    wait_for(m.log, "unfrozen", mark)
    (docs / "f21.txt").write_text("written after the unfreeze\n")
    assert m.stop() == 0

    async def check() -> None:
        v = await sigmavault.open(str(mounts.vault), passphrase=PASS)
        assert await v.read_bytes("/docs/f21.txt") == b"written after the unfreeze\n"
        assert len(await v.read_bytes("/docs/f00.txt")) == 6000  # the rewrites before the freeze are kept too
        suspect = [e for e in await v.log() if e.suspect]  # the commit after the trip carries the mark
        assert len(suspect) == 1 and "mount: 20 existing files rewritten" in suspect[0].reasons[0]
        await v.aclose()

    asyncio.run(check())


def test_warn_only_logs_and_unfreeze_without_a_mount_is_not_found(mounts: Mounts, tmp_path: Path) -> None:
    put_files(mounts.vault, 20)
    m = mounts.mount("mnt", "--guard", "warn", "--guard-reads", "15")
    for i in range(15):  # a full read of the tree: logged as exfiltration-like
        assert (m.mountpoint / "docs" / f"f{i:02}.txt").read_bytes().startswith(b"plain text")
    wait_for(m.log, "guard: suspicious reads: 15 distinct files", 0)
    for i in range(20):
        (m.mountpoint / "docs" / f"f{i:02}.txt").write_bytes(os.urandom(6000))
    wait_for(m.log, "guard: suspicious change", 0)
    (m.mountpoint / "docs" / "after.txt").write_text("still writable\n")
    assert m.stop() == 0
    r = subprocess.run([sys.executable, "-m", "sigmavault", "guard", "unfreeze", str(m.mountpoint)],
                       env=m.env(), capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 4 and "no running mount" in r.stderr
