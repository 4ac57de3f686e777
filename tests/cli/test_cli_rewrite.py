"""``sigmavault rekey --rewrite`` through the real command, on a local vault (docs/format.md,
"Rewriting under the new epoch"; models/rewrite.py).

What it must do: every kept generation still restores byte for byte, ``log``, ``diff`` and
``verify --full`` work, and after ``prune`` no object sealed under the old epoch is left (each left
object's header says the new epoch, every old one is deleted); a revoked passphrase no longer
opens (exit 3); killed with SIGKILL in the middle of the rewrite (after a set number of object
writes, not after a sleep), a second run finishes it without a new epoch and nothing is lost.
"""

from __future__ import annotations

import asyncio
import filecmp
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from clitools import PASS, Cli, env_for

import sigmavault
from sigmavault.engine.repo.leases import DEFAULT_TTL

OTHER = "someone else's passphrase"
GENS = range(1, 7)


def header_epochs(vault: Path) -> dict[str, int]:
    """Every ``o/`` object's header epoch (``01 01 ‖ u32 epoch``), by path."""
    out = {}
    for p in (vault / "o").rglob("*"):
        if p.is_file() and not p.name.startswith("."):
            head = p.read_bytes()[:6]
            assert head[:2] == b"\x01\x01"
            out[str(p.relative_to(vault))] = int.from_bytes(head[2:6], "big")
    return out


@pytest.fixture()
def history(tmp_path: Path) -> tuple[Cli, Path]:
    """A vault of six generations (see :func:`six_generations`); returns the CLI and the local folder."""
    cli = Cli(tmp_path / "home", tmp_path / "v")
    cli.ok("create", "--kdf", "minimum", "--chunk-size", "1")
    six_generations(cli, tmp_path)
    return cli, tmp_path


def six_generations(cli: Cli, tmp_path: Path) -> None:
    """Generations 1-6 in a new vault: import, remove, import anew, add, rename, remove, with full chunks
    and small files, under ``/t``."""
    src = tmp_path / "src"
    (src / "d" / "e").mkdir(parents=True)
    (src / "big.bin").write_bytes(os.urandom(2_600_000))
    (src / "d" / "small.txt").write_bytes(b"small file\n")
    (src / "d" / "e" / "mid.bin").write_bytes(os.urandom(70_000))
    cli.ok("import", str(src), "--to", "/t")  # 1
    (src / "d" / "small.txt").write_bytes(b"changed\n" * 100)
    cli.ok("rm", "/t/d/small.txt")  # 2
    cli.ok("import", str(src / "d" / "small.txt"), "--to", "/t/d/small.txt")  # 3
    (tmp_path / "more.bin").write_bytes(os.urandom(1_300_000))
    cli.ok("import", str(tmp_path / "more.bin"), "--to", "/t/more.bin")  # 4
    cli.ok("mv", "/t/d/e/mid.bin", "/t/mid-moved.bin")  # 5
    cli.ok("rm", "/t/d/small.txt")  # 6


def log(cli: Cli) -> dict[int, tuple[int, int, int]]:
    """``log``: each generation's added, modified and removed counts."""
    return {e["generation"]: (e["added"], e["modified"], e["removed"])
            for e in cli.ok("--json", "log").json()["generations"]}


def restore_all(cli: Cli, where: Path, gens: range) -> None:
    for g in gens:
        cli.ok("restore", "--at", str(g), "/t", str(where / str(g)))


def same_trees(a: Path, b: Path) -> None:
    cmp = filecmp.dircmp(a, b)
    assert not cmp.left_only and not cmp.right_only and not cmp.funny_files, (a, b)
    for name in cmp.common_files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for sub in cmp.common_dirs:
        same_trees(a / sub, b / sub)


def test_rewrite_keeps_every_generation_and_prune_leaves_no_old_epoch(history: tuple[Cli, Path]) -> None:
    cli, tmp = history
    vault = tmp / "v"
    restore_all(cli, tmp / "before", GENS)
    diffs = {(a, b): cli.ok("--json", "diff", str(a), str(b)).out for a, b in ((1, 3), (3, 5), (1, 6))}
    logged = log(cli)
    old = header_epochs(vault)
    assert set(old.values()) == {1}

    done = cli.ok("--json", "rekey", "--rewrite").json()
    assert done["epoch"] == 2 and done["record"] == 7
    rw = done["rewrite"]
    assert rw["epoch"] == 2 and rw["record"] == 8 and rw["generations"] == 7  # 1..7 (0, the empty root, has no pages)
    assert rw["blobs"] >= 6 and rw["directories"] >= 4

    restore_all(cli, tmp / "after", GENS)
    for g in GENS:
        same_trees(tmp / "before" / str(g), tmp / "after" / str(g))
    for (a, b), out in diffs.items():
        assert cli.ok("--json", "diff", str(a), str(b)).out == out
    after = log(cli)
    assert sorted(after) == list(range(9)) and {g: after[g] for g in logged} == logged
    assert after[8] == (0, 0, 0)  # the completing commit holds what the rekey record held
    events = cli.ok("--json", "audit").json()["events"]
    assert [(e["event"], e["generation"], e["epoch"]) for e in events if e["event"] in ("rekey", "rewrite")] == [
        ("rekey", 7, 2), ("rewrite", 8, 2)]
    assert "every kept generation re-encrypted under key epoch 2" in cli.ok("audit").out
    cli.ok("verify", "--full")

    cli.ok("prune")
    left = header_epochs(vault)
    assert set(left.values()) == {2}, "an object sealed under the old epoch is left"
    assert not set(old) & set(left), "an old object was not deleted"
    restore_all(cli, tmp / "pruned", GENS)
    for g in GENS:
        same_trees(tmp / "before" / str(g), tmp / "pruned" / str(g))
    assert cli.ok("export", "/t", str(tmp / "head")).code == 0
    same_trees(tmp / "before" / "6", tmp / "head")
    cli.ok("verify", "--full")


