"""The unlock agent: unlock/lock, the private socket, the peer uid check and expiry."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from clitools import Cli


def sock_of(home: Path) -> Path:
    return home / "run" / "agent.sock"


@pytest.fixture()
def cli(tmp_path: Path) -> Iterator[Cli]:
    c = Cli(tmp_path / "home", tmp_path / "v")
    c.ok("create", "--kdf", "minimum")
    c.ok("mkdir", "/inside")
    yield c
    c("lock")  # never leave an agent behind


def wait_gone(path: Path, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not path.exists():
            return True
        time.sleep(0.1)
    return False


def test_unlock_then_commands_need_no_passphrase_until_it_expires(cli: Cli) -> None:
    assert cli("ls", passphrase=None).code == 3
    # Unlocked for long enough that a busy machine cannot run the time out between two commands
    started = cli.ok("--json", "unlock", "--for", "10m").json()
    sock = sock_of(cli.home)
    assert started["seconds"] == 600 and started["socket"] == str(sock)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600 and stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
    assert cli.ok("ls", passphrase=None).out == "inside/\n"
    assert cli.ok("mkdir", "/more", passphrase=None).code == 0
    # Expiry: a new unlock with a short time replaces the agent; once it is gone, commands need a passphrase
    short = cli.ok("--json", "unlock", "--for", "1s").json()
    assert short["seconds"] == 1
    assert wait_gone(sock, 60), "the agent did not exit when its time was up"
    with pytest.raises(ProcessLookupError):
        for _ in range(600):
            os.kill(short["agent_pid"], 0)
            time.sleep(0.1)
    assert cli("ls", passphrase=None).code == 3


def test_lock_forgets(cli: Cli) -> None:
    cli.ok("unlock", "--for", "10m")
    assert cli.ok("ls", passphrase=None).code == 0
    assert cli.ok("--json", "lock").json() == {"agent_was_running": True, "forgot": 1}
    assert cli("ls", passphrase=None).code == 3
    assert cli.ok("--json", "lock").json()["agent_was_running"] is False
    assert not sock_of(cli.home).exists()


def test_the_agent_key_is_checked_against_the_keystore(cli: Cli, tmp_path: Path) -> None:
    cli.ok("unlock", "--for", "10m")
    ks = Path(str(cli.vault)) / "k" / "0000000000000001"
    data = ks.read_bytes()
    os.chmod(ks, 0o644)
    ks.write_bytes(data.replace(b'"mac":"', b'"mac":"A', 1)[: len(data)])  # a damaged keystore
    r = cli("ls", passphrase=None)
    assert r.code in (3, 6)  # the agent's key does not open it; no credential to fall back on
    ks.write_bytes(data)
    assert cli.ok("ls", passphrase=None).code == 0
    (tmp_path / "np").write_text("changed\n")
    cli.ok("key", "passwd", "--new-passphrase-file", str(tmp_path / "np"))
    assert cli.ok("ls", passphrase=None).code == 0  # same KSK: the agent still serves the new keystore


def test_other_users_get_no_answer(cli: Cli) -> None:
    cli.ok("unlock", "--for", "1m")
    sock = sock_of(cli.home)
    if os.getuid() != 0:
        pytest.skip("needs root to act as another user")
    # open the door wide on purpose: only the SO_PEERCRED check is left to refuse a stranger
    os.chmod(sock.parent, 0o755)
    os.chmod(sock, 0o666)
    for parent in sock.parents:
        if parent == Path("/"):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o005)
    probe = ("import socket,sys,time\ns=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); time.sleep(0.3)\n"
             "try:\n s.sendall(b'{\"op\":\"ping\"}\\n'); print(repr(s.recv(100)))\n"
             "except OSError: print(repr(b''))")
    r = subprocess.run(["python3", "-c", probe, str(sock)], user=65534, group=65534, extra_groups=[],
                       capture_output=True, text=True,
                       timeout=20, cwd="/")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "b''"  # connection closed without a word
    mine = subprocess.run(["python3", "-c", probe, str(sock)], capture_output=True, text=True, timeout=20)
    assert '"ok": true' in mine.stdout


def test_a_dispersed_vault_unlocks_whatever_order_its_places_are_named_in(tmp_path: Path) -> None:
    places = [str(tmp_path / f"place{i}") for i in range(3)]
    cli = Cli(tmp_path / "home", None)
    given = [a for p in places for a in ("--vault", p)]
    reordered = [a for p in (places[2], places[0], places[1]) for a in ("--vault", p)]
    try:
        cli.ok(*given, "create", "--kdf", "minimum")
        cli.ok(*given, "mkdir", "/inside")
        assert cli(*given, "ls", passphrase=None).code == 3
        fp = cli.ok(*given, "--json", "unlock", "--for", "10m").json()["fingerprint"]
        assert cli.ok(*reordered, "ls", passphrase=None).out == "inside/\n"
        assert cli.ok(*reordered, "mkdir", "/more", passphrase=None).code == 0
        # one place lost: the two left still find the pin by the vault's id, and the agent's key opens it
        gone = [a for p in (places[1], places[2]) for a in ("--vault", p)]
        assert cli.ok(*gone, "ls", passphrase=None).out == "inside/\nmore/\n"
        assert cli.ok(*reordered, "--json", "info").json()["fingerprint"] == fp
        # places that hold no vault, with the agent running: the clear error of an open without it
        empty = [a for i in range(3) for a in ("--vault", str(tmp_path / f"empty{i}"))]
        for i in range(3):
            (tmp_path / f"empty{i}").mkdir()
        without = cli(*empty, "--no-agent", "ls")
        with_agent = cli(*empty, "ls")
        assert with_agent.code == without.code != 0
        assert with_agent.one_line_error() == without.one_line_error()
        assert cli.ok("--json", "lock").json() == {"agent_was_running": True, "forgot": 1}
        assert cli(*reordered, "ls", passphrase=None).code == 3
    finally:
        cli("lock")


def agent_get(home: Path, fingerprint: str) -> dict[str, object]:
    """Ask the agent (as its own user) what it holds for a vault."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(sock_of(home)))
        s.sendall(json.dumps({"op": "get", "fp": fingerprint}).encode() + b"\n")
        return json.loads(s.makefile("rb").readline())


def test_a_rekey_hands_the_agent_the_new_key_and_it_forgets_the_old(cli: Cli) -> None:
    fp = cli.ok("--json", "unlock", "--for", "10m").json()["fingerprint"]
    before = agent_get(cli.home, fp)
    cli.ok("rekey")  # asks for the passphrase, never the agent's key
    after = agent_get(cli.home, fp)
    assert after["ok"] and after["ksk"] != before["ksk"]  # the old KSK is gone from the agent
    assert 0 < int(after["left"]) <= int(before["left"])  # no longer than the old key had left
    assert cli.ok("ls", passphrase=None).out == "inside/\n"  # the new key opens the new keystore
    assert cli.ok("mkdir", "/after", passphrase=None).code == 0


def test_a_rekey_without_an_agent_starts_none(cli: Cli) -> None:
    cli.ok("rekey")
    assert not sock_of(cli.home).exists()
    assert cli("ls", passphrase=None).code == 3
