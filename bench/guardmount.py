"""The guard's exfiltration class for bench/guard.py: reads of the bench's tree through a real FUSE mount.

Each run mounts a copy of the seed's vault with ``--guard warn``, reads through the mount (a benign
workload or an exfiltration-like copy), asks the running mount for its stats and unmounts; the run is
flagged if the mount counted a read warning (``guard.read_warnings``: distinct files opened for
reading that are at least 50 and at least half of the vault's files within 10 minutes; see
``mount/watch.py``). The tree holds about 330 files (a third of them the git repository's ``.git``).

Benign: opening a handful of documents; ``grep -r`` over the code and the repository's work tree;
building the C project and byte-compiling the Python one from the mount; ``git status`` and
``git log -p`` in the repository. Attacks: a full copy (``cp -r``-like), a tar of the tree, a copy
of everything but the git repository (~55 % of the files), and a copy of the documents only (notes,
office files, photos: ~42 %, under the share on purpose: what a narrower exfiltration looks like).
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "mount"))
from mounttools import is_alive, is_mounted

Reads = Callable[[Path, Path, random.Random], None]  # (the tree in the mount, a scratch folder, rng)


def documents(tree: Path, scratch: Path, rng: random.Random) -> None:
    picks = [*rng.sample(sorted((tree / "office").glob("*.docx")), 4),
             *rng.sample(sorted((tree / "notes").rglob("*.md")), 4),
             *rng.sample(sorted((tree / "photos").glob("*")), 2)]
    for p in picks:
        p.read_bytes()


def grep(tree: Path, scratch: Path, rng: random.Random) -> None:
    subprocess.run(["grep", "-r", "-l", "--exclude-dir=.git", "-e", "return", str(tree / "code"), str(tree / "repo")],
                   capture_output=True, check=False)  # 1: nothing found, which is fine


def build(tree: Path, scratch: Path, rng: random.Random) -> None:
    for src in sorted((tree / "code" / "cproj").glob("*.c")):
        subprocess.run(["gcc", "-O1", "-c", str(src), "-o", str(scratch / f"{src.stem}.o")], check=True)
    for py in sorted((tree / "code" / "pyproj").rglob("*.py")):
        compile(py.read_bytes(), str(py), "exec")


def git_history(tree: Path, scratch: Path, rng: random.Random) -> None:
    for args in (["status", "--porcelain"], ["log", "-p", "--all"]):
        subprocess.run(["git", "-c", "safe.directory=*", "-C", str(tree / "repo"), *args], capture_output=True,
                       check=True)


def copy_all(tree: Path, scratch: Path, rng: random.Random) -> None:
    shutil.copytree(tree, scratch / "loot", symlinks=True)


def tar_all(tree: Path, scratch: Path, rng: random.Random) -> None:
    with tarfile.open(scratch / "loot.tar", "w") as t:
        t.add(tree, "loot")


def copy_but_repo(tree: Path, scratch: Path, rng: random.Random) -> None:
    shutil.copytree(tree, scratch / "loot", symlinks=True, ignore=shutil.ignore_patterns("repo"))


def copy_documents(tree: Path, scratch: Path, rng: random.Random) -> None:
    for d in ("notes", "office", "photos"):
        shutil.copytree(tree / d, scratch / "loot" / d, symlinks=True)


BENIGN_READS: dict[str, Reads] = {"mount: open a few documents": documents, "mount: grep -r code and repo": grep,
                                  "mount: build from the mount": build, "mount: git status + log -p": git_history}
ATTACK_READS: dict[str, Reads] = {"mount: full copy (exfiltration)": copy_all, "mount: tar of the tree": tar_all,
                                  "mount: copy all but the repo (55%)": copy_but_repo,
                                  "mount: copy documents only (42%)": copy_documents}


def read_run(state: Path, env: dict[str, str], reads: Reads, rng: random.Random,
             stats: Callable[[Path], dict[str, object]]) -> bool:
    """Mount ``state``'s vault (guard warn), run ``reads``, and say whether the mount warned."""
    mp, scratch = state / "mnt", state / "scratch"
    mp.mkdir()
    scratch.mkdir()
    with open(state / "mount.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "sigmavault.cli.mount", "--vault", str(state / "vault"), "mount",
                                 str(mp), "--cache-dir", str(state / "cache"), "--guard", "warn"],
                                env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while not is_alive(mp):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the mount did not come up: {(state / 'mount.log').read_text()}")
            time.sleep(0.05)
        reads(mp / "tree", scratch, rng)
        guard = stats(mp)["guard"]
        assert isinstance(guard, dict)
        print(f"  reads: {guard['reads_counted']} distinct files counted, {guard['read_warnings']} warnings",
              flush=True)
        return bool(guard["read_warnings"])
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(120)
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        if is_mounted(mp):
            subprocess.run(["fusermount3", "-u", "-z", str(mp)], capture_output=True, check=False)

