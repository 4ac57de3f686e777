"""sigmavault against restic, rclone crypt, borg, age and gocryptfs on the same data, same machine.

    bench/run                      # installs the peers (Debian), then runs this with defaults
    .venv/bin/python bench/compare.py --runs 3 --size-mib 1024 --out bench/results

Datasets: a random file (incompressible), a compressible text file of the same size, and 10,000
small files of 1–16 KiB. Every tool imports each dataset into a fresh local repository and exports it
back; runs are interleaved (tool by tool within each round) so a noisy moment hurts everyone alike.
Each command runs as a child process; its wall time gives MB/s and ``wait4`` its peak RSS.
sigmavault runs with its default mixer (``--mixers process,thread,inline`` adds a row per executor).
After each import the bytes the tool's repository holds are recorded (``stored`` in results.json).

Prints a table of median MB/s, ratios against each peer, peak RSS and median CPU seconds (user +
system of the command and its waited-for children: steadier than wall time when other work shares the
cores; gocryptfs's FUSE daemon is not among them), writes ``results.json`` and a PNG chart into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SV = str(Path(sys.executable).parent / "sigmavault")
PASSWORD = "bench-passphrase-not-secret"


@dataclass
class Result:
    tool: str
    dataset: str
    op: str
    seconds: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # user + system CPU seconds (steadier than wall on a busy box)
    stored: list[int] = field(default_factory=list)  # bytes the tool's repository holds after the import
    nbytes: int = 0

    @property
    def mbps(self) -> float:
        return self.nbytes / 1e6 / statistics.median(self.seconds) if self.seconds else 0.0


def run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[float, float]:
    """Run ``cmd``; returns (seconds, peak RSS MiB of the child and its waited-for descendants)."""
    seconds, rss, _ = measure(cmd, env, cwd)
    return seconds, rss


def measure(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[float, float, float]:
    """Like :func:`run`, adding the user + system CPU seconds of the child and its waited-for descendants."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    dt = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise RuntimeError(f"{' '.join(cmd)} failed: {err[-2000:]}")
    return dt, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def prepare(data: Path, size_mib: int, small_files: int) -> dict[str, Path]:
    data.mkdir(parents=True, exist_ok=True)
    rnd = data / "random"
    if not (rnd / "random.bin").exists():
        rnd.mkdir(exist_ok=True)
        with open(rnd / "random.bin", "wb") as f:
            for _ in range(size_mib):
                f.write(os.urandom(1 << 20))
    text = data / "text"
    if not (text / "text.txt").exists():
        text.mkdir(exist_ok=True)
        words = [w.encode() for w in (ROOT / "bench" / "compare.py").read_text().split()] or [b"word"]
        line_no = 0
        with open(text / "text.txt", "wb") as f:
            written = 0
            while written < size_mib << 20:
                line = b"%08d " % line_no + b" ".join(words[(line_no * 7 + i) % len(words)] for i in range(12)) + b"\n"
                f.write(line)
                written += len(line)
                line_no += 1
    small = data / "small"
    if not (small / "done").exists():
        seed = os.urandom(1 << 20)
        for i in range(small_files):
            d = small / f"d{i // 500:03}"
            d.mkdir(parents=True, exist_ok=True)
            size = 1024 + (int.from_bytes(seed[i * 2 : i * 2 + 2], "big") % (15 * 1024))
            off = (i * 4099) % ((1 << 20) - size)
            (d / f"f{i:05}.bin").write_bytes(seed[off : off + size])
        (small / "done").write_text("ok")
    return {"random 1GiB": rnd, "text 1GiB": text, "10k small": small}


#: trees with more entries than this are not deleted during a run (see :class:`Trash`)
MANY_ENTRIES = 1000


