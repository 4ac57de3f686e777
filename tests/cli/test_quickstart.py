"""``scripts/quickstart`` on a real terminal (a pty): the passphrase is asked exactly twice (new + repeat),
the recovery code waits for Enter, and the summary is short and says where the vault and its state live."""

from __future__ import annotations

import os
import time
from pathlib import Path

from clitools import PASSPHRASE, drive_tty

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_asks_twice_and_summarises(tmp_path: Path) -> None:
    src = tmp_path / "Documents"
    (src / "sub").mkdir(parents=True)
    for i in range(40):
        (src / "sub" / f"note-{i}.txt").write_text(f"note {i}\n")
    (src / "readme.txt").write_text("hello\n")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "TERM": "dumb", "PYTHONPATH": str(ROOT),
           "SIGMAVAULT_HOME": str(tmp_path / "svhome"), "SIGMAVAULT_QUICKSTART_SKIP_BOOTSTRAP": "1"}
    code, transcript, prompts = drive_tty([str(ROOT / "scripts" / "quickstart"), str(src)], env)
    assert code == 0, transcript
    asked = [p for p in prompts if "assphrase" in p or p == "Repeat:"]
    assert asked == ["passphrase:", "Repeat:"], (prompts, transcript)  # was six times
    assert prompts.count("saved the recovery code:") == 1
    assert "recovery code" in transcript and "now pins" not in transcript
    assert "The vault lives in:" in transcript and str(tmp_path / "svhome" / "data" / "default") in transcript
    assert "This device's state for it:" in transcript and str(tmp_path / "svhome" / "state") in transcript
    assert "note-39.txt" not in transcript  # no full listing: a summary
    assert len(transcript.splitlines()) < 60, transcript
    # the agent forgot the key when the script ended: nothing is left unlocked
    for _ in range(50):
        if not (tmp_path / "svhome" / "run" / "agent.sock").exists():
            break
        time.sleep(0.1)
    assert not (tmp_path / "svhome" / "run" / "agent.sock").exists()
    print(transcript)


def _cli_env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "TERM": "dumb", "PYTHONPATH": str(ROOT),
            "SIGMAVAULT_HOME": str(tmp_path / "svhome")}


def test_a_mistyped_passphrase_is_asked_again_three_times_in_all(tmp_path: Path) -> None:
    import sys

    vault = str(tmp_path / "v")
    base = [sys.executable, "-m", "sigmavault", "--vault", vault]
    env = _cli_env(tmp_path)
    code, transcript, prompts = drive_tty([*base, "create", "--kdf", "minimum"], env,
                                       answers=[b"one", b"typo", PASSPHRASE, PASSPHRASE])
    assert code == 0, transcript
    assert prompts.count("passphrase:") == 2 and "differ; try again" in transcript  # was: exit 2 at once
    code, transcript, prompts = drive_tty([*base, "ls"], env, answers=[b"wrong", PASSPHRASE])
    assert code == 0 and "wrong passphrase; try again" in transcript, transcript  # was: exit 3 at once
    code, transcript, prompts = drive_tty([*base, "ls"], env, answers=[b"wrong"] * 3)
    assert code == 3 and len(prompts) == 3, (prompts, transcript)


def test_a_background_mount_asks_again_for_a_mistyped_passphrase(tmp_path: Path) -> None:
    """``mount --background`` checks a typed passphrase before it detaches: a typo is asked again on
    the terminal (it used to be sent to the child, which failed into its log file)."""
    import shutil
    import subprocess
    import sys

    import pytest

    if not (os.path.exists("/dev/fuse") and shutil.which("fusermount3")):
        pytest.skip("no FUSE here")
    vault, mp = str(tmp_path / "v"), tmp_path / "mnt"
    mp.mkdir()
    base = [sys.executable, "-m", "sigmavault", "--vault", vault, "--no-agent"]
    env = _cli_env(tmp_path)
    code, transcript, _ = drive_tty([*base, "create", "--kdf", "minimum"], env)
    assert code == 0, transcript
    try:
        code, transcript, prompts = drive_tty([*base, "mount", str(mp), "--background"], env,
                                              answers=[b"typo", PASSPHRASE])
        assert code == 0, transcript
        assert "wrong passphrase; try again" in transcript and len(prompts) == 2, transcript
        assert os.path.ismount(mp)
        code, transcript, prompts = drive_tty([*base, "umount", str(mp)], env)
        assert code == 0 and not prompts, transcript
        assert not os.path.ismount(mp)
        code, transcript, prompts = drive_tty([*base, "mount", str(mp), "--background"], env, answers=[b"typo"] * 3)
        assert code == 3 and len(prompts) == 3 and not os.path.ismount(mp), transcript
    finally:
        if os.path.ismount(mp):
            subprocess.run(["fusermount3", "-u", "-z", str(mp)], capture_output=True)
