"""A million files: how a big catalog opens, lists, stats and commits, and how fast an unchanged backup is.

    .venv/bin/python bench/scale.py [--entries 1000000] [--backup-files 100000] [--work /tmp/sv-scale]

Part 1 builds (once; reused while ``--entries`` stays the same) a vault of ``--entries`` small
inline files in directories of 100, plus one directory of 1,000, through the library. Each figure
is then measured in a fresh child process: on a *fresh* device (no local state: the catalog comes
from the store) and on a *warm* one (the same device again: pages from its sealed cache) — open,
``ls`` of the 1,000-entry directory, ``stat`` of one file, committing one changed file, and the
child's peak RSS. Targets (issue 15): open ≤ 2 s, ls ≤ 0.2 s, stat ≤ 10 ms, commit ≤ 0.5 s, peak
RSS ≤ 250 MiB.

Part 2 times ``sigmavault backup`` and ``restic backup`` of an unchanged tree of
``--backup-files`` small files (each after a first full backup), as whole processes, with their
peak RSS. Prints a table and writes ``scale.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from compare import PASSWORD, SV, run  # noqa: E402

PER_DIR = 100
BIG_DIR = 1000

PROBE = """
import asyncio, json, resource, sys, time
import sigmavault

async def main(url, passphrase):
    t = time.perf_counter()
    vault = await sigmavault.open(url, passphrase=passphrase)
    opened = time.perf_counter() - t
    async with vault:
        t = time.perf_counter()
        names = await vault.ls("/big")
        listed = time.perf_counter() - t
        t = time.perf_counter()
        await vault.stat("/d0000/f000042")
        stat = time.perf_counter() - t
        await vault.put("/d0001/f000107", str(time.time()).encode())
        t = time.perf_counter()
        await vault.commit()
        committed = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"open": opened, "ls": listed, "ls_entries": len(names), "stat": stat,
                      "commit": committed, "rss_mib": rss}))

asyncio.run(main(*sys.argv[1:]))
"""


def build(url: str, entries: int) -> None:
    import sigmavault

    async def main() -> None:
        async with await sigmavault.create(url, passphrase=PASSWORD, kdf="minimum") as vault:
            t = time.perf_counter()
            for i in range(entries - BIG_DIR):
                await vault.put(f"/d{i // PER_DIR:04d}/f{i:06d}", b"small file %d\n" % i)
                if (i + 1) % 100_000 == 0:
                    await vault.commit()
                    print(f"  {i + 1:,} entries, {time.perf_counter() - t:.0f} s", flush=True)
            for j in range(BIG_DIR):
                await vault.put(f"/big/e{j:04d}", b"x")
            await vault.commit()

    asyncio.run(main())


def probe(url: str, home: Path) -> dict[str, float]:
    env = {**os.environ, "SIGMAVAULT_HOME": str(home), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", PROBE, url, PASSWORD], env=env, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def make_tree(root: Path, files: int) -> None:
    for i in range(files):
        d = root / f"d{i // PER_DIR:04d}"
        if i % PER_DIR == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:06d}").write_bytes(os.urandom(64 + i % 1024))


def backups(work: Path, files: int) -> dict[str, dict[str, float]]:
    tree = work / "tree"
    if not (tree / ".complete").exists():
        shutil.rmtree(tree, ignore_errors=True)
        make_tree(tree, files)
        (tree / ".complete").touch()
    out: dict[str, dict[str, float]] = {}
    sv_env = {"SIGMAVAULT_HOME": str(work / "sv-home"), "SIGMAVAULT_PASSPHRASE": PASSWORD,
              "SIGMAVAULT_VAULT": str(work / "sv-vault")}
    shutil.rmtree(work / "sv-home", ignore_errors=True)
    shutil.rmtree(work / "sv-vault", ignore_errors=True)
    run([SV, "create", "--kdf", "minimum"], sv_env)
    first = run([SV, "backup", str(tree)], sv_env)
    again = run([SV, "backup", str(tree)], sv_env)
    out["sigmavault"] = {"first_s": first[0], "unchanged_s": again[0], "rss_mib": again[1]}
    if shutil.which("restic"):
        r_env = {"RESTIC_PASSWORD": PASSWORD, "RESTIC_REPOSITORY": str(work / "restic-repo"),
                 "RESTIC_CACHE_DIR": str(work / "restic-cache")}
        shutil.rmtree(work / "restic-repo", ignore_errors=True)
        shutil.rmtree(work / "restic-cache", ignore_errors=True)
        run(["restic", "init"], r_env)
        first = run(["restic", "backup", "--quiet", "."], r_env, cwd=tree)
        again = run(["restic", "backup", "--quiet", "."], r_env, cwd=tree)
        out["restic"] = {"first_s": first[0], "unchanged_s": again[0], "rss_mib": again[1]}
    return out


def main() -> None:
    if sys.argv[1:2] == ["--build-only"]:
        build(sys.argv[2], int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--backup-files", type=int, default=100_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/sv-scale"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    url = str(args.work / f"vault-{args.entries}")
    if not (Path(url) / ".built").exists():
        shutil.rmtree(url, ignore_errors=True)
        print(f"building a vault of {args.entries:,} entries (once) ...", flush=True)
        t = time.perf_counter()
        # in a child: this process stays small, so the peak RSS the probes and backups report (their
        # own; a forked child starts with its parent's resident pages) is theirs alone
        subprocess.run([sys.executable, __file__, "--build-only", url, str(args.entries)], check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
        (Path(url) / ".built").write_text(f"{time.perf_counter() - t:.0f} s\n")
    home = args.work / "device"
    shutil.rmtree(home, ignore_errors=True)
    fresh = probe(url, home)
    warm = probe(url, home)
    print(f"\n{args.entries:,} entries in {args.entries // PER_DIR:,} directories (target)")
    print(f"{'':<12}{'fresh device':>14}{'warm device':>14}")
    for key, unit, scale, target in (("open", "s", 1, 2), ("ls", "s", 1, 0.2), ("stat", "ms", 1000, 10),
                                     ("commit", "s", 1, 0.5), ("rss_mib", "MiB", 1, 250)):
        label = f"{key} ({unit})"
        print(f"{label:<12}{fresh[key] * scale:>14.3f}{warm[key] * scale:>14.3f}   ≤ {target}")
    print(f"\nunchanged backup of {args.backup_files:,} small files (whole process)")
    back = backups(args.work, args.backup_files)
    for tool, r in back.items():
        print(f"{tool:<12} first {r['first_s']:.1f} s, unchanged {r['unchanged_s']:.1f} s, peak RSS "
              f"{r['rss_mib']:.0f} MiB")
    if "restic" in back:
        ratio = back["restic"]["unchanged_s"] / back["sigmavault"]["unchanged_s"]
        print(f"sigmavault unchanged backup: {ratio:.2f}x restic's speed")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps({"entries": args.entries, "fresh": fresh, "warm": warm,
                                                     "backup": back}, indent=2))


if __name__ == "__main__":
    main()
