"""A write-only client's import against the owner's own import of the same data (issue 18: ≥ 0.9×).

    .venv/bin/python bench/writer.py --size-mib 1024 --runs 3

One random file of ``--size-mib`` MiB (and, with ``--small N``, N small files beside it); each run
imports it with the ``sigmavault`` command (a child process, wall time) into a fresh local vault as
the owner, and into another fresh vault with a writer credential; then times the owner's ``ingest``
of that drop (it reads only the drop's pages, never its data), and a second drop of the same,
unchanged data (the writer's dedup against its own earlier drop: what it adds to the store).
Prints MB/s, the ratio, and the bytes stored after each step.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import PASSWORD, SV, run


def stored(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--small", type=int, default=0, help="also this many 4 KiB files")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sv-writer-", dir=args.work))
    try:
        src = work / "src"
        src.mkdir()
        with open(src / "big.bin", "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(1 << 20))
        for i in range(args.small):
            (src / f"s{i:05}").write_bytes(os.urandom(4096))
        size = sum(p.stat().st_size for p in src.iterdir())
        env = {"SIGMAVAULT_HOME": str(work / "home"), "SIGMAVAULT_PASSPHRASE": PASSWORD}
        writer_env = {"SIGMAVAULT_HOME": str(work / "home")}  # a writer never takes a passphrase
        times: dict[str, list[float]] = {"owner import": [], "writer import": [], "owner ingest": [],
                                         "writer re-drop": []}
        rss: dict[str, list[float]] = {name: [] for name in times}
        sizes: dict[str, int] = {}

        def timed(name: str, cmd: list[str], how: dict[str, str]) -> None:
            os.sync()  # the previous run's writeback must not land on this one's clock
            seconds, peak = run(cmd, how)
            times[name].append(seconds)
            rss[name].append(peak)

        for r in range(args.runs):
            owner, dropped = work / f"owner-{r}", work / f"dropped-{r}"
            for v in (owner, dropped):
                run([SV, "--vault", str(v), "create", "--kdf", "minimum"], env)
            cred = work / f"w-{r}.cred"
            run([SV, "--vault", str(dropped), "key", "add", "--writer", "--to", "/w", "--out", str(cred)], env)
            writer = [SV, "--vault", str(dropped), "--writer-credential", str(cred), "import", str(src)]
            first = ["owner import", "writer import"] if r % 2 == 0 else ["writer import", "owner import"]
            for name in first:  # alternate which goes first: neither gets the warmer machine every time
                if name == "owner import":
                    timed(name, [SV, "--vault", str(owner), "import", str(src), "--to", "/w"], env)
                else:
                    timed(name, writer, writer_env)
            sizes = {"owner import": stored(owner), "writer import": stored(dropped)}
            timed("owner ingest", [SV, "--vault", str(dropped), "ingest"], env)
            timed("writer re-drop", writer, writer_env)
            sizes["writer re-drop"] = stored(dropped)
            shutil.rmtree(owner)
            shutil.rmtree(dropped)
        mb = size / 1e6
        base = statistics.median(times["owner import"])
        print(f"{args.size_mib} MiB + {args.small} small files, {args.runs} runs (median wall time, child processes)")
        print(f"{'':16} {'seconds':>8} {'MB/s':>8} {'vs owner':>9} {'stored MB':>10} {'RSS MiB':>8}")
        for name, ts in times.items():
            t = statistics.median(ts)
            kept = f"{sizes[name] / 1e6:10.1f}" if name in sizes else f"{'':>10}"
            print(f"{name:16} {t:8.2f} {mb / t:8.1f} {base / t:8.2f}× {kept} {max(rss[name]):8.0f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
