"""forget, audit and log -v through the real command on local disk: usage errors change nothing,
--dry-run changes nothing, forgotten generations are not found (exit 4), and what another writer
recorded prints escaped."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from clitools import PASS, Cli

import sigmavault


def c_files(vault: Path) -> list[str]:
    return sorted(p.name for p in (vault / "c").iterdir() if not p.name.startswith("."))


def vault_with_generations(tmp_path: Path, n: int, *flags: str) -> Cli:
    cli = Cli(tmp_path / "home", tmp_path / "vault")
    cli.ok("create", "--kdf", "minimum")
    for i in range(n):
        f = tmp_path / f"file{i}.txt"
        f.write_text(f"generation {i + 1}\n")
        cli.ok(*flags, "import", str(f), "--to", f"/g{i + 1}")
    return cli


def test_forget_dry_run_record_and_not_found(tmp_path: Path) -> None:
    cli = vault_with_generations(tmp_path, 4)
    vault = tmp_path / "vault"
    before = c_files(vault)
    r = cli("forget")
    assert r.code == 2 and "--keep-" in r.one_line_error()
    dry = cli.ok("--json", "forget", "--keep-last", "2", "--dry-run").json()
    assert dry["dry_run"] is True and dry["forgotten"] == [0, 1, 2] and dry["records"] == []
    assert [k["generation"] for k in dry["kept"]] == [3, 4] and dry["kept"][1]["reasons"] == ["newest", "last"]
    human = cli.ok("forget", "--keep-last", "2", "--dry-run").out
    assert "would forget 3 generations: 0-2" in human and "dry run: nothing was changed" in human
    assert c_files(vault) == before  # none of the above wrote anything
    done = cli.ok("--json", "forget", "--keep-last", "2").json()
    assert done["forgotten"] == [0, 1, 2] and done["records"] == [5] and done["rules"] == {"last": 2}
    assert [g["generation"] for g in cli.ok("--json", "log").json()["generations"]] == [5, 4, 3]
    r = cli("restore", "--at", "2", "/g2", str(tmp_path / "out"))
    assert r.code == 4 and "generation 2 was forgotten (by generation 5)" in r.one_line_error()
    assert not (tmp_path / "out").exists()
    r = cli("diff", "1", "4")
    assert r.code == 4 and "forgotten" in r.one_line_error()
    assert cli.ok("diff", "3", "4").out.splitlines() == ["+ /g4"]
    cli.ok("restore", "--at", "3", "/g3", str(tmp_path / "g3"))
    assert (tmp_path / "g3").read_text() == "generation 3\n"
    events = cli.ok("--json", "audit").json()["events"]
    forget = [e for e in events if e["event"] == "forget"]
    assert len(forget) == 1 and forget[0]["generation"] == 5 and forget[0]["forgot"] == [[0, 2]]
    assert forget[0]["rules"] == {"last": 2} and forget[0]["slot_label"] == "passphrase"
    assert [e["forgotten_by"] for e in events if e["event"] == "commit"] == [5, 5, 5, None, None]
    assert "forgot 0-2 (rules last=2)" in cli.ok("audit").out
    assert cli.ok("--json", "verify").json()["ok"]
    # nothing left to forget: no new record
    again = cli.ok("--json", "forget", "--keep-last", "2").json()
    assert again["forgotten"] == [] and again["records"] == [] and len(c_files(vault)) == 6


def test_bad_rule_values_are_usage_errors(tmp_path: Path) -> None:
    cli = vault_with_generations(tmp_path, 1)
    before = c_files(tmp_path / "vault")
    for args in (
        ("--keep-last", "-1"),
        ("--keep-daily", "many"),
        ("--keep-within", "30x"),
        ("--keep-within", "30"),
        ("--keep-last", "0"),
    ):
        r = cli("forget", *args)
        assert r.code == 2, (args, r.err)
        r.one_line_error()
    assert c_files(tmp_path / "vault") == before
    kept = cli.ok("--json", "forget", "--keep-within", "1d", "--keep-yearly", "unlimited").json()
    assert kept["forgotten"] == [] and kept["rules"] == {"yearly": -1, "within": "1d"}


def test_audit_host_is_recorded_only_when_allowed_and_log_v_shows_who(tmp_path: Path) -> None:
    cli = vault_with_generations(tmp_path, 1)
    f = tmp_path / "more.txt"
    f.write_text("more")
    cli.ok("--audit-host", "import", str(f), "--to", "/more")
    gens = {g["generation"]: g for g in cli.ok("--json", "log", "-v").json()["generations"]}
    assert gens[2]["host"] == socket.gethostname()[:255] and gens[1]["host"] is None
    assert gens[2]["counts"] == {"added": 1, "changed": 0, "removed": 0, "bytes": 4}
    assert gens[2]["slot_label"] == "passphrase" and len(gens[2]["slot"]) == 32
    human = cli.ok("log", "-v").out
    assert f"host {socket.gethostname()}" in human and "recorded +1 ~0 -0 files, 4 B" in human
    assert "slot" not in cli.ok("--json", "log").json()["generations"][0]  # plain log: as before
    assert cli.ok("--json", "audit", "--since", "2999-01-01").json() == {"events": []}
    assert len(cli.ok("--json", "audit", "--since", "2000-01-01T00:00+00:00").json()["events"]) == 3
    r = cli("audit", "--since", "yesterday")
    assert r.code == 2 and "--since" in r.one_line_error()


async def test_a_hostile_writers_meta_prints_escaped(tmp_path: Path) -> None:
    cli = vault_with_generations(tmp_path, 1)
    label = "\x1b[2J\x1b[31mEVIL\nfake line\u202e\x07"
    host = ("h\r\x1b]0;title\x07" * 40)[:255]
    async with await sigmavault.open(str(tmp_path / "vault"), passphrase=PASS) as v:  # a co-writer with the keys
        v._commits.audit = lambda: {"slot_label": label, "host": host, "zz_unknown": "\x1b" * 8000}
        await v.put("hostile", b"x")
        await v.commit()
    for args in (("log", "-v"), ("audit",)):
        out = cli.ok(*args).out
        for bad in ("\x1b", "\x07", "\r", "\u202e"):
            assert bad not in out, (args, bad)
        assert not any(line.startswith("fake line") for line in out.splitlines())
        assert "\\x1b[2J\\x1b[31mEVIL\\nfake line\\u202e" in out
        assert max(len(line) for line in out.splitlines()) < 400  # cut: a huge string cannot flood the terminal
    doc = cli.ok("--json", "audit").json()
    assert doc["events"][-1]["slot_label"] == label and doc["events"][-1]["host"] == host  # exact in JSON
    assert json.dumps(doc).isascii()
