"""`sigmavault mount` of a dispersed vault takes the unlock agent's key like every command (issue 12),
also for a background mount started on a terminal, which used to ask for the passphrase anyway."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clitools import Cli, drive_tty, env_for


def flags(places: list[Path]) -> list[str]:
    return [a for p in places for a in ("--vault", str(p))]


def wait_unmounted(mp: Path) -> bool:
    deadline = time.monotonic() + 60
    while os.path.ismount(mp) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not os.path.ismount(mp)


def test_a_background_mount_on_a_terminal_takes_the_agents_key(tmp_path: Path) -> None:
    if not (os.path.exists("/dev/fuse") and shutil.which("fusermount3")):
        pytest.skip("no FUSE here")
    places = [tmp_path / f"place{i}" for i in range(3)]
    given, reordered = flags(places), flags([places[2], places[0], places[1]])
    cli = Cli(tmp_path / "home", None)
    cli.ok(*given, "create", "--kdf", "minimum", "--needed", "2")
    cli.ok(*given, "mkdir", "/inside")
    mp, pid_file = tmp_path / "mnt", tmp_path / "mount.pid"
    mp.mkdir()
    env = {**env_for(cli.home, None), "TERM": "dumb"}
    base = [sys.executable, "-m", "sigmavault", *reordered]
    try:
        cli.ok(*given, "unlock", "--for", "10m")
        code, transcript, prompts = drive_tty([*base, "--write-quorum", "3", "mount", str(mp), "--background",
                                               "--pid-file", str(pid_file)], env)
        assert code == 0 and prompts == [], transcript  # was: "Passphrase:" although the agent held the key
        assert os.path.ismount(mp) and sorted(os.listdir(mp)) == ["inside"]
        argv = Path(f"/proc/{int(pid_file.read_text().split()[0])}/cmdline").read_bytes().split(b"\0")
        assert [argv[i + 1] for i, a in enumerate(argv) if a == b"--vault"] == [str(p).encode() for p in
                                                                                reordered[1::2]]
        assert argv[argv.index(b"--write-quorum") + 1] == b"3"  # the child keeps the global options
        (mp / "note.txt").write_text("through the dispersed mount\n")
    finally:
        cli("umount", str(mp))
        unmounted = wait_unmounted(mp)
        if not unmounted:
            subprocess.run(["fusermount3", "-u", "-z", str(mp)], capture_output=True, check=False)
        cli("lock")
    assert unmounted
    assert cli.ok(*given, "cat", "/note.txt").out == "through the dispersed mount\n"
