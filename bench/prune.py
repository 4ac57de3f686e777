"""Prune of a vault with ~30 % garbage against ``restic forget --prune`` on the same data (issue 13).

    .venv/bin/python bench/prune.py --size-mib 10240 --out bench/results   # the issue's 10 GiB
    .venv/bin/python bench/prune.py --size-mib 1024                         # a quicker run

Data: random (incompressible) files of 1–32 MiB, ``--garbage`` of the bytes in a separate set.
sigmavault: the kept set is imported (committed); the garbage set is uploaded by a writer that
never commits (until ``forget`` lands, uncommitted uploads are what garbage there is), then
``sigmavault prune`` is timed. restic: a snapshot of kept + garbage, then one of kept alone, then
``restic forget --group-by host --keep-last 1 --prune`` is timed. Each timed command is a child process: wall time,
and peak RSS from ``wait4``. Both repositories on the same local disk.

Measured 2026-12-03 on the shared 2-core machine under load (load average ~14), one run each:

    size     sigmavault prune          restic forget --prune     store after (sigmavault / restic)
    1 GiB    3.3 s, 103.8 MiB RSS      1.1 s, 41.6 MiB RSS       740 / 740 MiB
    4 GiB    3.9 s, 103.8 MiB RSS      1.3 s, 64.7 MiB RSS       2955 / 2904 MiB
    10 GiB   5.1 s, 103.7 MiB RSS      1.0 s, 74.8 MiB RSS       7391 / 7196 MiB

2026-12-04 on a quiet machine (prune now also repacks packs over --max-unused; none here):

    10 GiB   1.3 s, 101.9 MiB RSS      1.4 s, 74.4 MiB RSS       7391 / 7209 MiB

Most of sigmavault's time and memory is the command's start (Python, imports, opening the vault:
``sigmavault info`` alone took 4.7 s and 104 MiB in the same conditions); the prune itself walks
the catalog, HEADs every object and deletes. The store after differs by the padding of packs and
chunks (the format's size hiding), not by garbage left.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import PASSWORD, SV, run, tree_size

_ABORTED_WRITER = r"""
import asyncio, os, sys
import sigmavault
from sigmavault.engine.catalog.tree import Meta

async def main(url, src):
    v = await sigmavault.open(url, passphrase=os.environ["SIGMAVAULT_PASSPHRASE"])
    async with v.ingest() as ing:
        for p in sorted(os.listdir(src)):
            await ing.add([b"garbage", p.encode()], os.path.join(src, p), Meta.now(0o644))
    await v._data_pack.flush()
    await v.aclose()  # never commits: everything it uploaded is garbage

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def make_files(folder: Path, total_mib: int, seed: int) -> None:
    if (folder / "done").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    left, i = total_mib, 0
    while left > 0:
        size = min(left, 1 + (seed * 7 + i * 13) % 32)
        with open(folder / f"f{i:05}.bin", "wb") as f:
            for _ in range(size):
                f.write(os.urandom(1 << 20))
        left -= size
        i += 1
    (folder / "done").write_text("ok")


def bench_sigmavault(work: Path, keep: Path, garbage: Path) -> dict[str, float]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {"SIGMAVAULT_HOME": str(work / "home"), "SIGMAVAULT_PASSPHRASE": PASSWORD,
           "SIGMAVAULT_VAULT": str(work / "vault")}
    run([SV, "create", "--kdf", "minimum"], env)
    run([SV, "import", str(keep), "--to", "/keep"], env)
    run([sys.executable, "-c", _ABORTED_WRITER, str(work / "vault"), str(garbage)], env)
    before = tree_size(work / "vault")
    seconds, rss = run([SV, "prune"], env)
    after = tree_size(work / "vault")
    run([SV, "verify"], env)
    return {"seconds": seconds, "rss_mib": rss, "bytes_before": before, "bytes_after": after}


def bench_restic(work: Path, keep: Path, garbage: Path) -> dict[str, float]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {"RESTIC_PASSWORD": PASSWORD, "RESTIC_REPOSITORY": str(work / "repo"), "RESTIC_CACHE_DIR": str(work / "c")}
    run(["restic", "init"], env)
    run(["restic", "backup", "--quiet", str(keep), str(garbage)], env)
    run(["restic", "backup", "--quiet", str(keep)], env)
    before = tree_size(work / "repo")
    seconds, rss = run(["restic", "forget", "--group-by", "host", "--keep-last", "1", "--prune"], env)
    after = tree_size(work / "repo")
    return {"seconds": seconds, "rss_mib": rss, "bytes_before": before, "bytes_after": after}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=10240)
    ap.add_argument("--garbage", type=float, default=0.30)
    ap.add_argument("--work", default="/tmp/sigmavault-bench-prune")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    work = Path(args.work)
    keep, garbage = work / "data" / "keep", work / "data" / "garbage"
    make_files(keep, round(args.size_mib * (1 - args.garbage)), 1)
    make_files(garbage, round(args.size_mib * args.garbage), 2)
    results = {"size_mib": args.size_mib, "garbage": args.garbage,
               "sigmavault": bench_sigmavault(work / "sv", keep, garbage),
               "restic": bench_restic(work / "restic", keep, garbage)}
    for tool in ("sigmavault", "restic"):
        r = results[tool]
        print(f"{tool:10} prune {r['seconds']:7.1f} s  peak RSS {r['rss_mib']:6.1f} MiB  "
              f"{r['bytes_before'] / 2**20:8.1f} MiB -> {r['bytes_after'] / 2**20:8.1f} MiB")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "prune.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
