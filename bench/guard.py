"""The guard's evaluation: scripted benign runs and attacks, through the real ``sigmavault backup``.

    .venv/bin/python bench/guard.py [--seeds 3] [--work /tmp/sv-guard] [--out DIR] [--compare-isolation-forest]

A home-like tree (~250 files: plain-text notes, office documents (zip containers), JPEG-like photos,
a Python and a C project, rotating logs, and a local git repository with two branches) is backed up
once; then each scenario changes a copy of it and backs it up again (the scored runs). Two modes:
*fixed* (a fresh vault: fewer than ``baseline_runs`` earlier runs, the fixed thresholds) and
*baseline* (six small benign runs first, so robust z-scores against the vault's own history apply).

Benign: git branch switches (two), building the C and Python projects in place then rebuilding after
an edit (two), re-saving office documents and editing notes (two), adding a photo folder, a
``pip install``-like tree of new files, log rotation with gzip (two).
Attacks: encrypting 1 %, 5 %, 20 %, 100 % of the files in place, or renamed to ``.locked``; slow
encryption (2 % or 1 % per backup over five backups: detected if any of them is flagged); mass
deletion (half the files). Reads through a real FUSE mount (benign reads and exfiltration-like copies) are scored by
the mount's read signal: see ``bench/guardmount.py``. Prints the detection (attacks) and
false-positive (benign) rate per class and mode and writes ``guard.json``. No network is needed
(the git repository is built locally).

``--compare-isolation-forest`` (needs scikit-learn, the ``bench`` extra) also fits scikit-learn's
IsolationForest, per seed, on the per-run feature vectors the shipped baseline uses (each signal's
share of the existing files, of the clean runs ``guard state`` returns: the seed's first backup and
its six small benign runs) and scores the same scored runs (baseline mode) with it, side by side
with the shipped robust z-scores (``engine/anomaly.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from guardmount import ATTACK_READS, BENIGN_READS, Reads, read_run

ROOT = Path(__file__).resolve().parent.parent
PASS = "bench guard passphrase"
WORDS = ["the", "quarterly", "report", "shows", "revenue", "growth", "in", "every", "region", "while", "costs",
         "stayed", "flat", "and", "team", "plans", "to", "hire", "two", "engineers", "next", "spring", "work", "on",
         "storage", "layer", "sync", "client"]


def prose(rng: random.Random, n: int) -> str:
    return "\n".join(" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(n)) + "\n"


def docx(path: Path, rng: random.Random) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", f"<w:document><w:body>{prose(rng, rng.randint(40, 200))}</w:body></w:document>")


def jpeg(path: Path, rng: random.Random) -> None:
    path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + rng.randbytes(rng.randint(20_000, 80_000)) + b"\xff\xd9")


def git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@x", "GIT_CONFIG_GLOBAL": "/dev/null"}
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


def build_home(home: Path, rng: random.Random) -> None:
    for i in range(80):
        d = home / "notes" / f"y{2020 + i % 4}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"note{i:03}.md").write_text(prose(rng, rng.randint(10, 150)))
    (home / "office").mkdir()
    for i in range(30):
        docx(home / "office" / f"report{i:02}.docx", rng)
    (home / "photos").mkdir()
    for i in range(30):
        jpeg(home / "photos" / f"IMG_{1000 + i}.jpg", rng)
    py = home / "code" / "pyproj" / "pkg"
    py.mkdir(parents=True)
    for i in range(30):
        comment = "# " + prose(rng, 20).replace("\n", "\n# ")
        (py / f"mod{i:02}.py").write_text(f"def f{i}(x):\n    return x * {i}\n\n" + comment)
    c = home / "code" / "cproj"
    c.mkdir()
    for i in range(8):
        (c / f"unit{i}.c").write_text(f"int unit{i}(int x) {{ return x * {i} + {rng.randint(0, 99)}; }}\n")
    (c / "main.c").write_text("int unit0(int);\nint main(void) { return unit0(1); }\n")
    logs = home / "logs"
    logs.mkdir()
    for name in ("app.log", "app.log.1", "app.log.2"):
        (logs / name).write_text(prose(rng, 300))
    repo = home / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for i in range(50):
        (repo / f"src{i:02}.txt").write_text(prose(rng, 30))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "main")
    git(repo, "checkout", "-qb", "feature")
    for i in range(15):
        (repo / f"src{i:02}.txt").write_text(prose(rng, 35))
    for i in range(45, 50):
        (repo / f"src{i:02}.txt").unlink()
    for i in range(5):
        (repo / f"new{i}.txt").write_text(prose(rng, 10))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "feature")
    git(repo, "checkout", "-q", "main")


def files(home: Path) -> list[Path]:
    return sorted(p for p in home.rglob("*") if p.is_file() and not p.is_symlink())


# --- scenarios: each is a list of steps; a backup follows each step (one scored run) -----------------


def git_switch(home: Path, rng: random.Random) -> list[Callable[[], None]]:
    repo = home / "repo"
    return [lambda: git(repo, "checkout", "-q", "feature"), lambda: git(repo, "checkout", "-q", "main")]


def build(home: Path, rng: random.Random) -> list[Callable[[], None]]:
    c = home / "code" / "cproj"

    def make() -> None:
        for src in sorted(c.glob("*.c")):
            subprocess.run(["gcc", "-O1", "-c", str(src), "-o", str(src.with_suffix(".o"))], check=True)
        subprocess.run(["gcc", "-o", str(c / "app"), *map(str, sorted(c.glob("*.o")))], check=True)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(home / "code" / "pyproj")], check=True)

    def edit_and_rebuild() -> None:
        (c / "unit3.c").write_text("int unit3(int x) { return x - 3; }\n")
        (home / "code" / "pyproj" / "pkg" / "mod05.py").write_text("def f5(x):\n    return -x\n")
        make()

    return [make, edit_and_rebuild]


def office(home: Path, rng: random.Random) -> list[Callable[[], None]]:
    def save() -> None:
        docs = sorted((home / "office").glob("*.docx"))
        for d in rng.sample(docs, 9):
            docx(d, rng)
        notes = files(home / "notes")
        for n in rng.sample(notes, 8):
            n.write_text(n.read_text() + prose(rng, 5))

    return [save, save]


def photos(home: Path, rng: random.Random) -> list[Callable[[], None]]:
    def add() -> None:
        d = home / "photos" / "2026-holiday"
        d.mkdir()
        for i in range(100):
            jpeg(d / f"DSC{i:04}.jpg", rng)

    return [add]


def install(home: Path, rng: random.Random) -> list[Callable[[], None]]:
    def pip() -> None:
        site = home / "code" / "pyproj" / ".venv" / "lib" / "site-packages"
        for p in range(20):
            pkg = site / f"package{p}"
            pkg.mkdir(parents=True)
            for i in range(15):
                (pkg / f"m{i}.py").write_text(f"VALUE = {i}\n" + prose(rng, 10))
            (pkg / "_speedups.so").write_bytes(b"\x7fELF" + rng.randbytes(30_000))
            (pkg / "data.bin").write_bytes(rng.randbytes(5_000))  # opaque, but new: never counts

    return [pip]


def rotate(home: Path, rng: random.Random) -> list[Callable[[], None]]:
    logs = home / "logs"

    def once() -> None:
        (logs / "app.log.2").unlink(missing_ok=True)
        for old in sorted(logs.glob("app.log.*.gz"), reverse=True):
            n = int(old.name.split(".")[2])
            old.rename(logs / f"app.log.{n + 1}.gz") if n < 5 else old.unlink()
        subprocess.run(["gzip", "-f", str(logs / "app.log.1")], check=True)  # app.log.1 -> app.log.1.gz
        (logs / "app.log").rename(logs / "app.log.1")
        (logs / "app.log").write_text(prose(rng, 300))

    return [once, once]


def encrypt(share: float, rename: bool) -> Callable[[Path, random.Random], list[Callable[[], None]]]:
    def scenario(home: Path, rng: random.Random) -> list[Callable[[], None]]:
        def attack() -> None:
            every = files(home)
            for f in rng.sample(every, max(1, round(share * len(every)))):
                data = rng.randbytes(f.stat().st_size + 16)
                if rename:
                    f.unlink()
                    f = f.with_name(f.name + ".locked")
                f.write_bytes(data)

        return [attack]

    return scenario


def slow(share: float) -> Callable[[Path, random.Random], list[Callable[[], None]]]:
    def scenario(home: Path, rng: random.Random) -> list[Callable[[], None]]:
        hit: set[Path] = set()

        def step() -> None:
            left = [f for f in files(home) if f not in hit]
            for f in rng.sample(left, round(share * len(files(home)))):
                f.write_bytes(rng.randbytes(f.stat().st_size + 16))
                hit.add(f)

        return [step] * 5

    return scenario


def delete(home: Path, rng: random.Random) -> list[Callable[[], None]]:
    return [lambda: [f.unlink() for f in rng.sample(files(home), len(files(home)) // 2)] and None]


BENIGN = {"git branch switch": git_switch, "build in place": build, "office docs": office,
          "photo folder": photos, "pip install": install, "log rotation": rotate}
ATTACKS = {
    **{f"encrypt {int(p * 100)}% in place": encrypt(p, False) for p in (0.01, 0.05, 0.2, 1.0)},
    **{f"encrypt {int(p * 100)}% renamed": encrypt(p, True) for p in (0.01, 0.05, 0.2, 1.0)},
    "slow encryption (2%/run x5)": slow(0.02), "slow encryption (1%/run x5)": slow(0.01),
    "mass deletion (50%)": delete,
}


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work

    def cli(self, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMAVAULT_")}
        env.update(SIGMAVAULT_HOME=str(state / "home"), SIGMAVAULT_PASSPHRASE=PASS, PYTHONPATH=str(ROOT))
        p = subprocess.run([sys.executable, "-m", "sigmavault", "--vault", str(state / "vault"), "--json", *args],
                           env=env, capture_output=True, text=True)
        if p.returncode:
            raise SystemExit(f"sigmavault {' '.join(args)} failed: {p.stderr}")
        return p

    def backup(self, state: Path) -> tuple[bool, dict[str, int] | None]:
        """One backup of the tree: was it flagged, and its counts if the output says them (a flagged
        run's; an empty dict when nothing changed, so no run was recorded; None: in the vault only)."""
        p = self.cli(state, "backup", str(self.work / "tree"))
        events = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
        anomaly = [e for e in events if e.get("event") == "anomaly"]
        assert bool(anomaly) == ("suspicious change" in p.stderr)
        done = events[-1]
        if anomaly:
            return True, anomaly[0]["counts"]
        return False, {} if done["generation"] == done["previous_generation"] else None

    def base(self, seed: int, warm: bool) -> Path:
        """The starting state (tree, vault, device) for one seed and mode, built once and copied."""
        state = self.work / f"base-{seed}-{'baseline' if warm else 'fixed'}"
        if not state.exists():
            rng = random.Random(seed)
            tree = self.work / "tree"
            shutil.rmtree(tree, ignore_errors=True)
            build_home(tree, rng)
            state.mkdir(parents=True)
            self.cli(state, "create", "--kdf", "minimum")
            self.backup(state)
            for _ in range(6 if warm else 0):  # ordinary days: a few notes edited, one added
                notes = files(tree / "notes")
                for n in rng.sample(notes, 3):
                    n.write_text(n.read_text() + prose(rng, 3))
                (tree / "notes" / f"day{rng.randrange(10**6)}.md").write_text(prose(rng, 20))
                self.backup(state)
            shutil.copytree(tree, state / "tree", symlinks=True)
        return state

    def fresh(self, seed: int, warm: bool) -> Path:
        """A copy of the seed's starting state as ``work/run``, its tree as ``work/tree``."""
        base = self.base(seed, warm)
        state = self.work / "run"
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(self.work / "tree", ignore_errors=True)
        shutil.copytree(base, state, symlinks=True, ignore=shutil.ignore_patterns("tree"))
        shutil.copytree(base / "tree", self.work / "tree", symlinks=True)
        return state

    def run(self, seed: int, warm: bool, scenario: Callable[[Path, random.Random], list[Callable[[], None]]],
            counts: bool = False) -> list[tuple[bool, dict[str, int]]]:
        """Each step and its backup: flagged, and (``counts``) the run's counts."""
        state = self.fresh(seed, warm)
        rng = random.Random(seed * 7919 + 1)
        out = []
        for step in scenario(self.work / "tree", rng):
            step()
            out.append(self.backup(state))
        if counts and any(c is None for _, c in out):  # the clean runs' counts: from the vault, newest first
            clean = iter(self.clean_runs(state))
            out = [(f, next(clean) if c is None else c) for f, c in reversed(out)][::-1]
        return [(f, c or {}) for f, c in out]

    def clean_runs(self, state: Path) -> list[dict[str, int]]:
        """The counts of the vault's clean scored runs (the baseline the shipped method uses), newest first."""
        sys.path.insert(0, str(ROOT))
        import asyncio

        import sigmavault

        os.environ["SIGMAVAULT_HOME"] = str(state / "home")

        async def go() -> list[dict[str, int]]:
            async with await sigmavault.open(str(state / "vault"), passphrase=PASS) as v:
                return (await v.guard_state()).baseline

        return asyncio.run(go())

    def read(self, seed: int, reads: Reads) -> bool:
        """One read workload through a mount of the seed's vault: did the mount warn?"""
        state = self.fresh(seed, False)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMAVAULT_")}
        env.update(SIGMAVAULT_HOME=str(state / "home"), SIGMAVAULT_PASSPHRASE=PASS, PYTHONPATH=str(ROOT))
        return read_run(state, env, reads, random.Random(seed * 7919 + 2),
                        lambda mp: json.loads(self.cli(state, "stats", str(mp)).stdout))


def rates(kind: str, flags: list[list[bool]]) -> tuple[int, int]:
    """(runs, flagged): every benign run counts; an attack is caught if any of its runs is flagged."""
    if kind == "benign":
        return sum(len(f) for f in flags), sum(sum(f) for f in flags)
    return len(flags), sum(any(f) for f in flags)


def isolation_forest(train: list[dict[str, int]], runs: list[dict[str, int]], seed: int) -> list[bool]:
    """Flags of ``runs`` by an IsolationForest fitted on ``train`` (the same features as the baseline)."""
    sys.path.insert(0, str(ROOT))
    from sklearn.ensemble import IsolationForest  # type: ignore[import-untyped]

    from sigmavault.engine.anomaly import SIGNALS

    def x(rs: list[dict[str, int]]) -> list[list[float]]:
        return [[1000 * r.get(n, 0) / max(1, r.get("existing", 0)) for n in SIGNALS] for r in rs]

    model = IsolationForest(random_state=seed).fit(x(train))
    return [bool(v == -1) for v in model.predict(x(runs))] if runs else []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("/tmp/sv-guard"))
    ap.add_argument("--out", type=Path, default=Path("."))
    ap.add_argument("--only", metavar="TEXT", help="only the classes whose name contains TEXT (e.g. renamed)")
    ap.add_argument("--compare-isolation-forest", action="store_true",
                    help="also score the baseline-mode runs with scikit-learn's IsolationForest (the bench extra)")
    ap.add_argument("--no-mount", action="store_true", help="leave out the reads through a FUSE mount")
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    b = Bench(args.work)
    rows: list[dict[str, Any]] = []
    seen: dict[str, list[list[dict[str, int]]]] = {}  # class -> per seed, its baseline-mode runs' counts
    train = {seed: b.clean_runs(b.fresh(seed, True)) for seed in range(args.seeds)} if args.compare_isolation_forest \
        else {}
    for kind, table in (("benign", BENIGN), ("attack", ATTACKS)):
        for name, scenario in table.items():
            if args.only and args.only not in name:
                continue
            row: dict[str, Any] = {"kind": kind, "class": name}
            for warm in (False, True):
                mode = "baseline" if warm else "fixed"
                results = [b.run(seed, warm, scenario, counts=warm and bool(train)) for seed in range(args.seeds)]
                row[mode] = rates(kind, [[f for f, _ in r] for r in results])
                if warm and train:
                    row["isolation forest"] = rates(kind, [isolation_forest(train[seed], [c for _, c in r], seed)
                                                           for seed, r in enumerate(results)])
                    seen[name] = [[c for _, c in r] for r in results]
            rows.append(row)
            print(json.dumps(row), flush=True)
    for row in rows if train else []:  # trained on more: also the seed's runs of every other benign class

        def more(s: int, name: str = row["class"]) -> list[dict[str, int]]:
            return train[s] + [c for n, by_seed in seen.items() if n != name and n in BENIGN for c in by_seed[s]]

        row["isolation forest, more history"] = rates(row["kind"], [
            isolation_forest(more(s), seen[row["class"]][s], s) for s in range(args.seeds)])
    if not args.no_mount:
        for kind, reads in (("benign", BENIGN_READS), ("attack", ATTACK_READS)):
            for name, fn in reads.items():
                if args.only and args.only not in name:
                    continue
                row = {"kind": kind, "class": name, "mount": rates(kind, [[b.read(s, fn)] for s in range(args.seeds)])}
                rows.append(row)
                print(json.dumps(row), flush=True)
    (args.out / "guard.json").write_text(json.dumps(rows, indent=1))
    cols = ["fixed", "baseline", *(["isolation forest", "isolation forest, more history"] if train else [])]
    print(f"\n| class | kind | {' | '.join(cols)} |\n|---|---|{'---|' * len(cols)}")
    for r in rows:
        label = "false positives" if r["kind"] == "benign" else "detected"
        if "mount" in r:  # one signal, no baseline: the same cell in every column
            cells = [f"{label} {r['mount'][1]}/{r['mount'][0]} (mount reads)"] + ["same"] * (len(cols) - 1)
        else:
            cells = [f"{label} {r[c][1]}/{r[c][0]}" for c in cols]
        print(f"| {r['class']} | {r['kind']} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