def test_key_remove_rekey_rewrite_locks_the_removed_passphrase_out(history: tuple[Cli, Path]) -> None:
    cli, tmp = history
    (tmp / "other").write_text(OTHER + "\n")
    other = cli.ok("--json", "key", "add", "--passphrase", "--kdf", "minimum", "--label", "bob",
                   "--new-passphrase-file", str(tmp / "other")).json()["slot"]["id"]
    assert cli("ls", passphrase=OTHER).code == 0
    done = cli.ok("--json", "key", "remove", other[:8], "--rekey", "--rewrite").json()
    assert done["removed"]["id"] == other and done["rewrite"]["epoch"] == 2
    refused = cli("ls", passphrase=OTHER)
    assert refused.code == 3, refused.err
    cli.ok("prune")
    assert set(header_epochs(tmp / "v").values()) == {2}
    restore_all(cli, tmp / "after", GENS)


#: ``python -c KILLER AFTER EPOCH ARGS…``: the command, killed with SIGKILL right after its AFTER-th new
#: ``o/`` object sealed under EPOCH (0: any epoch) has landed
KILLER = r"""
import os, signal, sys
from sigmavault.backends.local import LocalBackend
from sigmavault.cli.main import main

after, epoch = int(sys.argv[1]), int(sys.argv[2])
original = LocalBackend.put_if_absent
seen = []


async def put(self, name, data):
    landed = await original(self, name, data)
    if name.startswith("o/") and epoch in (0, int.from_bytes(bytes(data[2:6]), "big")):  # a copy, say
        seen.append(name)
        if len(seen) == after:
            os.kill(os.getpid(), signal.SIGKILL)
    return landed

LocalBackend.put_if_absent = put
sys.exit(main(sys.argv[3:]))
"""


def prune_past_the_dead_lease(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Prune in-process: the killed run's lease never ends, so the pruner waits until it expires
    (1.5 TTL on its own clock); the clock is moved past that once the pruner has listed the leases."""
    monkeypatch.setenv("SIGMAVAULT_HOME", str(cli.home))
    now = [0.0]

    async def hook(step: str) -> None:
        if step == "P3":
            now[0] += 1.5 * DEFAULT_TTL + 1

    async def run() -> None:
        async with await sigmavault.open(str(cli.vault), passphrase=PASS) as v:
            report = await asyncio.wait_for(v._pruner(poll=0.01, hook=hook, clock=lambda: now[0]).run(), 120)
            assert report.leases_waited >= 1 and report.deleted > 0

    asyncio.run(run())


def test_a_rewrite_killed_midway_is_finished_by_the_next_run(history: tuple[Cli, Path],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cli, tmp = history
    vault = tmp / "v"
    restore_all(cli, tmp / "before", GENS)
    proc = subprocess.run([sys.executable, "-c", KILLER, "2", "2", "--vault", str(vault), "rekey", "--rewrite"],
                          env=env_for(cli.home), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)
    assert sum(e == 2 for e in header_epochs(vault).values()) == 2  # killed after its second copy
    restore_all(cli, tmp / "meanwhile", GENS)  # the history reads as before (no map yet)
    slot = cli.ok("--json", "key", "list").json()["slots"][-1]["id"]
    before = sorted(os.listdir(vault / "k")), sorted(os.listdir(vault / "c"))
    refused = cli("key", "remove", slot, "--rekey", "--rewrite")  # a revocation waits for the rewrite
    assert refused.code == 2 and "rekey --rewrite" in refused.one_line_error()
    refused = cli("key", "remove", slot, "--rewrite")
    assert refused.code == 2 and "--rekey" in refused.one_line_error()
    assert (sorted(os.listdir(vault / "k")), sorted(os.listdir(vault / "c"))) == before  # nothing written

    done = cli.ok("--json", "rekey", "--rewrite").json()
    assert "epoch" not in done, "a second rekey was started instead of finishing the rewrite"
    assert done["rewrite"]["epoch"] == 2 and done["rewrite"]["reused"] >= 1
    assert cli.ok("--json", "rekey", "--rewrite").json()["epoch"] == 3  # finished: a new run is a new rekey

    prune_past_the_dead_lease(cli, monkeypatch)
    assert set(header_epochs(vault).values()) == {3}
    restore_all(cli, tmp / "after", GENS)
    for g in GENS:
        same_trees(tmp / "before" / str(g), tmp / "after" / str(g))
    cli.ok("verify", "--full")
