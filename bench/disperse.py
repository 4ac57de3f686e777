"""A dispersed vault (2-of-3 over local folders) against a single-place vault: import and export MB/s.

    .venv/bin/python bench/disperse.py --size-mib 1024 --runs 1

One random file of ``--size-mib`` MiB; each layout imports it into a fresh vault and exports it back
with the ``sigmavault`` command (a child process, wall time), then exports once more with one place
deleted. Also prints the bytes stored per layout (the target: n/k × the data, within 1 %).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SV = [sys.executable, "-m", "sigmavault"]
PASSWORD = "bench-passphrase-not-secret"


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def stored(paths: list[Path]) -> int:
    return sum(f.stat().st_size for p in paths if p.exists() for f in p.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--dir", default=None, help="work folder (default: a temporary one)")
    args = ap.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="sv-disperse-bench-"))
    data = work / "data" / "random.bin"
    data.parent.mkdir(parents=True, exist_ok=True)
    with data.open("wb") as f:
        for _ in range(args.size_mib):
            f.write(os.urandom(1 << 20))
    size = args.size_mib << 20
    env = {**os.environ, "SIGMAVAULT_HOME": str(work / "home"), "SIGMAVAULT_PASSPHRASE": PASSWORD}
    results: dict[str, list[float]] = {}
    try:
        for run in range(args.runs):
            for layout in ("single", "2-of-3"):
                places = [work / f"{layout}-{run}-{i}" for i in range(1 if layout == "single" else 3)]
                vault = [a for p in places for a in ("--vault", str(p))]
                subprocess.run(
                    [*SV, *vault, "create", "--kdf", "minimum"],
                    env=env,
                    check=True,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                )
                t_in = timed([*SV, *vault, "import", str(data)], env)
                out = work / f"out-{layout}-{run}"
                t_out = timed([*SV, *vault, "export", "/random.bin", str(out)], env)
                assert out.stat().st_size == size
                results.setdefault(f"{layout} import", []).append(size / t_in / 1e6)
                results.setdefault(f"{layout} export", []).append(size / t_out / 1e6)
                results.setdefault(f"{layout} stored/data", []).append(stored(places) / size)
                out.unlink()
                if layout != "single":
                    shutil.rmtree(places[1])
                    left = [a for p in (places[0], places[2]) for a in ("--vault", str(p))]
                    t_deg = timed([*SV, *left, "export", "/random.bin", str(out)], env)
                    results.setdefault(f"{layout} export, one place gone", []).append(size / t_deg / 1e6)
                    out.unlink()
                for p in places:
                    shutil.rmtree(p, ignore_errors=True)
        for name, values in results.items():
            unit = "" if "stored" in name else " MB/s"
            print(f"{name:32} {statistics.median(values):8.2f}{unit}")
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
