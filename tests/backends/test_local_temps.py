"""Leftover temporaries of the local backend: who may remove them and when; a real ``kill -9``
during an import leaves some, ``verify`` reports them and the next write removes them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sigmavault.backends import temps
from sigmavault.backends.local import LocalBackend

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from clitools import Cli

COMMIT = "c/" + "0" * 15 + "1"


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def name_for(pid: int, boot: str | None = None, ns: str | None = None) -> str:
    mine = temps.new_name()[len(temps.PREFIX):].rsplit("-", 4)
    return f"{temps.PREFIX}{mine[0]}-{boot or mine[1]}-{ns or mine[2]}-{pid}-{'ab' * 8}"


def aged(path: Path, hours: float) -> Path:
    path.write_bytes(b"partial")
    t = time.time() - hours * 3600
    os.utime(path, (t, t))
    return path


async def test_the_next_write_removes_only_what_no_live_writer_can_still_link(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        dead = aged(folder / name_for(dead_pid()), 0)
        live = aged(folder / name_for(sleeper.pid), 30)  # running: kept however old
        other_boot = aged(folder / name_for(dead_pid(), boot="f" * 32), 1)  # maybe another machine: kept
        other_ns = aged(folder / name_for(dead_pid(), ns="12345"), 1)  # another container: kept
        stale_other = aged(folder / name_for(dead_pid(), boot="f" * 32), 25)  # past the grace period
        unlabelled = aged(folder / (temps.PREFIX + "0123456789abcdef" * 2), 2)
        unlabelled_old = aged(folder / (temps.PREFIX + "fedcba9876543210" * 2), 30)
        b = LocalBackend(tmp_path)
        assert {p for p, _ in await b.leftover_temporaries()} == {
            f"c/{p.name}" for p in (dead, other_boot, other_ns, stale_other, unlabelled, unlabelled_old)}
        assert await b.put_if_absent(COMMIT, b"x")
        left = {p.name for p in folder.iterdir() if p.name.startswith(temps.PREFIX)}
        assert left == {live.name, other_boot.name, other_ns.name, unlabelled.name}
    finally:
        sleeper.kill()
        sleeper.wait()


def test_kill_9_during_an_import_leaves_temporaries_that_verify_reports_and_the_next_write_removes(
        tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    cli = Cli(tmp_path / "home", vault)
    cli.ok("create", "--kdf", "minimum", "--chunk-size", "1")
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        for _ in range(64):
            f.write(os.urandom(1 << 20))
    left: list[Path] = []
    for _attempt in range(5):
        proc = cli.popen("import", str(src), "--to", f"/try{_attempt}")
        try:
            while proc.poll() is None and not left:
                time.sleep(0.01)
                os.kill(proc.pid, signal.SIGSTOP)  # freeze it, look for a write in flight, kill -9 then
                left = [p for p in vault.rglob(temps.PREFIX + "*")]
                os.kill(proc.pid, signal.SIGKILL if left else signal.SIGCONT)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        if left:
            break
    assert left, "no write was in flight whenever the import was stopped"
    assert proc.returncode == -signal.SIGKILL
    report = cli.ok("--json", "verify").json()
    assert report["ok"] is True
    noted = [n for n in report["notes"] if n.startswith("temporary file ")]
    assert {n.split()[2] for n in noted} == {str(p.relative_to(vault)) for p in left}
    assert all("gone" in n for n in noted)
    cli.ok("import", str(src), "--to", "/again")  # writes into every folder the killed import used
    assert not [p for p in vault.rglob(temps.PREFIX + "*")]
    assert not [n for n in cli.ok("--json", "verify").json()["notes"] if n.startswith("temporary file ")]
