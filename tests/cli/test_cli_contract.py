"""The scripting contract end to end through the real command: create, import, export, ls, cat, mv, rm, log, info."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest
from clitools import Cli, make_tree


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cli, Path, Path]:
    base = tmp_path_factory.mktemp("contract")
    cli = Cli(base / "home", base / "vault")
    created = cli.ok("--json", "create", "--kdf", "minimum", "--chunk-size", "1").json()
    assert len(created["fingerprint"]) == 32 and created["recovery_code"].startswith("vault-recovery-1")
    src = make_tree(base / "src")
    imported = cli.ok("--json", "import", str(src), "--to", "/backup/").events()
    assert imported[-1]["event"] == "done" and imported[-1]["generation"] == 1
    assert {e["path"] for e in imported if e["event"] == "file" and e["type"] == "file"} >= {
        "/backup/docs/a.txt", "/backup/docs/deep/big.bin"}
    return cli, base, src


def test_create_prints_fingerprint_and_recovery_code_once(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", tmp_path / "v")
    r = cli.ok("create", "--kdf", "minimum")
    assert "fingerprint:" in r.out and "vault-recovery-1" in r.out
    again = cli("create", "--kdf", "minimum")
    assert again.code == 5 and "already exists" in again.one_line_error()
    assert "vault-recovery-1" not in cli.ok("info").out


def test_create_without_vault_makes_the_default_vault(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", None)
    missing = cli("ls")
    assert missing.code == 4 and "sigmavault create" in missing.one_line_error()
    cli.ok("create", "--kdf", "minimum")
    assert (tmp_path / "home" / "data" / "default" / "k").is_dir()
    assert cli.ok("--json", "ls").json()["entries"] == []


def test_export_round_trips_the_tree_with_metadata(env: tuple[Cli, Path, Path]) -> None:
    cli, base, src = env
    out = base / "out"
    done = cli.ok("--json", "export", "/backup/docs", str(out)).events()[-1]
    assert done["event"] == "done" and done["files"] == 5
    cmp = filecmp.dircmp(src, out)
    assert not cmp.left_only and not cmp.right_only and not cmp.diff_files
    assert (out / "deep" / "big.bin").read_bytes() == (src / "deep" / "big.bin").read_bytes()
    assert os.readlink(out / "deep" / "link") == "../a.txt"
    assert os.stat(out / "small").st_mode & 0o777 == 0o600
    assert os.stat(out / "a.txt").st_mtime_ns == 1_600_000_000_000_000_000
    assert (out / os.fsdecode(b"caf\xe9")).read_bytes() == b"latin-1 name"
    single = base / "single.bin"
    cli.ok("export", "/backup/docs/deep/big.bin", str(single))
    assert subprocess.run(["cmp", str(single), str(src / "deep" / "big.bin")]).returncode == 0


def test_ls_and_cat(env: tuple[Cli, Path, Path]) -> None:
    cli, _, src = env
    listing = cli.ok("--json", "ls", "/backup/docs").json()
    names = {e["name"]: e for e in listing["entries"]}
    assert names["a.txt"]["size"] == 6 and names["deep"]["type"] == "dir" and names["small"]["mode"] == "0600"
    assert cli.ok("ls", "/backup/docs").out.splitlines()[0] == "a.txt"
    long = cli.ok("ls", "-l", "/backup/docs/deep").out
    assert "link -> ../a.txt" in long and "-rw-" in long
    assert cli.ok("ls", "/backup/docs", "--json").json() == listing  # global options after the command too
    proc = subprocess.run([sys.executable, "-m", "sigmavault", "--vault", str(cli.vault), "cat",
                           "/backup/docs/deep/big.bin"], env={**os.environ, "SIGMAVAULT_HOME": str(cli.home),
                          "SIGMAVAULT_PASSPHRASE": "correct horse battery staple"}, capture_output=True)
    assert proc.returncode == 0 and proc.stdout == (src / "deep" / "big.bin").read_bytes()


def test_mkdir_mv_rm_log_and_info(env: tuple[Cli, Path, Path]) -> None:
    cli, _, _ = env
    gen = cli.ok("--json", "info").json()["generation"]
    assert cli.ok("--json", "mkdir", "-p", "/x/y/z").json()["generation"] == gen + 1
    exists = cli("mkdir", "/x/y")
    assert exists.code == 5
    cli.ok("mv", "/x/y", "/x/w")
    assert [e["name"] for e in cli.ok("--json", "ls", "/x").json()["entries"]] == ["w"]
    cli.ok("mkdir", "/x/y")
    clash = cli("mv", "/x/w/z", "/x/y")  # into an existing directory: /x/y/z
    assert clash.code == 0
    cli.ok("mkdir", "/x/w/z")
    refused = cli("mv", "/x/w/z", "/x/y")
    assert refused.code == 5 and "--force" in refused.one_line_error()
    notempty = cli("rm", "/x")
    assert notempty.code == 2
    cli.ok("rm", "-r", "/x")
    assert cli("ls", "/x").code == 4
    log = cli.ok("--json", "log").json()["generations"]
    assert [e["generation"] for e in log] == list(range(log[0]["generation"], -1, -1))
    info = cli.ok("--json", "info").json()
    assert info["generation"] == log[0]["generation"] and info["objects"] >= 2 and info["object_bytes"] > 1_500_000
    assert info["parameters"]["chunk_size"] == 1 << 20 and info["key_slots"] == 2


def test_verify_passes_on_a_healthy_vault(env: tuple[Cli, Path, Path]) -> None:
    cli, _, _ = env
    report = cli.ok("--json", "verify", "--full").json()
    assert report["ok"] and report["problems"] == [] and report["bytes_checked"] >= 1_500_000


def test_python_dash_m_and_help(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "sigmavault", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "import" in r.stdout and "verify" in r.stdout
