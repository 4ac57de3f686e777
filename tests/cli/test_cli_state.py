"""This device's local state through the real command: keyed by location, set aside only by create,
pins a changed keystore at once, holds no plaintext, can be forgotten (issue 10 items 2, 6, 9; issue 17)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from clitools import PASS, Cli

from sigmavault import config
from sigmavault.backends.s3 import S3Backend
from sigmavault.engine.local import devstate


def state_dirs(home: Path) -> list[Path]:
    root = home / "state"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def test_create_where_a_vault_was_deleted_sets_old_state_aside(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", tmp_path / "v")
    first = cli.ok("--json", "create", "--kdf", "minimum").json()
    cli.ok("mkdir", "/old")
    shutil.rmtree(tmp_path / "v")
    made = cli("--json", "create", "--kdf", "minimum")
    assert made.code == 0, made.err  # was: "integrity check failed" (exit 6) and a stuck device
    assert made.json()["fingerprint"] != first["fingerprint"]
    notes = [ln for ln in made.err.splitlines() if "moved to" in ln]
    assert len(notes) == 1 and notes[0].startswith("sigmavault: note: ")
    assert cli.ok("ls").out == ""  # the new vault opens, with no trace of the old one
    assert len([p for p in state_dirs(tmp_path / "home") if ".replaced-" in p.name]) == 1


def test_a_different_vault_at_a_pinned_location_stays_an_integrity_error(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", tmp_path / "v")
    cli.ok("create", "--kdf", "minimum")
    cli.ok("mkdir", "/mine")
    shutil.rmtree(tmp_path / "v")
    Cli(tmp_path / "other", tmp_path / "v").ok("create", "--kdf", "minimum")  # someone else's vault there now
    r = cli("ls")
    assert r.code == 6, r.err  # never a silent new trust on first use
    assert "fingerprint mismatch" in r.one_line_error() and "forget-device" in r.err
    forgot = cli.ok("--json", "forget-device").json()
    assert forgot["removed"] and not Path(forgot["state_dir"]).exists()
    again = cli.ok("ls")
    assert "now pins vault" in again.err and "trust on first use" in again.err
    assert cli.ok("ls").err == ""  # said once, on first use only


def test_forget_device_without_state_says_so(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", tmp_path / "nothing-here")
    r = cli.ok("forget-device")
    assert "holds no state" in r.out


def test_state_is_keyed_by_endpoint_too() -> None:
    a = S3Backend.from_url("s3://bucket/pre?endpoint=http://127.0.0.1:8333")
    b = S3Backend.from_url("s3://bucket/pre?endpoint=http://10.0.0.7:9000")
    assert devstate.folder_for(config.places(), a) != devstate.folder_for(config.places(), b)


def test_old_keystore_restored_after_passwd_is_a_rollback(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", tmp_path / "v")
    cli.ok("create", "--kdf", "minimum")
    keys = tmp_path / "v" / "k"
    saved = tmp_path / "old-k"
    shutil.copytree(keys, saved)
    (tmp_path / "new").write_text("a brand new passphrase\n")
    cli.ok("key", "passwd", "--new-passphrase-file", str(tmp_path / "new"))
    shutil.rmtree(keys)
    shutil.copytree(saved, keys)  # the provider serves the old keystore again
    r = cli("ls")  # the OLD passphrase
    assert r.code == 7, (r.code, r.err)  # was: exit 0
    r.one_line_error()


def test_local_state_holds_no_plaintext_name_or_content(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", tmp_path / "v")
    cli.ok("create", "--kdf", "minimum")
    src = tmp_path / "srcMARKERDIR"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "secretMARKERNAME.txt").write_text("contentMARKERBYTES " * 3)
    (src / "small").write_bytes(b"tinyMARKERINLINE")
    (src / "linkMARKERLINK").symlink_to("targetMARKERTARGET")
    cli.ok("backup", str(src))
    cli.ok("ls", "-l", "/srcMARKERDIR/sub")
    assert cli.ok("cat", "/srcMARKERDIR/small").out == "tinyMARKERINLINE"  # pages were cached and read back
    cli.ok("backup", str(src))  # the incremental path: backup stats looked up
    files = [p for p in (tmp_path / "home" / "state").rglob("*") if p.is_file()]
    assert any(p.name == "cache.sqlite" for p in files)
    for path in files:
        data = path.read_bytes()
        assert b"MARKER" not in data, path
        assert b"srcMARKERDIR" not in data and b"MARKER".lower() not in data.lower(), path


def test_create_without_terminal_or_passphrase_is_a_usage_error(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", tmp_path / "v")
    r = cli("create", "--kdf", "minimum", passphrase=None)
    assert r.code == 2, r.err  # was 3 ("wrong passphrase")
    assert "--passphrase-file" in r.one_line_error()
    assert not (tmp_path / "v").exists() or not any((tmp_path / "v").rglob("k/*"))


def test_create_refused_leaves_nothing_behind(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", tmp_path / "v")
    cli.ok("create", "--kdf", "minimum")
    r = cli("create", "--kdf", "minimum", passphrase="another")
    assert r.code == 5
    assert cli.ok("ls", passphrase=PASS).code == 0


@pytest.mark.parametrize("chunk", ["3"])
def test_create_with_bad_parameters_writes_nothing(tmp_path: Path, chunk: str) -> None:
    cli = Cli(tmp_path / "home", tmp_path / "v")
    r = cli("create", "--kdf", "minimum", "--chunk-size", chunk)
    assert r.code == 2
    assert not any(p.is_file() for p in (tmp_path / "v").rglob("*")) if (tmp_path / "v").exists() else True
