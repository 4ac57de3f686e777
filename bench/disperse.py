"""A dispersed vault (2-of-3 over local folders) against a single-place vault: import and export MB/s.

    .venv/bin/python bench/disperse.py --size-mib 1024 --runs 1

One random file of ``--size-mib`` MiB; each layout imports it into a fresh vault and exports it back
with the ``sigmavault`` command (a child process, wall time), then exports once more with one place
deleted. Also prints the bytes stored per layout (the target: n/k × the data, within 1 %).

    .venv/bin/python bench/disperse.py --servers --size-mib 256

starts SeaweedFS and Azurite on 127.0.0.1 (as the tests do) and imports the file into a local
folder, a SeaweedFS bucket and an Azurite container alone, then into a 2-of-3 vault over all three
(the target: no slower than the slowest place alone). Each run takes the layouts in a rotated order
after a sync; it prints each layout's median MB/s with every run's figure, the CPU seconds the
import command and the two servers spent (medians), and each run's ratio against that run's
slowest place, since on a shared machine only ratios measured side by side mean much.
``--profile DIR`` adds one untimed import of each layout under py-spy (the ``bench`` extra) and
writes its samples to ``DIR/<layout>.txt`` (py-spy's raw format: one line per stack, with a count).
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
    return timed_cpu(cmd, env)[0]


def timed_cpu(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and the command's own CPU seconds (user + system, its children included)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return wall, usage.ru_utime + usage.ru_stime


def tree_cpu(pid: int) -> float:
    """CPU seconds used so far by process ``pid`` and its live descendants (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, IndexError, ValueError):
            continue
    return total


def stored(paths: list[Path]) -> int:
    return sum(f.stat().st_size for p in paths if p.exists() for f in p.rglob("*") if f.is_file())


def on_servers(work: Path, data: Path, size: int, runs: int, profile: Path | None = None) -> None:
    """Import ``data`` into each place alone and into 2-of-3 over all three; prints MB/s."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "backends"))
    from servers import AzuriteServer, SeaweedServer, running

    with running(SeaweedServer(root=work / "seaweedfs")) as s3, running(AzuriteServer(root=work / "azurite")) as az:
        env = {**os.environ, "SIGMAVAULT_HOME": str(work / "home"), "SIGMAVAULT_PASSPHRASE": PASSWORD,
               "AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key, "AWS_REGION": s3.region,
               "AZURE_STORAGE_CONNECTION_STRING": az.connection_string}
        servers = [s3.proc.pid, az.proc.pid]  # type: ignore[union-attr]
        results: dict[str, list[tuple[float, float, float]]] = {}
        loads: list[float] = []

        def places(tag: str) -> dict[str, str]:
            return {"local": str(work / f"local-{tag}"),
                    "s3": f"s3://{s3.new_bucket()}/v?endpoint={s3.endpoint}&path_style=true",
                    "azure": f"az://{az.new_container()}/v"}

        for run in range(runs):
            layouts = {name: [url] for name, url in places(f"alone-{run}").items()}
            layouts["2-of-3 over all three"] = list(places(f"spread-{run}").values())
            order = list(layouts)
            order = order[run % len(order):] + order[:run % len(order)]  # each layout takes its turn first
            for name in order:
                vault = [a for u in layouts[name] for a in ("--vault", u)]
                subprocess.run([*SV, *vault, "create", "--kdf", "minimum"], env=env, check=True,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
                os.sync()  # the previous run's writeback is not this one's to pay
                before = sum(tree_cpu(p) for p in servers)
                wall, cpu = timed_cpu([*SV, *vault, "import", str(data)], env)
                served = sum(tree_cpu(p) for p in servers) - before
                results.setdefault(name, []).append((size / wall / 1e6, cpu, served))
                loads.append(os.getloadavg()[0])
        medians = {name: statistics.median(v[0] for v in runs_) for name, runs_ in results.items()}
        for name, runs_ in results.items():
            each = " ".join(f"{v[0]:.0f}" for v in runs_)
            print(f"import into {name:24} {medians[name]:8.1f} MB/s (runs: {each}); CPU s: client "
                  f"{statistics.median(v[1] for v in runs_):.1f}, servers {statistics.median(v[2] for v in runs_):.1f}")
        slowest = min(v for k, v in medians.items() if not k.startswith("2-of-3"))
        print(f"2-of-3 over all three vs the slowest place alone: {medians['2-of-3 over all three'] / slowest:.2f}x")
        ratios = []
        for i in range(runs):
            alone = min(results[k][i][0] for k in results if not k.startswith("2-of-3"))
            ratios.append(results["2-of-3 over all three"][i][0] / alone)
        print("per run (same run's slowest alone): " + " ".join(f"{r:.2f}x" for r in ratios))
        print(f"load average during the runs: {min(loads):.1f} to {max(loads):.1f} ({os.cpu_count()} cores)")
        if profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
            for name, urls in {**{n: [u] for n, u in places("profile").items()},
                               "spread": list(places("profile-spread").values())}.items():
                vault = [a for u in urls for a in ("--vault", u)]
                subprocess.run([*SV, *vault, "create", "--kdf", "minimum"], env=env, check=True,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
                spy = [str(Path(sys.executable).parent / "py-spy"), "record", "--rate", "250", "--threads",
                       "--format", "raw", "--output", str(profile / f"{name}.txt"), "--"]
                subprocess.run([*spy, *SV, *vault, "import", str(data)], env=env, check=True,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--dir", default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--servers", action="store_true", help="local + SeaweedFS + Azurite instead of local folders")
    ap.add_argument("--profile", default=None, help="with --servers: py-spy profiles of one more import each, here")
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
            on_servers(work, data, size, args.runs, Path(args.profile) if args.profile else None)
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
