"""Run the real ``sigmavault`` command in a subprocess with its own SIGMAVAULT_HOME (minimum KDF vaults)."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PASS = "correct horse battery staple"
PASSPHRASE = b"quickstart passphrase"  # what drive_tty types unless told otherwise


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]

    def one_line_error(self) -> str:
        """The stderr of a failed command: exactly one line, ``sigmavault: error: …``, no traceback."""
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        assert lines[0].startswith("sigmavault: error: "), self.err
        assert "Traceback" not in self.err
        return lines[0]


def env_for(home: Path, passphrase: str | None = PASS, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMAVAULT_")}
    env["SIGMAVAULT_HOME"] = str(home)
    if passphrase is not None:
        env["SIGMAVAULT_PASSPHRASE"] = passphrase
    env.update(extra)
    return env


class Cli:
    """``cli("ls", "-l")`` runs ``sigmavault --vault VAULT ls -l`` for one home directory."""

    def __init__(self, home: Path, vault: Path | str | None) -> None:
        self.home = home
        self.vault = vault
        home.mkdir(parents=True, exist_ok=True)

    def __call__(self, *args: str, passphrase: str | None = PASS, timeout: float = 120, cwd: Path | None = None,
                 **extra: str) -> Run:
        cmd = [sys.executable, "-m", "sigmavault"]
        if self.vault is not None:
            cmd += ["--vault", str(self.vault)]
        p = subprocess.run([*cmd, *args], env=env_for(self.home, passphrase, **extra), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, errors="surrogateescape", timeout=timeout, cwd=cwd)
        return Run(p.returncode, p.stdout, p.stderr)

    def ok(self, *args: str, **kw: Any) -> Run:
        r = self(*args, **kw)
        assert r.code == 0, (args, r.code, r.err)
        return r

    def popen(self, *args: str, passphrase: str | None = PASS) -> subprocess.Popen[bytes]:
        """The command as a running process, started as a terminal would start it: with Ctrl-C's
        default disposition, whatever this test process inherited (a suite started in the background
        by a non-interactive shell ignores SIGINT, and so would every child, which then never stops)."""
        cmd = [sys.executable, "-m", "sigmavault", "--vault", str(self.vault), *args]
        return subprocess.Popen(cmd, env=env_for(self.home, passphrase), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_default_sigint)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def make_tree(root: Path) -> Path:
    """A small tree with odd sizes, modes, times, a nested folder, a symlink and a non-UTF-8 name."""
    (root / "docs" / "deep" / "er").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("hello\n")
    (root / "docs" / "deep" / "big.bin").write_bytes(os.urandom(1_500_000))
    (root / "docs" / "deep" / "er" / "empty").write_bytes(b"")
    (root / "docs" / "small").write_bytes(os.urandom(1025))
    os.chmod(root / "docs" / "small", 0o600)
    os.utime(root / "docs" / "a.txt", ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    os.symlink("../a.txt", root / "docs" / "deep" / "link")
    (root / "docs" / os.fsdecode(b"caf\xe9")).write_bytes(b"latin-1 name")
    return root / "docs"


def object_files(vault: Path) -> list[Path]:
    return sorted(p for p in (vault / "o").rglob("*") if p.is_file() and not p.name.startswith("."))


def drive_tty(argv: list[str], env: dict[str, str], timeout: float = 240,
           answers: list[bytes] | None = None) -> tuple[int, str, list[str]]:
    """Run ``argv`` on a pty, answering prompts (passphrase prompts from ``answers`` in turn, else
    PASSPHRASE); returns (exit status, transcript, prompts answered)."""
    queue = list(answers or [])
    pid, fd = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty
        os.chdir(Path(__file__).resolve().parents[2])
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