class Trash:
    """Deletes what a run is done with, leaving trees of many files until the run ends.

    On an ext4 file system without a journal (this machine's root), a new inode is never one freed in
    the last 60 s (kernel ``recently_deleted()``), and finding one re-reads every such inode of the
    group: creating 10,000 files seconds after deleting 10,000 cost ten times the system time, most of
    an export's CPU (perf: ``find_get_block_common`` under ``recently_deleted``). Deleting the previous
    tool's 10,000 exported files right before the next tool's export made the small-file rows measure
    that, and the order of the tools. Such trees are renamed aside here and deleted once at the end.
    """

    def __init__(self, where: Path) -> None:
        self.where = where
        self.count = 0

    def discard(self, path: Path) -> None:
        if not path.exists():
            return
        if _entries_over(path, MANY_ENTRIES):
            self.where.mkdir(parents=True, exist_ok=True)
            self.count += 1
            path.rename(self.where / f"{self.count:05}")
        else:
            shutil.rmtree(path, ignore_errors=True)

    def empty(self) -> None:
        shutil.rmtree(self.where, ignore_errors=True)


def _entries_over(path: Path, limit: int) -> bool:
    seen = 0
    for _dir, dirs, files in os.walk(path):
        seen += len(dirs) + len(files)
        if seen > limit:
            return True
    return False


TRASH = Trash(ROOT / "bench" / "data" / "trash")


class Tool:
    name = ""

    def __init__(self, work: Path) -> None:
        self.work = work

    def fresh(self) -> None:
        TRASH.discard(self.work)
        self.work.mkdir(parents=True)

    def import_(self, src: Path) -> tuple[float, float, float]:
        raise NotImplementedError

    def export(self, dst: Path) -> tuple[float, float, float]:
        raise NotImplementedError

    #: where the tool keeps what it stored, below ``work`` (its size after an import is the stored bytes)
    repository = "repo"

    def stored(self) -> int:
        return tree_size(self.work / self.repository)


class Sigmavault(Tool):
    def __init__(self, work: Path, mixer: str) -> None:
        super().__init__(work)
        self.mixer = mixer
        self.name = f"sigmavault[{mixer}]"
        self.repository = "vault"
        # PYTHONDONTWRITEBYTECODE (set in some shells and CI images) leaves a fresh checkout without
        # bytecode: every run would compile the whole package again (~0.2 s of CPU a command, measured),
        # where an installed sigmavault runs from the bytecode pip wrote
        self.env = {"SIGMAVAULT_HOME": str(work / "home"), "SIGMAVAULT_PASSPHRASE": PASSWORD,
                    "SIGMAVAULT_MIXER": mixer, "SIGMAVAULT_VAULT": str(work / "vault"), "PYTHONDONTWRITEBYTECODE": ""}

    def fresh(self) -> None:
        super().fresh()
        run([SV, "create", "--kdf", "minimum"], self.env)

    def import_(self, src: Path) -> tuple[float, float, float]:
        return measure([SV, "import", str(src), "--to", "/data"], self.env)

    def export(self, dst: Path) -> tuple[float, float, float]:
        return measure([SV, "export", "/data", str(dst)], self.env)


class Restic(Tool):
    name = "restic"

    def __init__(self, work: Path) -> None:
        super().__init__(work)
        self.env = {"RESTIC_PASSWORD": PASSWORD, "RESTIC_REPOSITORY": str(work / "repo"),
                    "RESTIC_CACHE_DIR": str(work / "cache")}

    def fresh(self) -> None:
        super().fresh()
        run(["restic", "init"], self.env)

    def import_(self, src: Path) -> tuple[float, float, float]:
        return measure(["restic", "backup", "--quiet", "."], self.env, cwd=src)

    def export(self, dst: Path) -> tuple[float, float, float]:
        return measure(["restic", "restore", "latest", "--target", str(dst)], self.env)


class Borg(Tool):
    name = "borg"

    def __init__(self, work: Path) -> None:
        super().__init__(work)
        self.env = {"BORG_PASSPHRASE": PASSWORD, "BORG_REPO": str(work / "repo"),
                    "BORG_BASE_DIR": str(work / "base"), "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes"}

    def fresh(self) -> None:
        super().fresh()
        run(["borg", "init", "-e", "repokey-blake2"], self.env)

    def import_(self, src: Path) -> tuple[float, float, float]:
        return measure(["borg", "create", "::a", "."], self.env, cwd=src)

    def export(self, dst: Path) -> tuple[float, float, float]:
        dst.mkdir(parents=True, exist_ok=True)
        return measure(["borg", "extract", "::a"], self.env, cwd=dst)


