"""A tree deeper than Python's recursion limit (1200 levels) imports, lists, exports, diffs, commits and merges."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from vaulttools import new_vault, reopen

from sigmavault.engine.transfer.exporter import export_tree
from sigmavault.engine.transfer.importer import import_paths

DEPTH = 1200
DEEP = "/".join(["d"] * DEPTH)


@pytest.fixture()
def deep_tmp(tmp_path: Path) -> Iterator[Path]:
    """tmp_path, emptied with rm -rf afterwards (pytest's own cleanup recurses and would fail)."""
    yield tmp_path
    for child in tmp_path.iterdir():
        subprocess.run(["rm", "-rf", str(child)], check=True)


def make_deep(root: Path) -> None:
    """``root/d/d/…/d/leaf`` and a symlink beside it, made without recursion (os.makedirs recurses)."""
    fd = os.open(root, os.O_RDONLY)
    for _ in range(DEPTH):
        os.mkdir("d", dir_fd=fd)
        nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    with open(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as f:
        f.write(b"bottom")
    os.symlink("leaf", "ln", dir_fd=fd)
    os.close(fd)


def read_deep(root: Path, name: str) -> bytes:
    fd = os.open(root, os.O_RDONLY)
    for _ in range(DEPTH):
        nfd = os.open("d", os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
        os.close(fd)
        fd = nfd
    try:
        if name == "ln":
            return os.readlink(name, dir_fd=fd).encode()
        with open(os.open(name, os.O_RDONLY, dir_fd=fd), "rb") as f:
            return f.read()
    finally:
        os.close(fd)


async def test_a_1200_level_tree_goes_through_every_tree_walk(deep_tmp: Path) -> None:
    tmp_path = deep_tmp
    src = tmp_path / "src"
    src.mkdir()
    make_deep(src)
    url = tmp_path / "v"
    async with await new_vault(url) as v:
        report = await import_paths(v, [src], "/")
        assert report.directories == DEPTH + 1 and report.files == 1 and report.symlinks == 1
        assert await v.commit() == 1
        assert [e.name for e in await v.ls(f"/src/{DEEP}")] == ["leaf", "ln"]
        await v.put(f"/src/{DEEP}/leaf", b"changed")
        assert await v.commit() == 2
        changes = [c async for c in v.diff(1, 2)]
        assert [(c.kind, c.path) for c in changes] == [("modified", f"/src/{DEEP}/leaf")]
        out = await export_tree(v, "/src", tmp_path / "out")
        assert out.directories == DEPTH + 1 and out.bytes == len(b"changed")
    assert read_deep(tmp_path / "out", "leaf") == b"changed" and read_deep(tmp_path / "out", "ln") == b"leaf"
    # two writers edit the deep directory at once: the loser merges three ways through 1200 levels
    a, b = await reopen(url), await reopen(url)
    try:
        await a.put(f"/src/{DEEP}/from-a", b"a")
        await b.put(f"/src/{DEEP}/from-b", b"b")
        assert await a.commit() == 3
        assert await b.commit() == 4
        assert [e.name for e in await b.ls(f"/src/{DEEP}")] == ["from-a", "from-b", "leaf", "ln"]
    finally:
        await a.aclose()
        await b.aclose()
