"""``key add --writer``, ``key list`` and ``key remove`` of write-only clients through the real command."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from clitools import Cli

from sigmavault.engine.keys.writers import WriterCredential


@pytest.fixture()
def cli(tmp_path: Path) -> Cli:
    c = Cli(tmp_path / "home", tmp_path / "v")
    c.ok("create", "--kdf", "minimum")
    return c


def keystores(cli: Cli) -> list[str]:
    return sorted(os.listdir(Path(str(cli.vault)) / "k"))


def test_add_writer_writes_a_0600_credential_and_says_so(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "web-1.cred"
    r = cli.ok("key", "add", "--writer", "--label", "web-1", "--to", "/web-1", "--out", str(out))
    lines = r.out.splitlines()
    assert len(lines) == 1 and str(out) in lines[0] and "holds no key that reads the vault" in lines[0]
    assert stat.S_IMODE(out.lstat().st_mode) == 0o600
    cred = WriterCredential.from_bytes(out.read_bytes())
    assert (cred.label, cred.prefix, cred.epoch) == ("web-1", "/web-1", 1)
    assert cred.writer_id.hex() in lines[0]
    # the credential is no passphrase of the vault
    assert cli("ls", "--passphrase-file", str(out), passphrase=None).code == 3


def test_key_list_shows_writer_slots(cli: Cli, tmp_path: Path) -> None:
    made = cli.ok("--json", "key", "add", "--writer", "--to", "/srv/web 1/", "--out", str(tmp_path / "c")).json()
    assert (made["label"], made["prefix"], made["keystore_generation"]) == ("web 1", "/srv/web 1", 2)
    listed = cli.ok("--json", "key", "list").json()
    writers = [s for s in listed["slots"] if s["type"] == "writer"]
    assert writers == [{"id": made["writer"], "type": "writer", "kind": None, "label": "web 1",
                        "unlocked_with": False, "prefix": "/srv/web 1"}]
    assert all("prefix" not in s for s in listed["slots"] if s["type"] != "writer")
    text = cli.ok("key", "list").out.splitlines()
    line = next(x for x in text if x.startswith(made["writer"]))
    assert "writer" in line and "web 1" in line and "/srv/web 1" in line


def test_remove_writer_revokes_it(cli: Cli, tmp_path: Path) -> None:
    made = cli.ok("--json", "key", "add", "--writer", "--to", "/web-1", "--out", str(tmp_path / "c")).json()
    r = cli.ok("key", "remove", made["writer"][:8])
    assert f"writer {made['writer']} revoked" in r.out
    assert all(s["type"] != "writer" for s in cli.ok("--json", "key", "list").json()["slots"])
    assert keystores(cli) == ["0000000000000003"]
    assert cli.ok("ls").code == 0


def test_existing_out_file_is_never_overwritten(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.write_bytes(b"precious")
    target = tmp_path / "target"
    target.write_bytes(b"also precious")
    link = tmp_path / "link"
    link.symlink_to(target)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    for path in (out, link, dangling):
        r = cli("key", "add", "--writer", "--to", "/web-1", "--out", str(path))
        assert r.code == 2 and "already exists" in r.one_line_error()
    assert out.read_bytes() == b"precious" and target.read_bytes() == b"also precious"
    assert not (tmp_path / "nowhere").exists()
    assert keystores(cli) == ["0000000000000001"]  # no writer was added


@pytest.mark.parametrize(("args", "says"), [
    (["--to", "/web-1"], "--writer needs --to"),
    (["--out", "X"], "--writer needs --to"),
    (["--to", "/", "--out", "X"], "must not be / itself"),
    (["--to", "web-1", "--out", "X"], "absolute vault path"),
    (["--to", "/a/../b", "--out", "X"], "empty, . or .. components"),
])
def test_writer_arguments_are_checked_before_anything_changes(cli: Cli, tmp_path: Path, args: list[str],
                                                              says: str) -> None:
    args = [str(tmp_path / "X") if a == "X" else a for a in args]
    r = cli("key", "add", "--writer", *args)
    assert r.code == 2 and says in r.one_line_error()
    assert not (tmp_path / "X").exists()
    assert keystores(cli) == ["0000000000000001"]


def test_to_and_out_go_with_writer(cli: Cli, tmp_path: Path) -> None:
    r = cli("key", "add", "--passphrase", "--to", "/x", "--out", str(tmp_path / "c"))
    assert r.code == 2 and "--to and --out go with --writer" in r.one_line_error()


def test_a_failed_add_leaves_no_credential_file(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "c"
    r = cli("key", "add", "--writer", "--to", "/web-1", "--out", str(out), passphrase="wrong passphrase")
    assert r.code == 3
    assert not out.exists()
    assert keystores(cli) == ["0000000000000001"]


def test_credential_json_names_no_reading_key(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "c"
    cli.ok("key", "add", "--writer", "--to", "/web-1", "--out", str(out))
    doc = json.loads(out.read_bytes())
    assert set(doc) == {"format", "vault_id", "fingerprint", "writer_id", "label", "prefix", "epoch", "drop_pk",
                        "signing", "key", "params"}
