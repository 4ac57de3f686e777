"""Secrets stay out of children; every key-holding process refuses core dumps (issue 10 item 13).

Checked on the real processes: the unlock agent and a ``mount --background`` child started by the
CLI with ``SIGMAVAULT_PASSPHRASE`` set (``/proc/<pid>/environ`` and ``/proc/<pid>/limits``), the
mixer's worker processes, and the hardening itself (``PR_GET_DUMPABLE`` in a fresh interpreter).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clitools import Cli, env_for

from sigmavault.actors.mixpool import Params, Pool

SECRET = "passphrase-that-must-not-leak"


def environ(pid: int) -> bytes:
    return Path(f"/proc/{pid}/environ").read_bytes()


def core_limit(pid: int) -> str:
    line = next(ln for ln in Path(f"/proc/{pid}/limits").read_text().splitlines() if ln.startswith("Max core"))
    soft, hard = line.split()[4:6]
    return soft if soft == hard else f"{soft}/{hard}"  # both must be 0: the hard limit keeps it 0


def test_harden_makes_a_process_undumpable_without_cores() -> None:
    code = ("import ctypes, resource; from sigmavault.engine.keys import harden; harden.harden(); "
            "print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0), resource.getrlimit(resource.RLIMIT_CORE))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split(maxsplit=1) == ["0", "(0, 0)\n"]  # PR_GET_DUMPABLE = 3


def test_agent_environment_holds_no_passphrase(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", tmp_path / "v")
    cli.ok("create", "--kdf", "minimum", passphrase=SECRET)
    pid = cli.ok("--json", "unlock", "--for", "1m", passphrase=SECRET).json()["agent_pid"]
    try:
        assert b"SIGMAVAULT_PASSPHRASE" not in environ(pid) and SECRET.encode() not in environ(pid)  # was there
        assert core_limit(pid) == "0"
        assert cli.ok("ls", passphrase=None).code == 0  # and the agent still serves the key
    finally:
        cli.ok("lock", passphrase=None)


def test_mixer_workers_are_hardened() -> None:
    async def go() -> list[int]:
        pool = Pool(Params(os.urandom(32), 1, 2, 1 << 16), 2)
        try:
            await pool.start(os.urandom(64))
            pids = pool.pids
            assert pids and all(core_limit(p) == "0" for p in pids)  # pytest itself allows cores
            return pids
        finally:
            await pool.aclose()

    assert asyncio.run(go())


def test_background_mount_environment_holds_no_passphrase(tmp_path: Path) -> None:
    if not (os.path.exists("/dev/fuse") and shutil.which("fusermount3")):
        pytest.skip("no FUSE here")
    cli = Cli(tmp_path / "home", tmp_path / "v")
    cli.ok("create", "--kdf", "minimum", passphrase=SECRET)
    mp = tmp_path / "mnt"
    mp.mkdir()
    pid_file = tmp_path / "mount.pid"
    r = cli("mount", str(mp), "--background", "--pid-file", str(pid_file), passphrase=SECRET)
    assert r.code == 0, r.err
    try:
        pid = int(pid_file.read_text().split()[0])
        assert b"SIGMAVAULT_PASSPHRASE" not in environ(pid) and SECRET.encode() not in environ(pid)
        assert core_limit(pid) == "0"
    finally:
        subprocess.run([sys.executable, "-m", "sigmavault", "umount", str(mp)], env=env_for(tmp_path / "home", None),
                       capture_output=True, timeout=120)
        deadline = time.monotonic() + 30
        while os.path.ismount(mp) and time.monotonic() < deadline:
            time.sleep(0.1)
