"""Bad input: one line on stderr, the error class's exit code, no traceback, nothing changed in the vault."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from clitools import Cli, make_tree, object_files

from sigmavault.cli import cmd_inspect, main


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cli, Path]:
    base = tmp_path_factory.mktemp("bad")
    cli = Cli(base / "home", base / "vault")
    cli.ok("create", "--kdf", "minimum", "--chunk-size", "1")
    cli.ok("import", str(make_tree(base / "src")))
    return cli, base


def gen(cli: Cli) -> int:
    return int(cli.ok("--json", "info").json()["generation"])


def test_wrong_passphrase(vault: tuple[Cli, Path]) -> None:
    cli, _ = vault
    r = cli("--json", "ls", passphrase="wrong")
    assert r.code == 3 and "wrong passphrase" in r.one_line_error()
    assert r.json()["error"] == {"type": "AuthError", "message": r.one_line_error()[len("sigmavault: error: "):],
                                 "exit_code": 3}
    none = cli("ls", passphrase=None)  # no passphrase and no terminal
    assert none.code == 3 and "--passphrase-file" in none.one_line_error()


def test_missing_vault_and_unknown_scheme(tmp_path: Path) -> None:
    r = Cli(tmp_path / "home", tmp_path / "nothing")("ls")
    assert r.code == 4 and "no vault at" in r.one_line_error()
    assert not (tmp_path / "nothing").exists()
    r = Cli(tmp_path / "home", "gopher://host/x")("ls")
    assert r.code == 2 and "unknown vault URL scheme" in r.one_line_error()


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_corrupt_or_truncated_keystore(tmp_path: Path, damage: str) -> None:
    cli = Cli(tmp_path / "home", tmp_path / "v")
    cli.ok("create", "--kdf", "minimum")
    ks = tmp_path / "v" / "k" / "0000000000000001"
    data = ks.read_bytes()
    os.chmod(ks, 0o644)
    if damage == "flip":
        i = len(data) // 2
        data = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]
    elif damage == "truncate":
        data = data[: len(data) // 3]
    else:
        data = b"\x00\xff" * 100
    ks.write_bytes(data)
    r = cli("ls")
    assert r.code == 6 and "integrity check failed" in r.one_line_error()


def test_export_of_a_missing_path_and_existing_destination(vault: tuple[Cli, Path], tmp_path: Path) -> None:
    cli, _ = vault
    r = cli("export", "/no/such/thing", str(tmp_path / "out"))
    assert r.code == 4 and "/no/such/thing" in r.one_line_error()
    assert not (tmp_path / "out").exists()
    (tmp_path / "exists").write_text("keep me")
    r = cli("export", "/docs/a.txt", str(tmp_path / "exists"))
    assert r.code == 5 and "--force" in r.one_line_error()
    assert (tmp_path / "exists").read_text() == "keep me"
    cli.ok("export", "--force", "/docs/a.txt", str(tmp_path / "exists"))
    assert (tmp_path / "exists").read_text() == "hello\n"


def test_dot_dot_and_nul_names(vault: tuple[Cli, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    cli, _base = vault
    before = gen(cli)
    for args in (["mkdir", "a/../b"], ["import", str(tmp_path), "--to", "/x/.."], ["mv", "/docs", "../up"],
                 ["rm", "docs/../.."]):
        r = cli(*args)
        assert r.code == 2 and "'..'" in r.one_line_error(), args
    # argv cannot carry a NUL byte: call the real entry point in this process instead
    monkeypatch.setenv("SIGMAVAULT_HOME", str(cli.home))
    monkeypatch.setenv("SIGMAVAULT_PASSPHRASE", "correct horse battery staple")
    assert main.run(["--vault", str(cli.vault), "mkdir", "a\0b"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sigmavault: error: ") and "NUL" in err
    assert gen(cli) == before


def test_disk_full_on_export_and_on_the_vault(vault: tuple[Cli, Path], tmp_path: Path) -> None:
    small = tmp_path / "tmpfs"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        cli, _ = vault
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(3 << 20))
        cli.ok("import", str(big), "--to", "/full/")
        r = cli("export", "/full/big.bin", str(small / "big.bin"))
        assert r.code == 11 and "disk full" in r.one_line_error()
        assert os.listdir(small) == []  # no partial file under any name
        onfull = Cli(cli.home, small / "vault")
        onfull.ok("create", "--kdf", "minimum", "--chunk-size", "1")
        r = onfull("import", str(big))
        assert r.code == 11 and "disk full" in r.one_line_error()
        assert gen(onfull) == 0 and onfull.ok("--json", "ls").json()["entries"] == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


@pytest.fixture()
def damaged(tmp_path: Path) -> Iterator[tuple[Cli, Path]]:
    """A vault holding one 1 MiB file in its own chunk object (the largest object)."""
    cli = Cli(tmp_path / "home", tmp_path / "v")
    cli.ok("create", "--kdf", "minimum", "--chunk-size", "1")
    (tmp_path / "one.bin").write_bytes(os.urandom(1 << 20))
    cli.ok("import", str(tmp_path / "one.bin"), "--to", "/d/")
    chunk = max(object_files(tmp_path / "v"), key=lambda p: p.stat().st_size)
    shutil.copy2(chunk, chunk.parent.parent.parent / "saved-chunk")
    os.chmod(chunk, 0o644)
    yield cli, chunk


@pytest.mark.parametrize("damage", ["flip", "truncate", "missing"])
def test_tampered_truncated_or_missing_object(damaged: tuple[Cli, Path], tmp_path: Path, damage: str) -> None:
    cli, chunk = damaged
    data = chunk.read_bytes()
    if damage == "flip":
        chunk.write_bytes(data[:5000] + bytes([data[5000] ^ 0x40]) + data[5001:])
    elif damage == "truncate":
        chunk.write_bytes(data[: len(data) - 100])
    else:
        chunk.unlink()
    r = cli("verify", "--full")
    assert r.code == 6 and "/d/one.bin" in r.one_line_error()
    assert "PROBLEM /d/one.bin" in r.out
    doc = cli("--json", "verify", "--full")
    assert doc.code == 6 and doc.json()["ok"] is False and "/d/one.bin" in doc.json()["problems"][0]
    for args in (["cat", "/d/one.bin"], ["export", "/d/one.bin", str(tmp_path / "x.bin")]):
        r = cli(*args)
        assert r.code == 6 and "/d/one.bin" in r.one_line_error(), args
    assert not (tmp_path / "x.bin").exists()
    chunk.unlink(missing_ok=True)
    shutil.copy2(chunk.parent.parent.parent / "saved-chunk", chunk)
    assert cli.ok("--json", "verify", "--full").json()["ok"]  # passes again once restored
    assert cli.ok("cat", "/d/one.bin").out


def test_rollback_detected(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", tmp_path / "v")
    cli.ok("create", "--kdf", "minimum")
    cli.ok("mkdir", "/a")
    cli.ok("mkdir", "/b")  # this device has now seen generation 2
    newest = tmp_path / "v" / "c" / "0000000000000002"
    newest.unlink()  # the provider serves the older history
    r = cli("ls")
    assert r.code == 7 and "rollback" in r.one_line_error()
    r = cli("mkdir", "/c")
    assert r.code == 7
    assert sorted(os.listdir(tmp_path / "v" / "c")) == ["0000000000000000", "0000000000000001"]


def test_ctrl_c_during_import_keeps_the_previous_generation(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", tmp_path / "v")
    cli.ok("create", "--kdf", "minimum")
    src = tmp_path / "many"
    for i in range(3000):
        d = src / f"d{i % 30}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}").write_bytes(os.urandom(2048))
    # last in the walk: a 64 GiB sparse file keeps the import reading for seconds after the first
    # file events, so the signal surely lands mid-import (a fast import must not finish first)
    with open(src / "zz-sparse", "wb") as f:
        f.truncate(64 << 30)
    proc = cli.popen("--json", "import", str(src))
    assert proc.stdout is not None
    for line in proc.stdout:
        if b'"event":"file"' in line:
            proc.send_signal(signal.SIGINT)
            break
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sigmavault: error: interrupted")
    assert gen(cli) == 0 and cli.ok("--json", "ls").json()["entries"] == []
    (src / "zz-sparse").unlink()
    cli.ok("import", str(src))  # and it can simply be run again
    assert gen(cli) == 1


def test_unexpected_errors_say_run_with_debug(vault: tuple[Cli, Path], monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    cli, _ = vault

    async def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(cmd_inspect, "log", broken)
    monkeypatch.setenv("SIGMAVAULT_HOME", str(cli.home))
    assert main.run(["--vault", str(cli.vault), "log"]) == 1
    err = capsys.readouterr().err
    assert err == "sigmavault: error: unexpected RuntimeError: a bug; run with --debug for details\n"
    assert main.run(["--vault", str(cli.vault), "log", "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("run with --debug for details\n")


def test_usage_errors(vault: tuple[Cli, Path]) -> None:
    cli, _ = vault
    for args in (["frobnicate"], ["ls", "--bogus"], ["unlock", "--for", "forever"], ["create", "--kdf", "weak"]):
        r = cli(*args)
        assert r.code == 2, args
        r.one_line_error()
