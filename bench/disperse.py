"""A dispersed vault (2-of-3 over local folders) against a single-place vault: import and export MB/s.

    .venv/bin/python bench/disperse.py --size-mib 1024 --runs 1

One random file of ``--size-mib`` MiB; each layout imports it into a fresh vault and exports it back
with the ``sigmavault`` command (a child process, wall time), then exports once more with one place
deleted. Also prints the bytes stored per layout (the target: n/k × the data, within 1 %).

    .venv/bin/python bench/disperse.py --servers --size-mib 256

starts SeaweedFS and Azurite on 127.0.0.1 (as the tests do) and imports the file into a local
folder, a SeaweedFS bucket and an Azurite container alone, then into a 2-of-3 vault over all three
(the target: no slower than the slowest place alone).
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


def on_servers(work: Path, data: Path, size: int, runs: int) -> None:
    """Import ``data`` into each place alone and into 2-of-3 over all three; prints MB/s."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "backends"))
    from servers import AzuriteServer, SeaweedServer, running

    with running(SeaweedServer(root=work / "seaweedfs")) as s3, running(AzuriteServer(root=work / "azurite")) as az:
        env = {**os.environ, "SIGMAVAULT_HOME": str(work / "home"), "SIGMAVAULT_PASSPHRASE": PASSWORD,
               "AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key, "AWS_REGION": s3.region,
               "AZURE_STORAGE_CONNECTION_STRING": az.connection_string}
        results: dict[str, list[float]] = {}
        for run in range(runs):
            def places(tag: str, run: int = run) -> dict[str, str]:
                return {"local": str(work / f"local-{tag}-{run}"),
                        "s3": f"s3://{s3.new_bucket()}/v?endpoint={s3.endpoint}&path_style=true",
                        "azure": f"az://{az.new_container()}/v"}
            layouts = {name: [url] for name, url in places("alone").items()}
            layouts["2-of-3 over all three"] = list(places("spread").values())
            for name, urls in layouts.items():
                vault = [a for u in urls for a in ("--vault", u)]
                subprocess.run([*SV, *vault, "create", "--kdf", "minimum"], env=env, check=True,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
                results.setdefault(name, []).append(size / timed([*SV, *vault, "import", str(data)], env) / 1e6)
        medians = {name: statistics.median(v) for name, v in results.items()}
        for name, mbps in medians.items():
            print(f"import into {name:24} {mbps:8.1f} MB/s")
        slowest = min(v for k, v in medians.items() if not k.startswith("2-of-3"))
        print(f"2-of-3 over all three vs the slowest place alone: {medians['2-of-3 over all three'] / slowest:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--dir", default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--servers", action="store_true", help="local + SeaweedFS + Azurite instead of local folders")
    args = ap.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="sv-disperse-bench-"))
    data = work / "data" / "random.bin"
    data.parent.mkdir(parents=True, exist_ok=True)
    with data.open("wb") as f:
        for _ in range(args.size_mib):
            f.write(os.urandom(1 << 20))
    size = args.size_mib << 20
    if args.servers:
        try:
            on_servers(work, data, size, args.runs)
        finally:
            if args.dir is None:
                shutil.rmtree(work, ignore_errors=True)
        return
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
