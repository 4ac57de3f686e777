"""export / restore / import through the real command: cp -r naming, honest byte counts, safe destinations,
and the lines a person reads (plurals, aligned ``ls -l``, what a backup changed)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from clitools import Cli

MIB = 1 << 20


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cli, Path]:
    base = tmp_path_factory.mktemp("export")
    cli = Cli(base / "home", base / "vault")
    cli.ok("create", "--kdf", "minimum", "--chunk-size", "1")
    src = base / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "big.bin").write_bytes(os.urandom(3 * MIB + 5))  # several pieces: the parallel write path
    for i in range(12):
        (src / "sub" / f"f{i}").write_bytes(os.urandom(150_000 + i))
    (src / "one").write_bytes(b"1")
    (src / "sub" / "ln").symlink_to("f0")
    os.chmod(src / "one", 0o4755)
    cli.ok("import", str(src))  # into "/", which exists: lands at /tree
    return cli, base


def tree_bytes(base: Path) -> int:
    return sum(p.stat().st_size for p in (base / "tree").rglob("*") if p.is_file() and not p.is_symlink())


def test_json_and_human_byte_totals_count_what_was_written(env: tuple[Cli, Path], tmp_path: Path) -> None:
    cli, base = env
    events = cli.ok("--json", "export", "/tree", str(tmp_path / "a")).events()
    done = events[-1]
    files = [e for e in events if e["event"] == "file"]
    assert done["bytes"] == sum(e["size"] for e in files) == tree_bytes(base)
    assert done["files"] == 14 and done["directories"] == 2
    human = cli.ok("export", "/tree", str(tmp_path / "b")).out
    assert f"exported 14 files ({tree_bytes(base) / MIB:.1f} MiB) to {tmp_path / 'b'}" in human
    restored = cli.ok("--json", "restore", "--at", "1", "/tree", str(tmp_path / "c")).events()[-1]
    assert restored["bytes"] == tree_bytes(base)
    assert "exported 1 file (1 B)" in cli.ok("export", "/tree/one", str(tmp_path / "one")).out


def test_export_names_like_cp(env: tuple[Cli, Path], tmp_path: Path) -> None:
    cli, base = env
    into = tmp_path / "existing"
    into.mkdir()
    done = cli.ok("--json", "export", "/tree/one", str(into)).events()[-1]
    assert (into / "one").read_bytes() == b"1" and done["destination"] == str(into / "one")
    again = cli("export", "/tree/one", str(into))
    assert again.code == 5 and "--force" in again.one_line_error()
    empty = tmp_path / "empty"
    empty.mkdir()
    cli.ok("export", "/tree/sub", str(empty))  # an empty directory becomes the copy
    assert (empty / "f0").stat().st_size == 150_000
    absent = tmp_path / "new" / "deeper"
    cli.ok("export", "/tree/sub", str(absent))
    assert sorted(os.listdir(absent)) == sorted(os.listdir(base / "tree" / "sub"))
    (absent / "mine").write_bytes(b"not in the vault")
    (absent / "f1").write_bytes(b"stale")
    refused = cli("export", "/tree/sub", str(absent))
    assert refused.code == 5 and "not empty" in refused.one_line_error() and "--force" in refused.err
    assert (absent / "f1").read_bytes() == b"stale"
    cli.ok("export", "--force", "/tree/sub", str(absent))  # merge: same names overwritten, the rest kept
    assert (absent / "f1").stat().st_size == 150_001 and (absent / "mine").read_bytes() == b"not in the vault"
    refused = cli("restore", "--at", "1", "/tree/sub", str(absent))
    assert refused.code == 5
    help_text = " ".join(cli.ok("export", "--help").out.split())
    assert "--force" in help_text and "overwriting files of the same name" in help_text


def test_special_bits_need_keep_special_bits(env: tuple[Cli, Path], tmp_path: Path) -> None:
    cli, _ = env
    cli.ok("export", "/tree/one", str(tmp_path / "plain"))
    cli.ok("export", "--keep-special-bits", "/tree/one", str(tmp_path / "kept"))
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "kept").stat().st_mode) == 0o4755


def test_force_export_over_a_symlink_left_by_an_earlier_export(tmp_path: Path) -> None:
    """The issue's scenario through the CLI: share/x was a symlink to a victim directory, now it is a
    directory of mode 0777 holding a file; export --force must not write into or chmod the victim."""
    cli = Cli(tmp_path / "home", tmp_path / "v")
    cli.ok("create", "--kdf", "minimum")
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o700)
    share = tmp_path / "share"
    share.mkdir()
    (share / "x").symlink_to(victim)
    cli.ok("import", str(share))
    out = tmp_path / "out"
    cli.ok("export", "/share", str(out))
    assert os.readlink(out / "x") == str(victim)
    (share / "x").unlink()
    (share / "x").mkdir()
    (share / "x" / "f").write_bytes(b"payload")
    os.chmod(share / "x", 0o777)
    cli.ok("backup", str(share))
    cli.ok("export", "--force", "/share", str(out))
    assert os.listdir(victim) == [] and stat.S_IMODE(victim.stat().st_mode) == 0o700
    assert not (out / "x").is_symlink() and (out / "x" / "f").read_bytes() == b"payload"


def test_import_names_like_cp(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", tmp_path / "v")
    cli.ok("create", "--kdf", "minimum")
    src = tmp_path / "photos"
    src.mkdir()
    (src / "a.jpg").write_bytes(b"a")
    cli.ok("import", str(src), "--to", "/pics")  # absent: /pics becomes the copy
    assert cli.ok("ls", "/pics").out.split() == ["a.jpg"]
    cli.ok("import", str(src), "--to", "/pics")  # now a directory: lands inside it
    assert cli.ok("ls", "/pics").out.split() == ["a.jpg", "photos/"]
    cli.ok("import", str(src / "a.jpg"), "--to", "/single.jpg")
    assert cli.ok("--json", "ls", "/single.jpg").json()["type"] == "file"
    cli.ok("import", str(src), "--to", "/dir/")  # a trailing slash: a directory to put it in
    assert cli.ok("ls", "/dir").out.split() == ["photos/"]


def test_unchanged_backup_with_symlinks_makes_no_generation_and_says_what_changed(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", tmp_path / "v")
    cli.ok("create", "--kdf", "minimum")
    src = tmp_path / "data"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(b"content")
    (src / "d" / "ln").symlink_to("f")
    (src / "abs").symlink_to("/etc/hostname")
    first = cli.ok("backup", str(src)).out
    assert "backed up 1 file (1 new, 0 changed, 0 unchanged), 2 directories, 2 symlinks" in first
    assert first.rstrip().endswith("→ generation 1")
    events = cli.ok("--json", "backup", str(src)).events()
    again = events[-1]
    assert again["generation"] == again["previous_generation"] == 1 and again["unchanged"] == 1
    assert sum(e["size"] for e in events if e["event"] == "file") == again["bytes"] == len(b"content")
    assert "nothing changed, still generation 1" in cli.ok("backup", str(src)).out
    (src / "d" / "new").write_bytes(b"n")
    changed = cli.ok("backup", str(src)).out
    assert "2 files (1 new, 0 changed, 1 unchanged)" in changed and "→ generation 2" in changed
    assert cli.ok("diff", "1", "2").out.split("\n")[0] == "+ /data/d/new"
    assert len(cli.ok("diff", "1", "2").out.strip().splitlines()) == 1  # no symlink listed as M


def test_ls_long_columns_line_up_and_rm_of_a_directory_says_use_r(env: tuple[Cli, Path]) -> None:
    cli, _ = env
    for listing in ("/tree/sub", "/tree"):  # 146.5 KiB beside 2 B; 3.0 MiB beside 1 B and 0 B
        lines = cli.ok("ls", "-l", listing).out.splitlines()
        dates = {m.start() for line in lines if (m := re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", line))}
        assert len(dates) == 1 and len(lines) > 2, lines
    r = cli("rm", "/tree/sub")
    assert r.code == 2 and "use -r" in r.one_line_error()
    assert cli.ok("--json", "ls", "/tree/sub").json()["type"] == "dir"


def test_delete_with_a_dry_run_first(env: tuple[Cli, Path], tmp_path: Path) -> None:
    cli, _ = env
    out = tmp_path / "out"
    cli.ok("export", "/tree/sub", str(out))
    (out / "stray").write_bytes(b"s")
    dry = cli.ok("export", "--force", "--delete", "--dry-run", "/tree/sub", str(out)).out
    assert f"would remove {out / 'stray'}" in dry and "nothing was changed" in dry and (out / "stray").exists()
    done = cli.ok("--json", "export", "--force", "--delete", "/tree/sub", str(out)).events()
    assert [e["path"] for e in done if e["event"] == "delete"] == [str(out / "stray")]
    assert done[-1]["removed"] == 1 and not (out / "stray").exists() and (out / "f0").exists()
    assert cli("export", "--dry-run", "/tree/sub", str(out)).code == 2


@pytest.mark.slow
def test_a_1200_level_path_through_the_command(tmp_path: Path) -> None:
    """No RecursionError ("unexpected", exit 1) anywhere: import, ls, export, backup, diff.

    Slow: six commands on a 1200-level tree (the library test covers the walks quickly)."""
    import subprocess

    cli = Cli(tmp_path / "home", tmp_path / "v")
    cli.ok("create", "--kdf", "minimum")
    src = tmp_path / "src"
    src.mkdir()
    fd = os.open(src, os.O_RDONLY)
    for _ in range(1200):
        os.mkdir("d", dir_fd=fd)
        fd, old = os.open("d", os.O_RDONLY, dir_fd=fd), fd
        os.close(old)
    os.close(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    os.close(fd)
    deep = "/".join(["d"] * 1200)
    try:
        cli.ok("import", str(src))
        assert cli.ok("ls", f"/src/{deep}").out.split() == ["leaf"]
        cli.ok("export", "/src", str(tmp_path / "out"))
        cli.ok("backup", str(tmp_path / "src"), "--to", "/again")
        assert cli.ok("diff", "1", "2").out.splitlines()[0] == "+ /again/"
    finally:
        for p in (src, tmp_path / "out"):
            subprocess.run(["rm", "-rf", str(p)], check=True)  # pytest's own cleanup would recurse
