"""The CLI on a dispersed vault: repeated --vault, create --needed, a lost place, repair, places."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

from clitools import PASS, Run, env_for, make_tree


def cli(home: Path, vaults: list[Path], *args: str) -> Run:
    cmd = [sys.executable, "-m", "sigmavault"]
    for v in vaults:
        cmd += ["--vault", str(v)]
    p = subprocess.run(
        [*cmd, *args],
        env=env_for(home, PASS),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=300,
    )
    return Run(p.returncode, p.stdout, p.stderr)


def same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    return not (cmp.left_only or cmp.right_only or cmp.diff_files) and all(
        same_tree(a / d, b / d) for d in cmp.common_dirs
    )


def test_dispersed_vault_through_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    places = [tmp_path / f"place{i}" for i in range(3)]
    r = cli(home, places, "create", "--kdf", "minimum", "--chunk-size", "1", "--needed", "2")
    assert r.code == 0, r.err
    assert "any 2 of 3 places rebuild it; it may lose 1 place(s)" in r.out
    src = make_tree(tmp_path / "src")
    assert cli(home, places, "import", str(src)).code == 0
    shutil.rmtree(places[1])  # one place lost outright
    out = tmp_path / "out"
    r = cli(home, [places[2], places[1], places[0]], "export", "/docs", str(out))
    assert r.code == 0, r.err
    assert same_tree(src, out)
    warnings = [line for line in r.err.splitlines() if line.startswith("sigmavault: warning: degraded")]
    assert len(warnings) == 1 and "place" in warnings[0], r.err
    r = cli(home, places, "--json", "places")
    assert r.code == 0, r.err
    rows = r.json()["places"]
    assert sorted(row["shards_missing"] for row in rows)[-1] > 0
    r = cli(home, places, "--json", "repair")
    assert r.code == 0, r.err
    assert r.json()["shards_written"] > 0 and r.json()["unrecoverable"] == []
    r = cli(home, places, "--json", "repair")
    assert r.code == 0 and r.json()["clean"] is True, r.out
    assert all(row["shards_missing"] == 0 for row in cli(home, places, "--json", "places").json()["places"])
    r = cli(home, [places[1], places[2]], "verify", "--full")  # the rebuilt place carries the vault
    assert r.code == 0, r.err


def test_two_places_down_is_one_clean_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    places = [tmp_path / f"place{i}" for i in range(3)]
    assert cli(home, places, "create", "--kdf", "minimum", "--chunk-size", "1").code == 0
    before = cli(home, places, "--json", "info")
    for p in places[1:]:
        shutil.rmtree(p)
        p.write_bytes(b"")  # a file where the folder was: the place answers nothing
    src = make_tree(tmp_path / "src")
    r = cli(home, places, "import", str(src))
    assert r.code == 9, (r.code, r.err)  # BackendUnavailable
    line = r.one_line_error()
    assert "place" in line
    r = cli(home, [places[0]], "info")
    assert r.code != 0  # one place alone never opens a dispersed vault
    assert before.code == 0


def test_layouts_that_lose_nothing_are_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    places = [tmp_path / f"place{i}" for i in range(3)]
    r = cli(home, places, "create", "--kdf", "minimum", "--needed", "3")
    assert r.code == 2 and "tolerates losing no place" in r.one_line_error()
    r = cli(home, places[:1], "create", "--kdf", "minimum", "--needed", "1")
    assert r.code == 2 and "--needed is for a dispersed vault" in r.one_line_error()


def test_places_replace_moves_a_lost_place(tmp_path: Path) -> None:
    home = tmp_path / "home"
    places = [tmp_path / f"place{i}" for i in range(3)]
    assert cli(home, places, "create", "--kdf", "minimum", "--chunk-size", "1").code == 0
    src = make_tree(tmp_path / "src")
    assert cli(home, places, "import", str(src)).code == 0
    shutil.rmtree(places[0])
    new = tmp_path / "new-place"
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "k").mkdir()
    (tmp_path / "busy" / "k" / "0000000000000001").write_bytes(b"x")
    r = cli(home, places, "places", "replace", str(places[0]), str(tmp_path / "busy"))
    assert r.code == 2 and "not empty" in r.one_line_error()
    r = cli(home, places, "--json", "places", "replace", str(places[0]), str(new))
    assert r.code == 0, r.err
    assert r.json()["shards_written"] > 0
    shutil.rmtree(places[1])  # the new place now carries the vault with the third
    out = tmp_path / "out"
    r = cli(home, [new, places[2]], "export", "/docs", str(out))
    assert r.code == 0, r.err
    assert same_tree(src, out)


def test_destroy_shreds_every_places_keystores_then_empties_every_place(tmp_path: Path) -> None:
    home = tmp_path / "home"
    places = [tmp_path / f"place{i}" for i in range(3)]
    assert cli(home, places, "create", "--kdf", "minimum", "--needed", "2").code == 0
    assert cli(home, places, "import", str(make_tree(tmp_path / "src")), "--to", "/docs").code == 0
    refused = cli(home, places, "destroy")
    assert refused.code == 2 and "--yes-destroy-vault" in refused.err
    assert all(list((p / "k").iterdir()) for p in places)  # nothing went without the flag
    r = cli(home, places, "--json", "destroy", "--yes-destroy-vault")
    assert r.code == 0, r.err
    assert r.events()[-1]["keystores"] == 3  # one replica on each place
    left = [f for p in places for f in p.rglob("*") if f.is_file()]
    assert left == []
    gone = cli(home, places, "ls", "/")
    assert gone.code != 0 and "Traceback" not in gone.err
