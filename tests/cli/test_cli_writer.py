"""Write-only clients through the real command: the owner makes a writer credential, a server with
only that file backs itself up into the writer's folder, every read command refuses it with exit 3,
and the owner's next commit (``ingest``, or any other) takes the drop in."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from clitools import Cli, make_tree

READS = [
    ("ls", "/"),
    ("cat", "/web-1/a.txt"),
    ("export", "/web-1", "OUT"),
    ("verify",),
    ("log",),
    ("mount", "MNT"),
    ("audit",),
    ("ingest",),
    ("key", "list"),
]


@pytest.fixture()
def owner(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "owner-home", tmp_path / "v")
    cli.ok("create", "--kdf", "minimum")
    return cli


def make_writer(owner: Cli, tmp_path: Path) -> Path:
    cred = tmp_path / "web-1.cred"
    r = owner.ok("key", "add", "--writer", "--label", "web-1", "--to", "/web-1", "--out", str(cred))
    assert str(cred) in r.out
    return cred


def test_a_server_backs_up_with_only_its_writer_credential_and_the_owner_takes_it_in(owner: Cli,
                                                                                     tmp_path: Path) -> None:
    cred = make_writer(owner, tmp_path)
    assert stat.S_IMODE(cred.stat().st_mode) == 0o600
    server = Cli(tmp_path / "server-home", owner.vault)  # another machine: no pin, no passphrase
    src = make_tree(tmp_path / "www")
    done = server.ok("--json", "--writer-credential", str(cred), "import", str(src), "--to", "/web-1",
                     passphrase=None).json()
    assert done["drop"] == 1 and done["destination"] == "/web-1"
    took = owner.ok("--json", "ingest").json()
    assert [(d["drop"], d["dest"]) for d in took["ingested"]] == [(1, "/web-1")]
    assert owner.ok("cat", "/web-1/a.txt").out == "hello\n"
    owner.ok("export", "/web-1", str(tmp_path / "out"))
    assert (tmp_path / "out" / "deep" / "big.bin").read_bytes() == (src / "deep" / "big.bin").read_bytes()
    assert os.readlink(tmp_path / "out" / "deep" / "link") == "../a.txt"
    audit = owner.ok("audit").out
    assert "drop 1" in audit and "web-1" in audit
    assert 'add writer slot' in audit and '"web-1"' in audit  # who made the writer, recorded in the chain
    assert "drop 1 of writer" in owner.ok("log").out
    assert owner.ok("verify", "--full").code == 0
    # the next day: backup of a changed tree replaces what it replaced
    (src / "a.txt").write_text("changed\n")
    server.ok("--writer-credential", str(cred), "backup", str(src), "--to", "/web-1", passphrase=None)
    owner.ok("ingest")
    assert owner.ok("cat", "/web-1/a.txt").out == "changed\n"
    assert not [n for n in owner.ok("ls", "/web-1").out.split() if "conflict" in n]
    # a day when big.bin changes: once the owner forgets the older generations, prune collects the
    # old chunk and the older drops' pages from the writer's folder
    (src / "deep" / "big.bin").write_bytes(os.urandom(1_500_000))
    server.ok("--writer-credential", str(cred), "backup", str(src), "--to", "/web-1", passphrase=None)
    owner.ok("ingest")
    owner.ok("forget", "--keep-last", "1")
    pruned = owner.ok("--json", "prune").events()[-1]["write_only_clients"]
    assert pruned["deleted"] >= 2 and pruned["held"] == 0 and pruned["leases_cleared"] == 3, pruned
    assert owner.ok("cat", "/web-1/a.txt").out == "changed\n"
    owner.ok("export", "/web-1", str(tmp_path / "out2"))
    assert (tmp_path / "out2" / "deep" / "big.bin").read_bytes() == (src / "deep" / "big.bin").read_bytes()
    assert owner.ok("verify", "--full").code == 0


@pytest.mark.parametrize("command", READS, ids=lambda c: c[0] + ("-" + c[1] if c[0] == "key" else ""))
def test_every_read_command_refuses_a_write_only_credential(owner: Cli, tmp_path: Path,
                                                            command: tuple[str, ...]) -> None:
    cred = make_writer(owner, tmp_path)
    server = Cli(tmp_path / "server-home", owner.vault)
    args = [str(tmp_path / a) if a in ("OUT", "MNT") else a for a in command]
    r = server("--writer-credential", str(cred), *args, passphrase=None)
    assert r.code == 3, r
    assert "write-only credential" in r.one_line_error()
    assert not (tmp_path / "OUT").exists()


def test_a_writer_import_outside_its_folder_is_refused_and_writes_nothing(owner: Cli, tmp_path: Path) -> None:
    cred = make_writer(owner, tmp_path)
    server = Cli(tmp_path / "server-home", owner.vault)
    src = make_tree(tmp_path / "www")
    r = server("--writer-credential", str(cred), "import", str(src), "--to", "/elsewhere", passphrase=None)
    assert r.code == 2 and "only inside /web-1" in r.one_line_error()
    assert not (Path(str(owner.vault)) / "d").exists() or not any((Path(str(owner.vault)) / "d").rglob("0*"))


def test_key_add_writer_never_overwrites_and_key_list_shows_the_writer(owner: Cli, tmp_path: Path) -> None:
    cred = make_writer(owner, tmp_path)
    before = cred.read_bytes()
    r = owner("key", "add", "--writer", "--label", "web-2", "--to", "/web-2", "--out", str(cred))
    assert r.code == 2 and cred.read_bytes() == before
    slots = owner.ok("--json", "key", "list").json()["slots"]
    writers = [s for s in slots if s["type"] == "writer"]
    assert [(s["label"], s["prefix"]) for s in writers] == [("web-1", "/web-1")]


def test_a_removed_writers_later_drop_is_refused_and_shown_by_audit(owner: Cli, tmp_path: Path) -> None:
    cred = make_writer(owner, tmp_path)
    server = Cli(tmp_path / "server-home", owner.vault)
    src = make_tree(tmp_path / "www")
    server.ok("--writer-credential", str(cred), "import", str(src), "--to", "/web-1", passphrase=None)
    owner.ok("ingest")
    slot = next(s for s in owner.ok("--json", "key", "list").json()["slots"] if s["type"] == "writer")
    owner.ok("key", "remove", slot["id"])
    os.utime(src / "a.txt")
    (src / "a.txt").write_text("after revocation\n")
    server.ok("--writer-credential", str(cred), "import", str(src), "--to", "/web-1", passphrase=None)
    took = owner.ok("--json", "ingest").json()
    assert took["ingested"] == [] and [r["drop"] for r in took["refused"]] == [2]
    assert owner.ok("cat", "/web-1/a.txt").out == "hello\n"
    audit = owner.ok("audit").out
    assert "refused" in audit and "remove writer slot" in audit
    assert "refused drop 2" in owner.ok("verify", "--full").out  # a record of it, exit 0: not damage


@pytest.mark.parametrize("bad", ["missing", "garbage", "owner-json", "directory", "other-vault"])
def test_a_bad_writer_credential_is_a_clear_error_and_writes_nothing(owner: Cli, tmp_path: Path, bad: str) -> None:
    src = make_tree(tmp_path / "www")
    path = tmp_path / "web.cred"
    if bad == "garbage":
        path.write_bytes(os.urandom(300))
    elif bad == "owner-json":
        path.write_text('{"format":"sigmavault-writer/v9"}')
    elif bad == "directory":
        path.mkdir()
    elif bad == "other-vault":
        other = Cli(tmp_path / "other-home", tmp_path / "other")
        other.ok("create", "--kdf", "minimum")
        make_writer(other, tmp_path)
        path = tmp_path / "web-1.cred"
    server = Cli(tmp_path / "server-home", owner.vault)
    r = server("--writer-credential", str(path), "import", str(src), "--to", "/web-1", passphrase=None)
    assert r.code == 2, r
    message = r.one_line_error()
    expected = {"missing": "no such writer credential", "garbage": "writer credential",
                "owner-json": "newer sigmavault", "directory": "cannot read", "other-vault": "another vault"}
    assert expected[bad] in message
    assert not (Path(str(owner.vault)) / "d").exists()