class RcloneCrypt(Tool):
    name = "rclone crypt"
    repository = "remote"

    def __init__(self, work: Path) -> None:
        super().__init__(work)
        obscured = subprocess.run(["rclone", "obscure", PASSWORD], capture_output=True, text=True, check=True)
        self.env = {"RCLONE_CONFIG_SVB_TYPE": "crypt", "RCLONE_CONFIG_SVB_REMOTE": str(work / "remote"),
                    "RCLONE_CONFIG_SVB_PASSWORD": obscured.stdout.strip(), "RCLONE_CONFIG": "/dev/null"}

    def import_(self, src: Path) -> tuple[float, float, float]:
        return measure(["rclone", "copy", str(src), "svb:data"], self.env)

    def export(self, dst: Path) -> tuple[float, float, float]:
        return measure(["rclone", "copy", "svb:data", str(dst)], self.env)


class Age(Tool):
    """age encrypts one stream: files are tarred through it (as people do), single files directly."""

    name = "age"
    repository = "data.age"

    def fresh(self) -> None:
        super().fresh()
        run(["age-keygen", "-o", str(self.work / "key")])
        out = subprocess.run(["age-keygen", "-y", str(self.work / "key")], capture_output=True, text=True, check=True)
        self.recipient = out.stdout.strip()

    def import_(self, src: Path) -> tuple[float, float, float]:
        cmd = f"tar -C {src} -cf - . | age -r {self.recipient} -o {self.work / 'data.age'}"
        return measure(["bash", "-o", "pipefail", "-c", cmd])

    def export(self, dst: Path) -> tuple[float, float, float]:
        dst.mkdir(parents=True, exist_ok=True)
        cmd = f"age -d -i {self.work / 'key'} {self.work / 'data.age'} | tar -C {dst} -xf -"
        return measure(["bash", "-o", "pipefail", "-c", cmd])


class Gocryptfs(Tool):
    name = "gocryptfs"
    repository = "cipher"

    def fresh(self) -> None:
        self.unmount()
        super().fresh()
        (self.work / "pass").write_text(PASSWORD)
        (self.work / "cipher").mkdir()
        (self.work / "mnt").mkdir()
        run(["gocryptfs", "-init", "-q", "-passfile", str(self.work / "pass"), str(self.work / "cipher")])
        pw, cipher, mnt = str(self.work / "pass"), str(self.work / "cipher"), str(self.work / "mnt")
        run(["gocryptfs", "-q", "-passfile", pw, cipher, mnt])

    def unmount(self) -> None:
        if (self.work / "mnt").is_mount():
            subprocess.run(["fusermount3", "-u", str(self.work / "mnt")], check=False)

    def import_(self, src: Path) -> tuple[float, float, float]:
        return measure(["cp", "-a", f"{src}/.", str(self.work / "mnt")])

    def export(self, dst: Path) -> tuple[float, float, float]:
        dst.mkdir(parents=True, exist_ok=True)
        return measure(["cp", "-a", f"{self.work / 'mnt'}/.", str(dst)])


