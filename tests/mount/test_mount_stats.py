"""``sigmavault stats``: the counters of a real running mount (chunk cache, dedup index, object store),
read through the real command over the mount's private socket; and the clear error with no mount."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mounttools import MIB, PASS, ROOT, make_vault, needs_fuse


class Sv:
    """``sigmavault --vault VAULT …`` for one home, in a subprocess."""

    def __init__(self, vault: Path, home: Path) -> None:
        self.vault = vault
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("SIGMAVAULT_")},
                    "SIGMAVAULT_HOME": str(home), "SIGMAVAULT_PASSPHRASE": PASS}

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sigmavault", "--vault", str(self.vault), *args], env=self.env,
                              capture_output=True, text=True, timeout=180, cwd=ROOT)

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        r = self(*args)
        assert r.returncode == 0, (args, r.stderr)
        return r

    def stats(self, mp: Path) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.ok("--json", "stats", str(mp)).stdout)
        return doc


def _mounted(sv: Sv, mp: Path, cache: Path, *extra: str) -> None:
    mp.mkdir(exist_ok=True)
    sv.ok("mount", str(mp), "--background", "--cache-dir", str(cache), *extra)


def _umount(sv: Sv, mp: Path) -> None:
    sv.ok("umount", str(mp))
    deadline = time.monotonic() + 30
    while os.path.ismount(mp) and time.monotonic() < deadline:
        time.sleep(0.1)


def _vault_holding(tmp_path: Path, files: dict[str, bytes]) -> tuple[Sv, Path]:
    """A new vault with ``files`` imported under /d, and the home its commands use."""
    make_vault(tmp_path / "vault")
    sv = Sv(tmp_path / "vault", tmp_path / "home")
    (tmp_path / "src").mkdir()
    for name, data in files.items():
        (tmp_path / "src" / name).write_bytes(data)
    sv.ok("import", str(tmp_path / "src"), "--to", "/d")
    return sv, tmp_path / "home"


@needs_fuse
def test_stats_of_a_running_mount(tmp_path: Path) -> None:
    three = os.urandom(3 * MIB)
    sv, home = _vault_holding(tmp_path, {"three.bin": three, "copy.bin": three})  # the same chunks, two names
    vault = sv.vault
    twice = os.urandom(2 * MIB)
    mp = tmp_path / "mnt"
    _mounted(sv, mp, tmp_path / "cache")
    try:
        assert (mp / "d" / "three.bin").read_bytes() == three  # fetched: one miss per chunk
        assert (mp / "d" / "copy.bin").read_bytes() == three  # not in the kernel's page cache: chunk cache hits
        for name in ("a.bin", "b.bin"):  # the same bytes twice; fsync commits each
            with open(mp / name, "wb") as f:
                f.write(twice)
                f.flush()
                os.fsync(f.fileno())
        doc = sv.stats(mp)
        human = sv.ok("stats", str(mp)).stdout
        every = json.loads(sv.ok("--json", "stats").stdout)  # no MOUNTPOINT: every running mount
        sock = next((home / "run" / "mounts").glob("*.stats"))
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
    finally:
        _umount(sv, mp)
    assert doc["mountpoint"] == os.path.realpath(mp) and doc["vault"] == str(vault) and doc["pid"] > 0
    chunk = doc["caches"]["chunk"]
    assert chunk["misses"] == 3 and chunk["hits"] >= 3 and chunk["bytes"] >= 3 * MIB and chunk["evictions"] == 0
    dedup = doc["caches"]["dedup"]
    assert dedup["misses"] >= 2 and dedup["hits"] >= 2  # b.bin's two chunks were found in the index
    assert doc["backend"]["get"]["requests"] >= 3 and doc["backend"]["put"]["requests"] >= 2
    assert doc["generation"] >= 3 and doc["stages"]["writer"]["items_in"] >= 2
    assert [(m["mountpoint"], m["pid"]) for m in every["mounts"]] == [(doc["mountpoint"], doc["pid"])]
    lines = human.splitlines()
    assert lines[0].startswith(f"{os.path.realpath(mp)}: {vault} (pid ")
    row = next(ln.split() for ln in lines if ln.startswith("chunk "))
    assert row[1:3] == [str(chunk["hits"]), "3"] and row[3].endswith("%")
    assert any(ln.startswith("dedup ") for ln in lines) and any(ln.startswith("backend ") for ln in lines)
    assert any(ln.startswith("coordinate ") for ln in lines) and lines[-1].startswith("pipelines: ")
    assert not list((home / "run" / "mounts").glob("*.stats"))  # removed at unmount
    gone = sv("stats", str(mp))
    assert gone.returncode == 4 and gone.stderr.startswith("sigmavault: error: no running sigmavault mount at")
    assert len(gone.stderr.splitlines()) == 1
    none = sv("--json", "stats")
    assert none.returncode == 4 and json.loads(none.stdout)["error"]["type"] == "NotFound"


@needs_fuse
def test_a_small_chunk_cache_counts_its_evictions(tmp_path: Path) -> None:
    data = os.urandom(4 * MIB)
    sv, _ = _vault_holding(tmp_path, {"four.bin": data})
    mp = tmp_path / "mnt"
    _mounted(sv, mp, tmp_path / "cache", "--memory-cache", "1", "--disk-cache", "0", "--readahead", "1")
    try:
        assert (mp / "d" / "four.bin").read_bytes() == data
        chunk = sv.stats(mp)["caches"]["chunk"]
    finally:
        _umount(sv, mp)
    assert chunk["misses"] >= 4 and chunk["evictions"] >= 3 and chunk["bytes"] <= 2 * MIB
