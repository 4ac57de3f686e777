"""Compression: stored bytes, speed and CPU seconds of sigmavault (``create --compression``) against restic.

    .venv/bin/python bench/compression.py --runs 3 --size-mib 1024

Uses ``bench/compare.py``'s datasets (its "text 1GiB" and "random 1GiB") and its way of running each
tool as a child process. Runs are interleaved (tool by tool within each round). For every tool and
dataset it prints the median import and export MB/s (wall time), the median CPU seconds of each
(user + system of the child and everything it waited for: on a machine shared with other work the
CPU seconds say more than the wall time), and the bytes the repository holds after the import. The
export is compared byte for byte with the source.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import ROOT, SV, Restic, Sigmavault, Tool, prepare, tree_size

Timing = tuple[float, float]  # wall seconds, CPU seconds


def timed(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> Timing:
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    dt = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise RuntimeError(f"{' '.join(cmd)} failed: {err[-2000:]}")
    return dt, usage.ru_utime + usage.ru_stime


class Sv(Sigmavault):
    def __init__(self, work: Path, mixer: str, compression: str) -> None:
        super().__init__(work, mixer)
        self.compression = compression
        self.name = f"sigmavault[{mixer},{compression}]"

    def fresh(self) -> None:
        Tool.fresh(self)
        timed([SV, "create", "--kdf", "minimum", "--compression", self.compression], self.env)

    def repo(self) -> Path:
        return self.work / "vault"

    def do_import(self, src: Path) -> Timing:
        return timed([SV, "import", str(src), "--to", "/data"], self.env)

    def do_export(self, dst: Path) -> Timing:
        return timed([SV, "export", "/data", str(dst)], self.env)


class Rs(Restic):
    def repo(self) -> Path:
        return self.work / "repo"

    def do_import(self, src: Path) -> Timing:
        return timed(["restic", "backup", "--quiet", "."], self.env, cwd=src)

    def do_export(self, dst: Path) -> Timing:
        return timed(["restic", "restore", "latest", "--target", str(dst)], self.env)


def same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, bad, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return not bad and not errors and all(same_tree(a / d, b / d) for d in cmp.common_dirs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "data")
    ap.add_argument("--datasets", default="text 1GiB,random 1GiB")
    ap.add_argument("--modes", default="auto,off", help="sigmavault --compression modes to run")
    ap.add_argument("--mixer", default="process")
    args = ap.parse_args()
    datasets = prepare(args.work / "src", args.size_mib, 1)
    tools: list[Sv | Rs] = [Sv(args.work / f"svz-{m}", args.mixer, m) for m in args.modes.split(",")]
    tools.append(Rs(args.work / "restic"))
    rows: dict[tuple[str, str], dict[str, list[float]]] = {}
    for round_no in range(args.runs):
        for name in args.datasets.split(","):
            src = datasets[name]
            nbytes = tree_size(src)
            for tool in tools:
                tool.fresh()
                out = args.work / "out"
                shutil.rmtree(out, ignore_errors=True)
                wall_i, cpu_i = tool.do_import(src)
                stored = tree_size(tool.repo())
                out.mkdir(parents=True)
                wall_e, cpu_e = tool.do_export(out)
                first = next(p for p in src.rglob("*") if p.is_file())
                exported = next(out.rglob(first.name)).parent  # restic restores below the source's path
                exported = exported.parents[len(first.relative_to(src).parts) - 2] if len(
                    first.relative_to(src).parts) > 1 else exported
                if not same_tree(src, exported):
                    raise SystemExit(f"{tool.name}: the export of {name} differs from its source")
                r = rows.setdefault((name, tool.name), {})
                for key, value in (("import MB/s", nbytes / 1e6 / wall_i), ("import CPU s", cpu_i),
                                   ("export MB/s", nbytes / 1e6 / wall_e), ("export CPU s", cpu_e),
                                   ("stored MB", stored / 1e6)):
                    r.setdefault(key, []).append(value)
                print(f"round {round_no + 1} {name:<12} {tool.name:<32} import {nbytes / 1e6 / wall_i:7.1f} MB/s "
                      f"cpu {cpu_i:6.1f} s  export {nbytes / 1e6 / wall_e:7.1f} MB/s cpu {cpu_e:6.1f} s  "
                      f"stored {stored / 1e6:9.1f} MB", flush=True)
    print()
    keys = ("import MB/s", "import CPU s", "export MB/s", "export CPU s", "stored MB")
    print(f"{'dataset':<12} {'tool':<32} " + " ".join(f"{k:>13}" for k in keys))
    for (name, tool_name), r in rows.items():
        print(f"{name:<12} {tool_name:<32} " + " ".join(f"{statistics.median(r[k]):>13.1f}" for k in keys))
    for name in args.datasets.split(","):
        peer = rows.get((name, "restic"))
        for (n, tool_name), r in rows.items():
            if n == name and peer and tool_name != "restic":
                def ratio(key: str, r: dict[str, list[float]] = r, peer: dict[str, list[float]] = peer) -> float:
                    return statistics.median(r[key]) / statistics.median(peer[key])

                print(f"{name:<12} {tool_name:<32} stored {ratio('stored MB'):.3f}x restic, import "
                      f"{ratio('import MB/s'):.2f}x restic, import CPU {ratio('import CPU s'):.2f}x restic's")


if __name__ == "__main__":
    main()
