"""``sigmavault prune --max-unused`` repacks packs whose unused share is over the limit, through the real
command on a local vault (docs/format.md, "Repacking"; the rewrite protocol under the same epoch).

A vault of many small files over four generations, most of them forgotten or removed, so its data
and page packs are mostly unused. ``--dry-run`` writes nothing and says what it would repack;
``--max-unused 100%`` repacks nothing; a bad value is a usage error that changes nothing. A real run
moves the live blobs and directory pages out, lands a map (an ``audit`` ``repack`` event), deletes
the old packs with the other garbage, and every kept generation restores byte for byte;
``verify --full`` is clean and the stored bytes shrink by the old packs less the new ones. Killed
with SIGKILL in the middle of the repack (after its second new pack, not after a sleep), a second
prune finishes and nothing kept is lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from clitools import Cli, Run, env_for
from test_cli_rewrite import KILLER, prune_past_the_dead_lease, same_trees

KEPT = (3, 4)


def objects(vault: Path) -> dict[str, int]:
    """Every ``o/`` object's size, by name."""
    return {str(p.relative_to(vault)): p.stat().st_size for p in (vault / "o").rglob("*")
            if p.is_file() and not p.name.startswith(".")}


def stored(vault: Path) -> dict[str, bytes]:
    """Every object file under the vault (what a run that writes nothing leaves as it was)."""
    return {str(p.relative_to(vault)): p.read_bytes() for p in vault.rglob("*") if p.is_file()}


@pytest.fixture()
def sparse(tmp_path: Path) -> tuple[Cli, Path]:
    """Generations 1, 2: forty small files each in their own folder; 3: most of them removed, 4: one more; then
    ``forget --keep-last 2`` (its record is generation 5): the kept ones use few of the packs' members."""
    cli = Cli(tmp_path / "home", tmp_path / "v")
    cli.ok("create", "--kdf", "minimum", "--chunk-size", "1")
    for part in ("a", "b"):
        src = tmp_path / "src" / part
        (src / "deep").mkdir(parents=True)
        for i in range(40):
            (src / ("deep" if i % 4 == 0 else ".") / f"{part}{i:02d}.bin").write_bytes(os.urandom(3000 + 97 * i))
        cli.ok("import", str(src), "--to", f"/t/{part}")  # 1, 2
    cli.ok("rm", *[f"/t/a/a{i:02d}.bin" for i in range(40) if i % 4 and i % 5],
           *[f"/t/b/b{i:02d}.bin" for i in range(40) if i % 4 and i % 3])  # 3: 16 and 20 left
    cli.ok("rm", "/t/a/deep/a00.bin")  # 4
    cli.ok("forget", "--keep-last", "2")  # 5
    return cli, tmp_path


def last(run: Run) -> dict[str, Any]:
    """The result of a ``--json`` prune (after its progress events)."""
    return run.events()[-1]  # type: ignore[no-any-return]


def restore_kept(cli: Cli, where: Path) -> None:
    for g in KEPT:
        cli.ok("restore", "--at", str(g), "/t", str(where / str(g)))


def test_prune_repacks_mostly_unused_packs_and_keeps_every_generation(sparse: tuple[Cli, Path]) -> None:
    cli, tmp = sparse
    vault = tmp / "v"
    restore_kept(cli, tmp / "before")
    before = stored(vault)

    for bad in ("abc", "-5%", "101%"):
        r = cli("prune", "--max-unused", bad)
        assert r.code == 2 and "--max-unused" in r.one_line_error()
    none = last(cli.ok("--json", "prune", "--max-unused", "100%", "--dry-run"))
    assert none["packs"]["over_max_unused"] == 0 and none["packs"]["repacked"] == 0
    dry = last(cli.ok("--json", "prune", "--max-unused", "5%", "--dry-run"))
    assert dry["dry_run"] and dry["packs"]["repacked"] >= 2 and dry["packs"]["unused_bytes"] > 40 * 3000
    human = cli.ok("prune", "--max-unused", "5%", "--dry-run").out
    assert f"would repack {dry['packs']['repacked']} packs ({dry['packs']['over_max_unused']} of" in human
    assert stored(vault) == before, "a dry run wrote something"

    old = objects(vault)
    run = cli.ok("--json", "prune", "--max-unused", "5%")
    assert {"event": "progress", "stage": "repack", "done": 3, "total": 3} in run.events()  # generations 3, 4, 5
    done = last(run)
    packs = done["packs"]
    assert packs["repacked"] == dry["packs"]["repacked"] and packs["repacked_bytes"] > packs["written_bytes"] > 0
    new = objects(vault)
    written = set(new) - set(old)
    assert sum(new[n] for n in written) == packs["written_bytes"]
    gone = set(old) - set(new)
    assert sum(old[n] for n in gone) == done["deleted_bytes"] >= packs["repacked_bytes"]
    assert sum(new.values()) == sum(old.values()) - done["deleted_bytes"] + packs["written_bytes"]
    assert done["after"]["bytes"] == sum(new.values()) and done["after"]["bytes"] < done["before"]["bytes"]

    restore_kept(cli, tmp / "after")
    for g in KEPT:
        same_trees(tmp / "before" / str(g), tmp / "after" / str(g))
    cli.ok("verify", "--full")
    events = cli.ok("--json", "audit").json()["events"]
    repack = [e for e in events if e["event"] == "repack"]
    assert len(repack) == 1 and repack[0]["counts"]["packs"] == packs["repacked"]
    assert repack[0]["counts"]["blobs"] == 16 + 20  # every file generation 3 holds (4's are among them)
    assert "repacked: moved" in cli.ok("audit").out
    assert [e for e in events if e["event"] == "prune"][-1]["counts"]["repacked"] == packs["repacked"]

    again = last(cli.ok("--json", "prune", "--max-unused", "5%"))
    assert again["packs"]["over_max_unused"] == again["packs"]["repacked"] == again["deleted"] == 0
    assert last(cli.ok("--json", "prune", "--max-unused", "100%"))["packs"]["repacked"] == 0
    restore_kept(cli, tmp / "again")
    for g in KEPT:
        same_trees(tmp / "before" / str(g), tmp / "again" / str(g))


def test_a_repack_killed_midway_is_finished_by_the_next_prune(sparse: tuple[Cli, Path],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cli, tmp = sparse
    vault = tmp / "v"
    restore_kept(cli, tmp / "before")
    old = objects(vault)
    commits = sorted(os.listdir(vault / "c"))  # nothing writes o/ before the map lands but the repack's copies
    proc = subprocess.run([sys.executable, "-c", KILLER, "2", "0", "--vault", str(vault), "prune"],
                          env=env_for(cli.home), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)
    assert len(set(objects(vault)) - set(old)) == 2 and set(old) <= set(objects(vault))  # nothing deleted
    assert sorted(os.listdir(vault / "c")) == commits  # no map landed
    restore_kept(cli, tmp / "meanwhile")
    for g in KEPT:
        same_trees(tmp / "before" / str(g), tmp / "meanwhile" / str(g))

    prune_past_the_dead_lease(cli, monkeypatch)  # the killed run's leases expire; it repacks and deletes
    left = objects(vault)
    assert last(cli.ok("--json", "prune", "--dry-run"))["unreferenced"] == 0
    assert len(set(old) - set(left)) >= 2  # the repacked packs went
    restore_kept(cli, tmp / "after")
    for g in KEPT:
        same_trees(tmp / "before" / str(g), tmp / "after" / str(g))
    cli.ok("verify", "--full")
