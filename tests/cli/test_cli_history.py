"""backup, restore --at, diff, progress events and resuming an import after kill -9 (real command)."""

from __future__ import annotations

import filecmp
import os
import signal
import subprocess
import time
from pathlib import Path

from clitools import Cli, env_for
from gated import Gate


def test_backup_restore_and_diff(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", tmp_path / "vault")
    cli.ok("create", "--kdf", "minimum")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "keep.txt").write_text("unchanged")
    (src / "sub" / "data.bin").write_bytes(os.urandom(300_000))
    first = cli.ok("--json", "backup", str(src), "--to", "/b").events()[-1]
    assert first["generation"] == 1 and first["unchanged"] == 0
    (src / "sub" / "data.bin").write_bytes(os.urandom(300_000))
    (src / "new.txt").write_text("new")
    second = cli.ok("--json", "backup", str(src), "--to", "/b").events()[-1]
    assert second["generation"] == 2 and second["unchanged"] == 1 and second["bytes_read"] == 300_003
    changes = {(e["change"], e["path"]) for e in cli.ok("--json", "diff", "1", "2").events() if e["event"] == "change"}
    assert changes == {("modified", "/b/src/sub/data.bin"), ("added", "/b/src/new.txt")}
    human = cli.ok("diff", "1").out.splitlines()
    assert "M /b/src/sub/data.bin" in human and "+ /b/src/new.txt" in human
    third = cli.ok("--json", "backup", str(src), "--to", "/b").events()[-1]
    assert third["unchanged"] == 3 and third["generation"] == 2  # nothing changed: no new generation
    cli.ok("restore", "--at", "1", "/b/src", str(tmp_path / "old"))
    assert not (tmp_path / "old" / "new.txt").exists()
    assert (tmp_path / "old" / "keep.txt").read_text() == "unchanged"
    r = cli("restore", "--at", "9", "/b/src", str(tmp_path / "never"))
    assert r.code == 4 and "generation 9" in r.one_line_error()
    assert not (tmp_path / "never").exists()
    r = cli("restore", "--at", "1", "/b/src", str(tmp_path / "old"))
    assert r.code == 5  # exists, no --force


def test_import_json_progress_events_are_well_formed(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", tmp_path / "vault")
    cli.ok("create", "--kdf", "minimum")
    src = tmp_path / "src"
    src.mkdir()
    for i in range(30):
        (src / f"f{i}").write_bytes(os.urandom(i * 3000))
    events = cli.ok("--json", "import", str(src)).events()
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "done" and kinds.count("file") == 30
    for e in events:
        assert isinstance(e, dict) and "event" in e
        if e["event"] == "progress":
            assert 0 <= e["bytes"] <= e["total_bytes"] and e["rate"] >= 0
    assert events[-1]["files"] == 30 and events[-1]["generation"] == 1


def test_kill_9_during_import_then_rerun_uploads_only_what_is_missing(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", tmp_path / "vault")
    cli.ok("create", "--kdf", "minimum", "--chunk-size", "1")
    src = tmp_path / "src"
    src.mkdir()
    for i in range(40):
        (src / f"f{i:02}").write_bytes(os.urandom(1_048_576 * 2 + i))
    # 40 chunk uploads go through, the rest wait at a gate: the kill lands mid-import however fast
    # or busy the machine (a poll-then-kill raced the import, which could finish in between)
    gate = Gate(tmp_path, allow=40)
    proc = subprocess.Popen(gate.cmd("--vault", str(cli.vault), "import", str(src)), env=env_for(cli.home),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    objects = tmp_path / "vault" / "o"
    try:
        gate.wait_held(proc)
        deadline = time.monotonic() + 60
        while sum(1 for p in objects.rglob("*") if p.is_file() and not p.name.startswith(".")) < 40:
            assert time.monotonic() < deadline, "the uploads let through the gate never landed"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert cli.ok("info", "--json").json()["generation"] == 0  # the killed import committed nothing
    before = {p.name for p in objects.rglob("*") if p.is_file()}
    assert len(before) >= 20  # the first run got well into the upload before it died
    done = cli.ok("--json", "import", str(src)).events()[-1]
    assert done["generation"] == 1
    total_chunk_bytes = 40 * 2 * (1_048_576 + 4182)  # what a fresh import would upload for the full chunks
    assert done["uploaded"] < total_chunk_bytes - 15 * (1_048_576 + 4182)  # the finished ones were not re-sent
    cli.ok("export", "/src", str(tmp_path / "back"))
    assert not filecmp.dircmp(src, tmp_path / "back").diff_files
    assert cli.ok("--json", "verify", "--full").json()["ok"] is True
