"""``scripts/quickstart`` on a real terminal (a pty): the passphrase is asked exactly twice (new + repeat),
the recovery code waits for Enter, and the summary is short and says where the vault and its state live."""

from __future__ import annotations

import os
import pty
import select
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PASSPHRASE = b"quickstart passphrase"


def _drive(argv: list[str], env: dict[str, str], timeout: float = 240,
           answers: list[bytes] | None = None) -> tuple[int, str, list[str]]:
    """Run ``argv`` on a pty, answering prompts (passphrase prompts from ``answers`` in turn, else
    PASSPHRASE); returns (exit status, transcript, prompts answered)."""
    queue = list(answers or [])
    pid, fd = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty
        os.chdir(ROOT)
        os.execve(argv[0], argv, env)
    out = b""
    seen = 0
    prompts: list[str] = []
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                break
            out += chunk
        tail = out[seen:]
        for marker, answer in ((b"passphrase: ", PASSPHRASE), (b"Repeat: ", PASSPHRASE), (b"Passphrase: ", PASSPHRASE),
                               (b"saved the recovery code: ", b"")):
            if marker.lower() in tail.lower():
                prompts.append(marker.decode().strip())
                if answer and queue:
                    answer = queue.pop(0)
                os.write(fd, answer + b"\n")
                seen = len(out)
                break
        done, code = os.waitpid(pid, os.WNOHANG)
        if done:
            status = code
    if status is None:
        _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace"), prompts


def test_quickstart_asks_twice_and_summarises(tmp_path: Path) -> None:
    src = tmp_path / "Documents"
    (src / "sub").mkdir(parents=True)
    for i in range(40):
        (src / "sub" / f"note-{i}.txt").write_text(f"note {i}\n")
    (src / "readme.txt").write_text("hello\n")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "TERM": "dumb", "PYTHONPATH": str(ROOT),
           "SIGMAVAULT_HOME": str(tmp_path / "svhome"), "SIGMAVAULT_QUICKSTART_SKIP_BOOTSTRAP": "1"}
    code, transcript, prompts = _drive([str(ROOT / "scripts" / "quickstart"), str(src)], env)
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
    code, transcript, prompts = _drive([*base, "create", "--kdf", "minimum"], env,
                                       answers=[b"one", b"typo", PASSPHRASE, PASSPHRASE])
    assert code == 0, transcript
    assert prompts.count("passphrase:") == 2 and "differ; try again" in transcript  # was: exit 2 at once
    code, transcript, prompts = _drive([*base, "ls"], env, answers=[b"wrong", PASSPHRASE])
    assert code == 0 and "wrong passphrase; try again" in transcript, transcript  # was: exit 3 at once
    code, transcript, prompts = _drive([*base, "ls"], env, answers=[b"wrong"] * 3)
    assert code == 3 and len(prompts) == 3, (prompts, transcript)
