"""The guard through the real command: a clean backup prints nothing suspicious; encrypting part of
a tree in place (or renaming to a new extension) still commits but marks the generation suspect in
its authenticated meta (one warning line, an ``anomaly`` event, ``log`` shows it on every client and
a new device); ``forget`` refuses to drop the last clean generation before it unless ``--force``;
``guard clear`` and ``guard tune`` are records every client sees."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from clitools import Cli


def text_tree(root: Path, n: int = 40) -> Path:
    """``n`` plain-text files (low entropy) of a few KiB each, in two folders."""
    for i in range(n):
        d = root / "docs" / f"part{i % 2}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"note{i:03}.txt").write_text(f"note {i}\n" + "the quick brown fox jumps over the lazy dog\n" * 60)
    return root / "docs"


def encrypt(files: list[Path], rename: bool = False) -> None:
    """What ransomware does: replace each file's content with random bytes (optionally renamed)."""
    for f in files:
        data = os.urandom(f.stat().st_size + 16)
        if rename:
            f.unlink()
            f = f.with_name(f.name + ".locked")
        f.write_bytes(data)


def fresh(tmp_path: Path) -> tuple[Cli, Path]:
    cli = Cli(tmp_path / "home", tmp_path / "vault")
    cli.ok("create", "--kdf", "minimum")
    return cli, text_tree(tmp_path / "src")


def marked(tmp_path: Path) -> tuple[Cli, Path, int]:
    """A vault with one clean backup, then one of a tree with 15 % of its files encrypted: its generation."""
    cli, tree = fresh(tmp_path)
    cli.ok("backup", str(tree))
    encrypt(notes(tree)[:6])
    cli.ok("backup", str(tree))
    return cli, tree, cli.ok("--json", "guard", "status").json()["suspect"][0]["generation"]


def notes(tree: Path) -> list[Path]:
    return sorted(tree.rglob("*.txt"))


def suspicious(err: str) -> list[str]:
    return [line for line in err.splitlines() if "suspicious" in line]


def test_clean_runs_print_nothing_suspicious_and_record_their_counts(tmp_path: Path) -> None:
    cli, tree = fresh(tmp_path)
    r = cli.ok("backup", str(tree))
    assert suspicious(r.err) == [] and suspicious(r.out) == []
    (notes(tree)[0]).write_text("edited\n" * 100)  # a benign edit
    (tree / "part0" / "new.bin").write_bytes(os.urandom(50_000))  # new random files never count
    r = cli.ok("--json", "backup", str(tree))
    assert suspicious(r.err) == [] and all(e.get("event") != "anomaly" for e in r.events())
    assert r.events()[-1]["suspect"] is False
    log = cli.ok("--json", "log").json()["generations"]
    assert [g["suspect"] for g in log] == [False, False, False]  # two backups and the empty start
    status = cli.ok("--json", "guard", "status").json()
    assert status["suspect"] == [] and status["baseline_runs"] == 2 and status["mode"] == "fixed"


def test_encryption_in_place_is_marked_and_kept_across_clients_and_a_new_device(tmp_path: Path) -> None:
    cli, tree = fresh(tmp_path)
    cli.ok("backup", str(tree))
    clean = cli.ok("--json", "log").json()["generations"][0]["generation"]
    encrypt(notes(tree)[:4])  # 10 % of the files
    r = cli("--json", "backup", str(tree))
    assert r.code == 0, r.err  # a suspect run still commits
    warn = suspicious(r.err)
    assert len(warn) == 1 and "warning: suspicious change: generation" in warn[0] and "near-random" in warn[0]
    anomaly = [e for e in r.events() if e.get("event") == "anomaly"]
    assert len(anomaly) == 1 and anomaly[0]["counts"]["jumped"] == 4
    bad = anomaly[0]["generation"]
    assert bad == clean + 1 and r.events()[-1]["suspect"] is True
    # the mark lives in the sealed commit: another client (its own home, no cache) and a new device see it
    for other in (Cli(tmp_path / "home2", tmp_path / "vault"), Cli(tmp_path / "home3", tmp_path / "vault")):
        log = other.ok("--json", "log").json()["generations"]
        assert log[0]["generation"] == bad and log[0]["suspect"] is True and "near-random" in log[0]["reasons"][0]
        assert log[1]["suspect"] is False
        assert "SUSPECT" in other.ok("log").out
    st = cli.ok("--json", "guard", "status").json()
    assert [s["generation"] for s in st["suspect"]] == [bad] and st["protected"] == [clean]


def test_renames_to_a_new_extension_are_marked(tmp_path: Path) -> None:
    cli, tree = fresh(tmp_path)
    cli.ok("backup", str(tree))
    encrypt(notes(tree)[:8], rename=True)  # 20 %
    r = cli.ok("backup", str(tree))
    warn = suspicious(r.err)
    assert len(warn) == 1 and "renamed to a new extension" in warn[0], r.err


def test_mass_deletion_is_marked_even_though_the_vault_keeps_the_files(tmp_path: Path) -> None:
    cli, tree = fresh(tmp_path)
    cli.ok("backup", str(tree))
    shutil.rmtree(tree / "part1")  # half the files
    r = cli.ok("backup", str(tree))
    warn = suspicious(r.err)
    assert len(warn) == 1 and "deleted" in warn[0], r.err
    assert cli.ok("--json", "log").json()["generations"][0]["suspect"] is True


