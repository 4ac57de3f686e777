"""The mount guard's read signal (exfiltration) on a real FUSE mount: reads of many distinct files
are logged and counted only once they are a large share (half) of the vault's files, never freeze
the mount and never mark a commit; and the signal's window and counting rules (a controlled clock)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from mounttools import PASS, ROOT, Mount, Mounts, needs_fuse, put_files

import sigmavault
from sigmavault.mount.options import MountOptions
from sigmavault.mount.watch import Watch


def guard_stats(m: Mount) -> dict[str, Any]:
    r = subprocess.run([sys.executable, "-m", "sigmavault", "--json", "stats", str(m.mountpoint)], env=m.env(),
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)["guard"]
    return doc


@needs_fuse
def test_reading_half_the_vault_is_logged_and_counted_but_never_frozen(mounts: Mounts) -> None:
    put_files(mounts.vault, 40)
    m = mounts.mount("mnt", "--guard", "freeze", "--guard-reads", "10")
    docs = m.mountpoint / "docs"
    for _ in range(2):  # the same 19 files twice: 19 distinct files, under half of 40
        for i in range(19):
            assert (docs / f"f{i:02}.txt").read_bytes().startswith(b"plain text")
    assert [p.name for p in sorted(docs.iterdir())][:2] == ["f00.txt", "f01.txt"]  # listing is not reading
    assert guard_stats(m) == {"mode": "freeze", "frozen": False, "trips": 0, "read_warnings": 0, "reads_counted": 19}
    assert "suspicious" not in m.log.read_text()
    (docs / "f19.txt").read_bytes()  # the 20th distinct file: half of the vault
    assert guard_stats(m)["read_warnings"] == 1  # judged while the open was answered: no wait needed
    assert "guard: suspicious reads: 20 distinct files of 40 (50%)" in m.log.read_text()
    (docs / "written.txt").write_text("reads never freeze the mount\n")
    assert guard_stats(m) == {"mode": "freeze", "frozen": False, "trips": 0, "read_warnings": 1, "reads_counted": 0}
    assert m.stop() == 0

    async def check() -> None:
        v = await sigmavault.open(str(mounts.vault), passphrase=PASS)
        assert await v.read_bytes("/docs/written.txt") == b"reads never freeze the mount\n"
        assert not [e for e in await v.log() if e.suspect]  # reading is not a change: no mark
        await v.aclose()

    asyncio.run(check())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_reads_count_distinct_files_within_the_window_and_start_over_after_a_warning(tmp_path: Path) -> None:
    clock = Clock()
    w = Watch(MountOptions(cache_dir=tmp_path, guard="warn", guard_reads=5), clock)
    assert not any(w.read(i) for i in range(4))  # under the minimum: the vault's files are not even counted
    assert w.read(4)  # 5 distinct files: the caller counts the vault's files
    w.judge_reads(100)  # 5 of 100: not half
    assert w.read_warnings == 0
    assert not any(w.read(i) for i in range(5, 49))  # 49 of 100 by the count just taken: no recount asked
    assert w.read(49)  # 50 of 100 would be half: count again
    w.judge_reads(120)  # the vault grew meanwhile: 50 of 120 is not half
    assert w.read_warnings == 0
    clock.now += w.read_window + 1  # the earlier reads (and the count) are out of the window
    assert not any(w.read(i) for i in range(1000, 1004))
    assert w.read(1004)  # 5 in the window, and the old count is stale
    w.judge_reads(8)  # 5 of 8
    assert w.read_warnings == 1
    assert not w.read(1005)  # the count started over after the warning
    assert Watch(MountOptions(cache_dir=tmp_path, guard_reads=1), clock).read(1) is False  # no --guard: nothing
