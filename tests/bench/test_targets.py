"""bench/targets.py turns the benchmarks' result files into issue 15's verdicts: met, missed, not run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _row(tool: str, dataset: str, op: str, mbps: float, rss: float = 100.0, stored: list[int] | None = None) -> dict:
    return {"tool": tool, "dataset": dataset, "op": op, "mbps": mbps, "rss_mib": [rss], "stored": stored or []}


def _targets(out: Path) -> dict[str, list[str]]:
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "targets.py"), "--out", str(out)],
                         capture_output=True, text=True, check=True)
    assert "targets.md" in run.stdout
    rows = (out / "targets.md").read_text().splitlines()[2:]
    table: dict[str, list[str]] = {}
    for line in rows:
        work, target, got, verdict = [c.strip() for c in line.strip("|").split("|")]
        table.setdefault(work, []).append(f"{target}: {got} {verdict}")
    return table


def test_verdicts_follow_the_measured_ratios(tmp_path: Path) -> None:
    rows = [_row("sigmavault[auto]", "10k small", "import", 60.0), _row("restic", "10k small", "import", 40.0),
            _row("rclone crypt", "10k small", "import", 30.0),
            _row("sigmavault[auto]", "random 1GiB", "export", 400.0, rss=160.0),
            _row("rclone crypt", "random 1GiB", "export", 500.0),
            _row("sigmavault[auto]", "text 1GiB", "import", 300.0, stored=[110, 104]),
            _row("restic", "text 1GiB", "import", 100.0, stored=[100, 100])]
    (tmp_path / "results.json").write_text(json.dumps(rows))
    (tmp_path / "mount.json").write_text(json.dumps({"memory_cache_mib": 64, "peak_rss_mib": {"sigmavault mount": 170},
                                                     "mbps": {"sigmavault mount/read": 900, "gocryptfs/read": 800}}))
    table = _targets(tmp_path)
    assert table["import 10,000 small files"] == ["≥ 1.5× restic: 1.50× met", "≥ 1.5× rclone crypt: 2.00× met"]
    assert table["export 1 GiB random"][0] == "≥ 1× rclone crypt: 0.80× MISSED"
    assert table["export 1 GiB random"][1] == "≥ 1× gocryptfs: — not run"  # no gocryptfs row
    assert table["text 1 GiB stored bytes"] == ["≤ 1.05× restic: 1.07× MISSED"]  # medians 107 / 100
    assert table["mount sequential read"] == ["≥ 1.0× gocryptfs: 1.12× met"]
    assert table["mount sequential write (conv=fsync)"] == ["≥ 1.0× gocryptfs: — not run"]
    assert table["mount peak RSS, default settings"] == ["≤ 164 MiB (memory cache + 100): 170 MiB MISSED"]
    assert table["S3 import on SeaweedFS"] == ["≥ 0.8× raw aiobotocore PUT: — not run"]  # no cloud.json
    assert table["peak RSS of any import/export (1 GiB)"] == ["≤ 150 MiB: 160 MiB MISSED"]


def test_no_results_at_all_leaves_every_row_not_run(tmp_path: Path) -> None:
    table = _targets(tmp_path)
    assert table and all(cell.endswith("not run") for cells in table.values() for cell in cells)
