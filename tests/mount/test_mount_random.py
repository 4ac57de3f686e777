"""A randomized sequence of file operations applied to the mount and to a plain directory in lockstep.

Every operation must have the same outcome on both (same result or same errno), and the trees
must stay identical. The seed is printed (and named in the failure) to replay a failing run:
``SV_MOUNT_SEED=<seed> pytest tests/mount/test_mount_random.py``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from mounttools import Mounts, needs_fuse

pytestmark = needs_fuse

NAMES = ["a", "b", "c", "d"]
MAX_OFF = 3 << 20


def outcome(fn: Callable[[Path], object], root: Path) -> tuple[str, object]:
    try:
        return "ok", fn(root)
    except OSError as exc:
        return "err", exc.errno


def snapshot(root: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = ("dir", None) if p.is_dir() else ("file", p.read_bytes())
    return out


class Ops:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def path(self, model: Path, *, existing: bool) -> str:
        rng = self.rng
        if existing:
            entries = [str(p.relative_to(model)) for p in model.rglob("*")]
            if entries and rng.random() < 0.85:
                return rng.choice(entries)
        dirs = [""] + [str(p.relative_to(model)) for p in model.rglob("*") if p.is_dir()]
        return os.path.join(rng.choice(dirs), rng.choice(NAMES))

    def pick(self, model: Path) -> tuple[str, Callable[[Path], object]]:
        rng = self.rng
        kind = rng.choices(["create", "write", "truncate", "rename", "unlink", "mkdir", "rmdir", "readdir",
                            "read", "stat", "fsync"], [12, 25, 8, 8, 6, 6, 3, 6, 14, 6, 2])[0]
        p = self.path(model, existing=kind not in ("create", "mkdir"))
        if kind == "create":
            data = rng.randbytes(rng.choice([0, 10, 1500, 70_000, (1 << 20) + 5]))

            def create(root: Path) -> object:
                (root / p).write_bytes(data)
                return None
            return f"create {p} {len(data)}", create
        if kind == "write":
            off = rng.choice([0, rng.randrange(MAX_OFF), (1 << 20) - 3, 2 << 20])
            data = rng.randbytes(rng.choice([1, 100, 4096, 200_000]))

            def write(root: Path) -> object:
                fd = os.open(root / p, os.O_WRONLY)
                try:
                    return os.pwrite(fd, data, off)
                finally:
                    os.close(fd)
            return f"write {p} @{off} +{len(data)}", write
        if kind == "truncate":
            size = rng.choice([0, rng.randrange(MAX_OFF), 1 << 20, 1500])
            return f"truncate {p} {size}", lambda root: os.truncate(root / p, size)
        if kind == "rename":
            q = self.path(model, existing=rng.random() < 0.5)
            return f"rename {p} {q}", lambda root: os.rename(root / p, root / q)
        if kind == "unlink":
            return f"unlink {p}", lambda root: os.unlink(root / p)
        if kind == "mkdir":
            return f"mkdir {p}", lambda root: os.mkdir(root / p)
        if kind == "rmdir":
            return f"rmdir {p}", lambda root: os.rmdir(root / p)
        if kind == "readdir":
            return f"readdir {p}", lambda root: sorted(os.listdir(root / p))
        if kind == "stat":
            def st(root: Path) -> object:
                s = os.lstat(root / p)
                return (s.st_mode & 0o170000, s.st_size if not os.path.isdir(root / p) else 0)
            return f"stat {p}", st
        if kind == "fsync":
            def fsync(root: Path) -> object:
                fd = os.open(root / p, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                return None
            return f"fsync {p}", fsync
        off, n = rng.randrange(MAX_OFF), rng.choice([1, 4096, 131072, 1 << 20])

        def read(root: Path) -> object:
            fd = os.open(root / p, os.O_RDONLY)
            try:
                return os.pread(fd, n, off)
            finally:
                os.close(fd)
        return f"read {p} @{off} +{n}", read


def lockstep(mounts: Mounts, tmp_path: Path, n_ops: int, extra: tuple[str, ...] = ()) -> None:
    seed = int(os.environ.get("SV_MOUNT_SEED", random.randrange(1 << 32)))
    print(f"seed={seed}")
    rng = random.Random(seed)
    model = tmp_path / "model"
    model.mkdir()
    m = mounts.mount("mnt", *extra)
    real = m.mountpoint
    ops = Ops(rng)
    history: list[str] = []
    for i in range(n_ops):
        what, fn = ops.pick(model)
        history.append(what)
        expect, got = outcome(fn, model), outcome(fn, real)
        if expect != got:
            (tmp_path / "history.txt").write_text("\n".join(history))
            pytest.fail(f"seed={seed} op {i} {what}: plain dir {expect!r:.200} mount {got!r:.200}\n"
                        + "\n".join(history[-15:]))
        if i % 100 == 99 or i == n_ops - 1:
            if snapshot(model) != snapshot(real):
                pytest.fail(f"seed={seed}: trees differ after op {i}\n" + "\n".join(history[-15:]))
    assert m.stop() == 0
    again = mounts.mount("mnt")
    assert snapshot(model) == snapshot(again.mountpoint), f"seed={seed}: remount differs"


def test_random_ops_500(mounts: Mounts, tmp_path: Path) -> None:
    lockstep(mounts, tmp_path, 500, ("--commit-interval", "0.5"))


def test_random_ops_small_write_cache(mounts: Mounts, tmp_path: Path) -> None:
    """A 4 MiB write cache: writers wait and flushes happen in the middle of files."""
    lockstep(mounts, tmp_path, 300, ("--write-cache", "4", "--memory-cache", "2", "--disk-cache", "2"))


@pytest.mark.slow
def test_random_ops_5000(mounts: Mounts, tmp_path: Path) -> None:
    lockstep(mounts, tmp_path, 5000, ("--commit-interval", "1"))