def test_forget_refuses_the_last_clean_generation_before_a_suspect_one_unless_forced(tmp_path: Path) -> None:
    cli, tree = fresh(tmp_path)
    cli.ok("backup", str(tree))  # generation 1: the last clean one
    encrypt(notes(tree)[:10])
    cli.ok("backup", str(tree))  # 2: suspect
    encrypt(notes(tree)[10:20])
    cli.ok("backup", str(tree))  # 3: suspect (slow encryption goes on)
    before = cli.ok("--json", "log").json()["generations"]
    r = cli("forget", "--keep-last", "1")
    assert r.code == 2, (r.code, r.err)
    line = r.one_line_error()
    assert "generation 1" in line and "--force" in line and "suspect generation 2" in line
    assert cli.ok("--json", "log").json()["generations"] == before  # nothing forgotten
    assert cli("forget", "--keep-last", "1", "--dry-run").code == 2
    assert cli("forget", "--keep-last", "2").code == 2  # keeps 3 and 2, would drop 1
    r = cli.ok("--json", "forget", "--keep-last", "1", "--force")
    assert 1 in r.json()["forgotten"]
    gens = [g["generation"] for g in cli.ok("--json", "log").json()["generations"]]
    assert 1 not in gens


def test_clear_and_tune_are_records_every_client_sees(tmp_path: Path) -> None:
    cli, tree, bad = marked(tmp_path)
    assert cli("guard", "clear", str(bad + 5)).code == 2
    r = cli.ok("--json", "guard", "clear", str(bad))
    assert r.json()["cleared"] == bad
    other = Cli(tmp_path / "home2", tmp_path / "vault")
    st = other.ok("--json", "guard", "status").json()
    assert st["suspect"] == [] and st["cleared"] == [{"generation": bad, "by": r.json()["record"]}]
    assert all(not g["suspect"] for g in other.ok("--json", "log").json()["generations"])
    cli.ok("forget", "--keep-last", "1")  # no mark stands: nothing is protected
    # tune: a higher threshold lets the same change pass, on every client
    assert cli("guard", "tune", "--set", "nonsense=3").code == 2
    other.ok("guard", "tune", "--set", "jumped_permille=500", "--set", "jumped_min=30")
    assert cli.ok("--json", "guard", "status").json()["thresholds"]["jumped_permille"] == 500
    encrypt(notes(tree)[6:12])
    r = cli.ok("backup", str(tree))
    assert suspicious(r.err) == []


def test_the_baseline_is_in_the_vault_and_survives_a_new_device(tmp_path: Path) -> None:
    cli, tree = fresh(tmp_path)
    for i in range(6):
        notes(tree)[i].write_text(f"day {i}\n" * 50)
        cli.ok("backup", str(tree))
    st = cli.ok("--json", "guard", "status").json()
    assert st["baseline_runs"] == 6 and st["mode"] == "baseline"
    device = Cli(tmp_path / "new-device", tmp_path / "vault")  # no local state at all
    assert device.ok("--json", "guard", "status").json() == st
    # the new device scores against it: its first backup (a fresh cache) of an encrypted tree is flagged
    encrypt(notes(tree)[:8])
    r = device.ok("backup", str(tree))
    assert len(suspicious(r.err)) == 1 and "z=" in suspicious(r.err)[0], r.err


def test_the_storage_cannot_strip_a_mark(tmp_path: Path) -> None:
    cli, tree, bad = marked(tmp_path)
    (tree / "later.txt").write_text("later\n")
    cli.ok("backup", str(tree))
    c = tmp_path / "vault" / "c"
    (c / f"{bad:016x}").write_bytes((c / f"{bad - 1:016x}").read_bytes())  # an older, unmarked commit in its place
    r = Cli(tmp_path / "home2", tmp_path / "vault")("log")
    assert r.code in (6, 7), r.err  # integrity or rollback: never a silently clean history
    (c / f"{bad:016x}").unlink()  # or withheld altogether: a rollback to a device that has seen the chain
    assert cli("log").code == 7  # (a device that never saw it is shown the history up to the gap: CRYPTO.md §5.3)


def test_slow_encryption_under_the_per_run_minimum_is_marked_once_it_adds_up(tmp_path: Path) -> None:
    cli, tree = fresh(tmp_path)  # 40 files: the per-run minimum is 3 files and 2 %
    cli.ok("backup", str(tree))
    files = notes(tree)
    for i in range(2):  # one file a run: each run alone is under the minimum
        encrypt([files[i]])
        r = cli.ok("backup", str(tree))
        assert suspicious(r.err) == []
    encrypt([files[2]])  # the third file over three runs: 3 files, 7.5 %
    r = cli.ok("--json", "backup", str(tree))
    [warn] = suspicious(r.err)
    assert "3 of 40 existing files (7.5%) rewritten to near-random content over the last 3 runs (slow encryption" \
        in warn
    [event] = [e for e in r.events() if e.get("event") == "anomaly"]
    assert event["counts"]["jumped"] == 1
    encrypt([files[3]])  # the mark starts the count over
    assert suspicious(cli.ok("backup", str(tree)).err) == []
