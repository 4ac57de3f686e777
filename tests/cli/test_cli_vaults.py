"""Named vaults through the real command: ``vaults add|list|remove``, ``--vault NAME``, ``SIGMAVAULT_VAULT=NAME``.

Bad input gets one clear line and its exit code and leaves ``vaults.toml`` as it was; a bare word
that the file does not hold stays a path, as before named vaults existed.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from clitools import PASS, Cli, env_for

import sigmavault
from sigmavault import named
from sigmavault.fs import VaultFileSystem

NAME_DOC = "vaults.toml"


def toml_path(home: Path) -> Path:
    return home / "config" / NAME_DOC


def fingerprint(cli: Cli, **kw: object) -> str:
    return str(cli.ok("--json", "info", **kw).json()["fingerprint"])


@pytest.fixture
def two(tmp_path: Path) -> tuple[Cli, Path, Path]:
    """A home without vaults.toml and two vaults at paths."""
    home = tmp_path / "home"
    for name in ("a", "b"):
        Cli(home, tmp_path / name).ok("create", "--kdf", "minimum")
    return Cli(home, None), tmp_path / "a", tmp_path / "b"


def test_add_list_remove_and_open_by_name(two: tuple[Cli, Path, Path]) -> None:
    cli, a, b = two
    assert "no named vaults" in cli.ok("vaults", "list").out
    assert cli.ok("--json", "vaults", "list").json()["vaults"] == []
    assert not toml_path(cli.home).exists()  # listing writes nothing
    added = cli.ok("--json", "vaults", "add", "alpha", str(a)).json()
    assert added["places"] == [str(a)] and added["file"] == str(toml_path(cli.home))
    cli.ok("vaults", "add", "beta.2", str(b))
    listed = cli.ok("--json", "vaults", "list").json()["vaults"]
    assert listed == [{"name": "alpha", "places": [str(a)]}, {"name": "beta.2", "places": [str(b)]}]
    assert cli.ok("vaults", "list", "--names").out.splitlines() == ["alpha", "beta.2"]
    text = cli.ok("vaults", "list").out
    assert f"alpha   {a}" in text and f"beta.2  {b}" in text

    doc = toml_path(cli.home)
    assert stat.S_IMODE(doc.stat().st_mode) == 0o600
    assert tomllib.loads(doc.read_text()) == {"vaults": {"alpha": {"places": [str(a)]}, "beta.2": {"places": [str(b)]}}}
    assert [p.name for p in doc.parent.iterdir() if p.name.startswith(".")] == []  # no temporary file left

    by_path = fingerprint(Cli(cli.home, a))
    assert fingerprint(Cli(cli.home, "alpha")) == by_path
    assert fingerprint(cli, SIGMAVAULT_VAULT="alpha") == by_path
    assert fingerprint(Cli(cli.home, "beta.2")) != by_path
    assert fingerprint(Cli(cli.home, "alpha"), SIGMAVAULT_VAULT="beta.2") == by_path  # --vault wins

    removed = cli.ok("vaults", "remove", "alpha")
    assert "not touched" in removed.out
    assert cli.ok("vaults", "list", "--names").out.splitlines() == ["beta.2"]
    assert fingerprint(Cli(cli.home, a)) == by_path  # the vault itself is untouched
    gone = Cli(cli.home, "alpha")("ls")
    assert gone.code == 4 and "no vault at alpha" in gone.one_line_error()  # now just a (missing) path


@pytest.mark.parametrize("name", ["b/ad", "s3:x", ".hidden", "x" * 65, "sp ace", "ü"])
def test_invalid_name_is_refused_and_nothing_written(two: tuple[Cli, Path, Path], name: str) -> None:
    cli, a, _ = two
    r = cli("vaults", "add", name, str(a))
    assert r.code == 2 and "invalid vault name" in r.one_line_error()
    assert not toml_path(cli.home).exists()


def test_duplicate_unknown_and_bad_urls_leave_the_file_as_it_was(two: tuple[Cli, Path, Path]) -> None:
    cli, a, b = two
    cli.ok("vaults", "add", "alpha", str(a))
    before = toml_path(cli.home).read_bytes()
    dup = cli("vaults", "add", "alpha", str(b))
    assert dup.code == 5 and "already exists" in dup.one_line_error() and "vaults remove alpha" in dup.err
    unknown = cli("vaults", "remove", "nope")
    assert unknown.code == 4 and "no vault named 'nope'" in unknown.one_line_error()
    for bad in (["gopher://host/x"], [""], ["s3://Bad_Bucket!/x"], ["s3://bucket/p?colour=red"], [str(a), str(a)]):
        r = cli("vaults", "add", "gamma", *bad)
        assert r.code == 2, (bad, r.err)
        r.one_line_error()
    assert toml_path(cli.home).read_bytes() == before


def test_endpoint_options_are_stored_in_the_place_url(two: tuple[Cli, Path, Path]) -> None:
    cli, a, _ = two
    s3 = cli.ok("--json", "vaults", "add", "s3v", "s3://bucket/pre", "--endpoint", "http://127.0.0.1:8333",
                "--region", "eu-west-1", "--path-style").json()
    assert s3["places"] == ["s3://bucket/pre?endpoint=http://127.0.0.1:8333&region=eu-west-1&path_style=true"]
    az = cli.ok("--json", "vaults", "add", "azv", "az://container/p?endpoint=http://old:1", "--endpoint",
                "http://127.0.0.1:10000/devstoreaccount1", "--api-version", "2025-01-05").json()
    assert az["places"] == ["az://container/p?endpoint=http://127.0.0.1:10000/devstoreaccount1&api_version=2025-01-05"]
    before = toml_path(cli.home).read_bytes()
    for bad, says in ((["x", str(a), "--endpoint", "http://h"], "--endpoint applies to s3:// and az://"),
                      (["x", "az://c/p", "--region", "r"], "--region applies to s3://"),
                      (["x", "s3://b/p", "--api-version", "1"], "--api-version applies to az://"),
                      (["x", "s3://b/p", "s3://c/p", "--endpoint", "http://h"], "apply to one place")):
        r = cli("vaults", "add", *bad)
        assert r.code == 2 and says in r.one_line_error(), r.err
    assert toml_path(cli.home).read_bytes() == before


def test_a_relative_path_is_stored_absolute(two: tuple[Cli, Path, Path]) -> None:
    cli, a, _ = two
    doc = cli.ok("--json", "vaults", "add", "rel", "a", cwd=a.parent).json()
    assert doc["places"] == [str(a)]
    assert fingerprint(Cli(cli.home, "rel")) == fingerprint(Cli(cli.home, a))  # from any folder


def test_a_bare_word_not_in_the_file_is_a_path(two: tuple[Cli, Path, Path]) -> None:
    cli, a, b = two
    here = a.parent
    word = Cli(cli.home, "a")  # the word "a" in the folder holding vault a
    by_path = fingerprint(word, cwd=here)  # no vaults.toml at all
    cli.ok("vaults", "add", "other", str(b))
    assert fingerprint(word, cwd=here) == by_path  # a file that does not hold the word
    shadow = cli.ok("vaults", "add", "a", str(b), cwd=here)
    assert "./a exists here too" in shadow.err  # the warning: the name now wins over the folder
    assert fingerprint(word, cwd=here) == fingerprint(Cli(cli.home, b))
    assert fingerprint(Cli(cli.home, "./a"), cwd=here) == by_path  # ./a is the path


@pytest.mark.parametrize("content, says", [
    (b"[vaults.alpha\nplaces = 1\n", "is not valid TOML"),
    (b"\xff\xfe garbage", "not valid TOML (not UTF-8)"),
    (b"[vaults.alpha]\nplaces = \"/x\"\n", "must hold exactly 'places"),
    (b"[vaults.alpha]\nplaces = []\n", "must hold exactly 'places"),
    (b"[vaults.alpha]\nplaces = [\"/x\"]\nendpoint = \"http://h\"\n", "must hold exactly 'places"),
    (b"vaults = 3\n", "'vaults' must be a table"),
    (b"colour = \"red\"\n", "unknown key(s) colour"),
    (b"[vaults.\"b/ad\"]\nplaces = [\"/x\"]\n", "invalid vault name 'b/ad'"),
])
def test_corrupt_file_is_a_clear_error_and_urls_still_work(two: tuple[Cli, Path, Path], content: bytes,
                                                            says: str) -> None:
    cli, a, _ = two
    doc = toml_path(cli.home)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_bytes(content)
    for r in (Cli(cli.home, "alpha")("ls"), cli("ls", SIGMAVAULT_VAULT="alpha"), cli("vaults", "list"),
              cli("vaults", "add", "beta", str(a)), cli("vaults", "remove", "alpha")):
        assert r.code == 2, r.err
        line = r.one_line_error()
        assert str(doc) in line and says in line, line
    assert doc.read_bytes() == content  # never rewritten
    assert Cli(cli.home, a).ok("ls").code == 0  # a path or URL does not read the file


def test_unreadable_file_is_a_local_io_error(two: tuple[Cli, Path, Path]) -> None:
    cli, _, _ = two
    toml_path(cli.home).mkdir(parents=True)  # a folder where the file should be
    r = Cli(cli.home, "alpha")("ls")
    assert r.code == 11 and f"cannot read {toml_path(cli.home)}" in r.one_line_error()


def test_a_name_stands_for_the_places_of_a_dispersed_vault(two: tuple[Cli, Path, Path]) -> None:
    cli, a, b = two
    cli.ok("vaults", "add", "both", str(a), str(b))  # two single-place vaults named together: not one vault
    assert cli.ok("--json", "vaults", "list").json()["vaults"][-1] == {"name": "both", "places": [str(a), str(b)]}
    r = Cli(cli.home, "both")("ls")
    assert r.code == 2 and "not dispersed" in r.one_line_error()
    new = [a.parent / f"place{i}" for i in range(3)]
    two_only = cli("--vault", str(new[0]), "create", "--kdf", "minimum", "--vault", str(new[1]))
    assert two_only.code == 2 and not any(p.exists() and any(p.iterdir()) for p in new[:2])  # may lose 0: refused
    cli.ok("vaults", "add", "spread", *map(str, new))
    made = Cli(cli.home, "spread").ok("--json", "create", "--kdf", "minimum", "--needed", "2").json()
    assert made["needed"] == 2 and made["may_lose"] == 1
    Cli(cli.home, "spread").ok("mkdir", "/kept")
    assert cli.ok("ls", SIGMAVAULT_VAULT="spread").out == "kept/\n"
    by_hand = Cli(cli.home, None)("--vault", str(new[2]), "--vault", str(new[0]), "--vault", str(new[1]), "ls")
    assert by_hand.code == 0 and by_hand.out == "kept/\n"  # the same places, in another order


def test_completion_offers_the_names(two: tuple[Cli, Path, Path], tmp_path: Path) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    cli, a, b = two
    cli.ok("vaults", "add", "alpha", str(a))
    cli.ok("vaults", "add", "albert", str(b))
    script = tmp_path / "sigmavault.bash"
    script.write_text(cli.ok("completion", "bash").out)
    command = tmp_path / "sv"  # what the user typed: the script asks that command for the names
    command.write_text(f"#!/bin/sh\nexec {sys.executable} -m sigmavault \"$@\"\n")
    command.chmod(0o755)

    def complete(*words: str) -> list[str]:
        line = " ".join(f"'{w}'" for w in (str(command), *words))
        code = (f'source "{script}"\nCOMP_WORDS=({line})\nCOMP_CWORD={len(words)}\n_sigmavault\n'
                'printf "%s\\n" "${COMPREPLY[@]}"\n')
        done = subprocess.run([bash, "--norc", "--noprofile", "-c", code], capture_output=True, text=True,
                              timeout=60, env=env_for(cli.home, None))
        assert done.returncode == 0, done.stderr
        return [w for w in done.stdout.splitlines() if w]

    assert complete("--vault", "al") == ["alpha", "albert"]
    assert complete("ls", "--vault", "alp") == ["alpha"]
    assert complete("vaults", "remove", "") == ["alpha", "albert"]
    assert complete("--vault", "/tm") == []  # no name fits: bash's file names take over
    assert complete("vaults", "") == ["add", "list", "remove"]


def test_background_mount_of_a_named_vault_passes_the_place_on(two: tuple[Cli, Path, Path]) -> None:
    if not (os.path.exists("/dev/fuse") and shutil.which("fusermount3")):
        pytest.skip("no FUSE here")
    cli, a, _ = two
    cli.ok("vaults", "add", "alpha", str(a))
    named = Cli(cli.home, "alpha")
    mp, pid_file = a.parent / "mnt", a.parent / "mount.pid"
    mp.mkdir()
    r = named("mount", str(mp), "--background", "--pid-file", str(pid_file))
    assert r.code == 0, r.err
    try:
        pid = int(pid_file.read_text().split()[0])
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert argv[argv.index(b"--vault") + 1] == str(a).encode()  # resolved once, by the parent
        cli.ok("vaults", "remove", "alpha")  # the child no longer needs the name
        (mp / "note.txt").write_text("through the named mount\n")
    finally:
        cli.ok("umount", str(mp))
        deadline = time.monotonic() + 30
        while os.path.ismount(mp) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert Cli(cli.home, a).ok("cat", "/note.txt").out == "through the named mount\n"


async def test_the_library_default_vault_may_be_a_name(tmp_path: Path, isolated_home: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """``SIGMAVAULT_VAULT=NAME`` means the same vault to ``sigmavault.open(None)`` as to the CLI."""
    where = tmp_path / "lib"
    vault = await sigmavault.create(str(where), passphrase=PASS, kdf="minimum")
    fp = vault.fingerprint
    await vault.aclose()
    with named.editing() as entries:
        entries["lib"] = [str(where)]
    monkeypatch.setenv("SIGMAVAULT_VAULT", "lib")
    vault = await sigmavault.open(None, passphrase=PASS)
    try:
        assert vault.fingerprint == fp and vault.url == str(where)
    finally:
        await vault.aclose()
    monkeypatch.delenv("SIGMAVAULT_VAULT")
    fs = VaultFileSystem(vault="lib", passphrase=PASS, asynchronous=True, skip_instance_cache=True)
    assert await fs._ls("/") == []  # fsspec's vault= takes a name too
    await fs.aclose()
    spread = [tmp_path / f"place{i}" for i in range(3)]
    vault = await sigmavault.create(places=list(map(str, spread)), passphrase=PASS, kdf="minimum")
    fp_spread = vault.fingerprint
    await vault.aclose()
    with named.editing() as entries:
        entries["spread"] = [str(p) for p in reversed(spread)]  # any order
    monkeypatch.setenv("SIGMAVAULT_VAULT", "spread")
    vault = await sigmavault.open(None, passphrase=PASS)  # a dispersed vault by its name
    try:
        assert vault.fingerprint == fp_spread
    finally:
        await vault.aclose()
    toml_path(isolated_home).write_text("[vaults.lib\n")
    monkeypatch.setenv("SIGMAVAULT_VAULT", "lib")
    with pytest.raises(sigmavault.UsageError, match="is not valid TOML"):
        await sigmavault.open(None, passphrase=PASS)
    monkeypatch.setenv("SIGMAVAULT_VAULT", str(where))  # a path never reads the broken file
    vault = await sigmavault.open(None, passphrase=PASS)
    await vault.aclose()
