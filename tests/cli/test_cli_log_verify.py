"""``log`` and ``verify`` through the real command: what each generation changed and who wrote it;
every problem printed with the vault path it affects, notes for what is not damage, exit code 6."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from clitools import PASS, Cli, object_files

import sigmavault
from sigmavault.engine.format.commits import Commit, commit_name, object_hash, seal_commit


def test_log_shows_what_each_generation_changed_and_its_client(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", tmp_path / "vault")
    cli.ok("create", "--kdf", "minimum", "--chunk-size", "1")
    (tmp_path / "a.txt").write_bytes(b"a" * 3000)
    (tmp_path / "b.bin").write_bytes(os.urandom(20_000))
    cli.ok("mkdir", "/docs")
    cli.ok("import", str(tmp_path / "a.txt"), str(tmp_path / "b.bin"), "--to", "/docs")
    cli.ok("rm", "/docs/a.txt")
    gens = cli.ok("--json", "log").json()["generations"]
    assert [(g["added"], g["modified"], g["removed"], g["bytes"]) for g in gens] == [
        (0, 0, 1, 0), (2, 0, 0, 23_000), (1, 0, 0, 0), (0, 0, 0, 0)]
    assert len({g["client"] for g in gens}) == 1 and len(gens[0]["client"]) == 8
    lines = cli.ok("log", "-n", "2").out.splitlines()
    assert len(lines) == 2
    assert "  +0 ~0 -1  " in lines[0]
    assert "+2 ~0 -0" in lines[1] and "KiB" in lines[1] and f"client {gens[0]['client']}" in lines[1]


def test_verify_prints_each_problem_with_its_path_and_exits_6(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    cli = Cli(tmp_path / "home", vault)
    cli.ok("create", "--kdf", "minimum", "--chunk-size", "1")
    (tmp_path / "big.bin").write_bytes(os.urandom(1_048_576))  # exactly one full chunk: its own object
    cli.ok("import", str(tmp_path / "big.bin"), "--to", "/")
    r = cli.ok("verify")
    assert r.out.splitlines()[0].startswith("checked 2 generations (head 1): 1 files")
    assert r.out.splitlines()[-1] == "no problems found"
    assert "read and authenticated" in cli.ok("verify", "--full").out
    (vault / "o" / "ab").mkdir(exist_ok=True)
    (vault / "o" / "ab" / ("ab" * 32)).write_bytes(b"junk" * 100)
    [chunk] = [p for p in object_files(vault) if p.stat().st_size > 1_048_576]
    chunk.unlink()
    r = cli("verify")
    assert r.code == 6
    assert f"PROBLEM /big.bin: object o/{chunk.name} is missing" in r.out.splitlines()
    assert f"NOTE object o/{'ab' * 32} is not referenced by any generation" in r.out.splitlines()
    assert "verify found 1 problem(s): /big.bin: object" in r.one_line_error()
    full = cli("--json", "verify", "--full")
    assert full.code == 6
    doc = full.json()
    assert doc["ok"] is False and doc["generations"] == 2
    assert sorted(doc["problems"]) == sorted([
        f"/big.bin: object o/{chunk.name} is missing from the storage",
        f"object o/{'ab' * 32} (referenced by no generation) is damaged: it opens as no kind of object"])


async def test_restore_and_diff_refuse_a_forked_old_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vault = tmp_path / "vault"
    cli = Cli(tmp_path / "home", vault)
    cli.ok("create", "--kdf", "minimum", "--chunk-size", "1")
    for i in range(3):
        (tmp_path / f"f{i}").write_bytes(f"version {i}".encode())
        cli.ok("import", str(tmp_path / f"f{i}"), "--to", "/")
    # the provider (here: anyone with the keys) replaces c/2 by another valid generation 2
    monkeypatch.setenv("SIGMAVAULT_HOME", str(cli.home))
    async with await sigmavault.open(str(vault), passphrase=PASS) as v:
        h = v._history
        parent = object_hash((vault / "c" / commit_name(1)[2:]).read_bytes())
        c = Commit(h.vault_id, 2, parent, v._store.epoch, h.keystore_gen, (), h.client_id, 1_700_000_000)
        forked = seal_commit(v._store.sealer, c)
    (vault / "c" / commit_name(2)[2:]).write_bytes(forked)
    r = cli("restore", "--at", "2", "/", str(tmp_path / "out"))
    assert r.code == 7 and "commit 2 does not belong to the verified history" in r.one_line_error()
    assert not (tmp_path / "out").exists()
    assert cli("diff", "2", "3").code == 7
    assert cli("log").code == 7
    report = cli("--json", "verify")
    assert report.code == 6 and any("generation 2 and older" in p for p in report.json()["problems"])
    assert cli("cat", "/f2").out == "version 2"  # the verified head still reads