def chart(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = sorted({(r.dataset, r.op) for r in results})
    tools = list(dict.fromkeys(r.tool for r in results))
    fig, ax = plt.subplots(figsize=(12, 5))
    width = 0.8 / len(tools)
    for i, tool in enumerate(tools):
        values = [next((r.mbps for r in results if r.tool == tool and (r.dataset, r.op) == c), 0.0) for c in cases]
        ax.bar([x + i * width for x in range(len(cases))], values, width, label=tool)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(cases))], [f"{d}\n{o}" for d, o in cases], fontsize=8)
    ax.set_ylabel("MB/s (median)")
    ax.set_title("sigmavault vs peers, same data, same machine (higher is better)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def table(results: list[Result], peers: list[str]) -> str:
    lines = []
    head = f"{'dataset':<12} {'op':<7} {'tool':<22} {'MB/s':>8} {'RSS MiB':>8} {'CPU s':>6}  " + " ".join(
        f"{'vs ' + p:>14}" for p in peers)
    lines.append(head)
    lines.append("-" * len(head))
    for r in results:
        ratios = []
        for p in peers:
            peer = next((x for x in results if x.tool == p and x.dataset == r.dataset and x.op == r.op), None)
            ratios.append(f"{r.mbps / peer.mbps:>13.2f}x" if peer and peer.mbps and r.tool.startswith("sigma")
                          else f"{'':>14}")
        rss = max(r.rss_mib) if r.rss_mib else 0
        cpu = statistics.median(r.cpu) if r.cpu else 0
        lines.append(f"{r.dataset:<12} {r.op:<7} {r.tool:<22} {r.mbps:>8.1f} {rss:>8.1f} {cpu:>6.2f}  "
                     + " ".join(ratios))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--small-files", type=int, default=10_000)
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--tools", default="sigmavault,restic,rclone,borg,age,gocryptfs")
    ap.add_argument("--mixers", default="auto", help="sigmavault's mixer executors, one row each "
                    "(auto: the default; process,thread,inline compares them)")
    ap.add_argument("--datasets", default="random 1GiB,text 1GiB,10k small")
    args = ap.parse_args()
    global TRASH
    TRASH = Trash(args.work / "trash")
    TRASH.empty()  # a killed run's
    try:
        run_rounds(args)
    finally:
        TRASH.empty()


def run_rounds(args: argparse.Namespace) -> None:
    datasets = prepare(args.work / "src", args.size_mib, args.small_files)
    datasets = {k: v for k, v in datasets.items() if k in args.datasets.split(",")}
    wanted = args.tools.split(",")
    makers: list[Callable[[], Tool]] = []
    if "sigmavault" in wanted:
        makers += [lambda m=m: Sigmavault(args.work / f"sv-{m}", m) for m in args.mixers.split(",")]  # type: ignore[misc]
    for key, cls in (("restic", Restic), ("rclone", RcloneCrypt), ("borg", Borg), ("age", Age),
                     ("gocryptfs", Gocryptfs)):
        if key in wanted:
            makers.append(lambda cls=cls, key=key: cls(args.work / key))  # type: ignore[misc]
    tools = [make() for make in makers]
    results: dict[tuple[str, str, str], Result] = {}
    for round_no in range(args.runs):
        for name, src in datasets.items():
            nbytes = tree_size(src)
            for tool in tools:
                tool.fresh()
                out = args.work / "out"
                TRASH.discard(out)
                for op, fn in (("import", lambda t=tool, s=src: t.import_(s)),
                               ("export", lambda t=tool, o=out: t.export(o))):
                    dt, rss, cpu = fn()
                    r = results.setdefault((tool.name, name, op), Result(tool.name, name, op, nbytes=nbytes))
                    r.seconds.append(dt)
                    r.rss_mib.append(rss)
                    r.cpu.append(cpu)
                    if op == "import":
                        r.stored.append(tool.stored())
                    print(f"round {round_no + 1} {name:<12} {op:<7} {tool.name:<22} {nbytes / 1e6 / dt:8.1f} MB/s"
                          f"  rss {rss:6.1f} MiB  cpu {cpu:6.2f} s", flush=True)
                if isinstance(tool, Gocryptfs):
                    tool.unmount()
    ordered = sorted(results.values(), key=lambda r: (r.dataset, r.op, not r.tool.startswith("sigma"), r.tool))
    peers = [t.name for t in tools if not t.name.startswith("sigma")]
    text = table(ordered, peers)
    print()
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.txt").write_text(text + "\n")
    (args.out / "results.json").write_text(json.dumps(
        [{"tool": r.tool, "dataset": r.dataset, "op": r.op, "seconds": r.seconds, "rss_mib": r.rss_mib,
          "cpu_seconds": r.cpu, "stored": r.stored, "bytes": r.nbytes, "mbps": r.mbps} for r in ordered], indent=1))
    chart(ordered, args.out / "chart.png")
    print(f"\nwrote {args.out / 'table.txt'}, results.json and chart.png")


if __name__ == "__main__":
    main()
