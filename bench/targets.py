"""Issue 15's target table from the result files the benchmarks wrote (no measuring of its own).

    .venv/bin/python bench/targets.py [--out bench/results]

Reads ``results.json`` (bench/compare.py), ``mount.json`` (bench/mount.py) and ``cloud.json``
(bench/cloud.py) from ``--out``; a file that is missing leaves its rows "not run". Prints one row per
target with the measured ratio or value and whether it is met, and writes the same table as Markdown
to ``targets.md`` (what the README quotes). ``bench/run`` calls it last.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SV = "sigmavault"  # compare.py names sigmavault's rows sigmavault[<mixer>]; the first one found is used

Row = tuple[str, str, str, str]  # work, target, measured, verdict


def _load(path: Path) -> object | None:
    return json.loads(path.read_text()) if path.exists() else None


def _verdict(ok: bool | None) -> str:
    return "not run" if ok is None else ("met" if ok else "MISSED")


class Compare:
    """Median MB/s, peak RSS and stored bytes per (tool, dataset, op) from compare.py's results."""

    def __init__(self, rows: list[dict[str, object]] | None) -> None:
        self.rows = rows or []

    def _row(self, tool: str, dataset: str, op: str) -> dict[str, object] | None:
        for r in self.rows:
            name = str(r["tool"])
            if (name.startswith(SV + "[") if tool == SV else name == tool) and (r["dataset"], r["op"]) == (dataset, op):
                return r
        return None

    def mbps(self, tool: str, dataset: str, op: str) -> float | None:
        r = self._row(tool, dataset, op)
        return float(r["mbps"]) if r else None  # type: ignore[arg-type]

    def ratio(self, dataset: str, op: str, peer: str) -> float | None:
        ours, theirs = self.mbps(SV, dataset, op), self.mbps(peer, dataset, op)
        return ours / theirs if ours and theirs else None

    def stored_ratio(self, dataset: str, peer: str) -> float | None:
        ours, theirs = self._row(SV, dataset, "import"), self._row(peer, dataset, "import")
        if not ours or not theirs or not ours.get("stored") or not theirs.get("stored"):
            return None
        return statistics.median(ours["stored"]) / statistics.median(theirs["stored"])  # type: ignore[arg-type]

    def peak_rss(self) -> float | None:
        peaks = [max(r["rss_mib"]) for r in self.rows if str(r["tool"]).startswith(SV) and r["rss_mib"]]  # type: ignore[arg-type]
        return max(peaks) if peaks else None


def ratio_rows(work: str, measure: Callable[[str], float | None], wants: list[tuple[str, float]]) -> list[Row]:
    rows = []
    for peer, want in wants:
        got = measure(peer)
        rows.append((work, f"≥ {want:g}× {peer}", "—" if got is None else f"{got:.2f}×",
                     _verdict(None if got is None else got >= want)))
    return rows


def table(out: Path) -> list[Row]:
    cmp = Compare(_load(out / "results.json"))  # type: ignore[arg-type]
    mount = _load(out / "mount.json") or {}
    cloud = _load(out / "cloud.json") or {}
    rows: list[Row] = []
    for label, dataset, op, wants in (
            ("import 10,000 small files", "10k small", "import", [("restic", 1.5), ("rclone crypt", 1.5)]),
            ("export of the same", "10k small", "export", [("restic", 1.0), ("rclone crypt", 1.0)]),
            ("import 1 GiB random", "random 1GiB", "import", [("restic", 3.0), ("age", 0.8)]),
            ("export 1 GiB random", "random 1GiB", "export", [("rclone crypt", 1.0), ("gocryptfs", 1.0), ("age", 0.8)]),
            ("import 1 GiB text", "text 1GiB", "import", [("restic", 2.0)])):
        rows += ratio_rows(label, lambda p, d=dataset, o=op: cmp.ratio(d, o, p), wants)  # type: ignore[misc]
    got = cmp.stored_ratio("text 1GiB", "restic")
    rows.append(("text 1 GiB stored bytes", "≤ 1.05× restic", "—" if got is None else f"{got:.2f}×",
                 _verdict(None if got is None else got <= 1.05)))
    mbps: dict[str, float] = mount.get("mbps", {})  # type: ignore[union-attr]
    for op, label in (("read", "mount sequential read"), ("write", "mount sequential write (conv=fsync)")):
        ours, theirs = mbps.get(f"sigmavault mount/{op}"), mbps.get(f"gocryptfs/{op}")
        got = ours / theirs if ours and theirs else None
        rows.append((label, "≥ 1.0× gocryptfs", "—" if got is None else f"{got:.2f}×",
                     _verdict(None if got is None else got >= 1.0)))
    rss = mount.get("peak_rss_mib", {}).get("sigmavault mount")  # type: ignore[union-attr]
    limit = mount.get("memory_cache_mib", 64) + 100  # type: ignore[union-attr, operator]
    rows.append(("mount peak RSS, default settings", f"≤ {limit} MiB (memory cache + 100)",
                 "—" if rss is None else f"{rss:.0f} MiB", _verdict(None if rss is None else rss <= limit)))
    med: dict[str, float] = cloud.get("median_mbps", {})  # type: ignore[union-attr]
    ours, raw = med.get("vault/import"), med.get("raw/import")
    got = ours / raw if ours and raw else None
    rows.append(("S3 import on SeaweedFS", "≥ 0.8× raw aiobotocore PUT", "—" if got is None else f"{got:.2f}×",
                 _verdict(None if got is None else got >= 0.8)))
    peak = cmp.peak_rss()
    rows.append(("peak RSS of any import/export (1 GiB)", "≤ 150 MiB", "—" if peak is None else f"{peak:.0f} MiB",
                 _verdict(None if peak is None else peak <= 150)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    rows = table(args.out)
    width = max(len(r[0]) for r in rows)
    twidth = max(len(r[1]) for r in rows)
    print(f"\n{'work':<{width}}  {'target':<{twidth}}  {'measured':>9}  verdict")
    for work, target, got, verdict in rows:
        print(f"{work:<{width}}  {target:<{twidth}}  {got:>9}  {verdict}")
    md = ["| work | target | measured | verdict |", "|---|---|---:|---|"]
    md += [f"| {' | '.join(r)} |" for r in rows]
    (args.out / "targets.md").write_text("\n".join(md) + "\n")
    print(f"\nwrote {args.out / 'targets.md'}")


if __name__ == "__main__":
    main()
