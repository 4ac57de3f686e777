"""A co-writer holding the keys writes hostile catalogs (issue 10 item 8).

Each test writes a real generation with the real format code — the hostile co-writer edits the
in-memory tree of a real :class:`Vault` and commits it — then a fresh client (its own local state
and cache) must refuse the bad directory with an IntegrityError naming its path, quickly.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from vaulttools import MIB, new_vault, reopen

import sigmavault
from sigmavault import IntegrityError
from sigmavault.engine.catalog.tree import Dir, File, Meta
from sigmavault.engine.format.pages import BlobRef


async def _fresh(url: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> sigmavault.Vault:
    """The vault as a new device sees it: no local state, no page cache."""
    monkeypatch.setenv("SIGMAVAULT_HOME", str(home))
    return await reopen(url)


async def _dir_pages(v: sigmavault.Vault, path: str) -> list[BlobRef]:
    node = await v._tree.lookup([p.encode() for p in path.strip("/").split("/")])
    assert isinstance(node, Dir)
    return list(node.pages)


async def test_unaligned_blob_list_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = tmp_path / "v"
    content = os.urandom(2 * MIB + 1000)
    async with await new_vault(url) as v:
        await v.put("/d/f", content)
        await v.commit()
        node = await v._tree.lookup([b"d", b"f"])
        assert isinstance(node, File)
        full, _, tail = node.blobs
        # same bytes, same total size, but the short blob first: offsets of chunk 1 and 2 shift
        node.blobs = [tail, full, full]
        node.size = 2 * full.length + tail.length
        await v._tree.touch([b"d", b"f"])
        await v.commit()
    async with await _fresh(url, tmp_path / "fresh", monkeypatch) as fresh:
        with pytest.raises(IntegrityError, match=r"^/d: .*not chunk-aligned"):
            await fresh.read_bytes("/d/f")
        with pytest.raises(IntegrityError, match=r"^/d: "):
            await fresh.ls("/d")


async def _two_dirs(v: sigmavault.Vault) -> tuple[list[BlobRef], list[BlobRef]]:
    for name in ("a", "b"):
        await v.put(f"/one/{name}", name.encode())
    for name in ("b", "c"):
        await v.put(f"/two/{name}", name.encode() * 2)
    await v.commit()
    return await _dir_pages(v, "/one"), await _dir_pages(v, "/two")


async def _graft(v: sigmavault.Vault, path: str, pages: list[BlobRef]) -> None:
    """The co-writer's edit: a directory whose page list it chose."""
    async with v._lock:
        await v._tree.put([p.encode() for p in path.strip("/").split("/")], Dir(Meta.now(0o755), pages))


@pytest.mark.parametrize("order", ["overlap", "reversed"])
async def test_pages_must_hold_disjoint_ascending_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        order: str) -> None:
    url = tmp_path / "v"
    async with await new_vault(url) as v:
        one, two = await _two_dirs(v)
        await v.rm("/one", recursive=True)
        await v.rm("/two", recursive=True)
        await _graft(v, "/x/merged", one + two if order == "overlap" else two + one)
        await v.commit()
    async with await _fresh(url, tmp_path / "fresh", monkeypatch) as fresh:
        assert [s.name for s in await fresh.ls("/x")] == ["merged"]
        with pytest.raises(IntegrityError, match=r"^/x/merged: .*(overlap|out of order)"):
            await fresh.ls("/x/merged")


async def test_a_page_referenced_twice_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = tmp_path / "v"
    async with await new_vault(url) as v:
        one, _ = await _two_dirs(v)
        await v.rm("/two", recursive=True)
        await _graft(v, "/again", one)
        await v.commit()
    async with await _fresh(url, tmp_path / "fresh", monkeypatch) as fresh:
        assert len(await fresh.ls("/one")) == 2
        with pytest.raises(IntegrityError, match=r"^/again: .*referenced twice"):
            await fresh.ls("/again")


async def test_exponential_catalog_is_refused_in_bounded_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """40 levels, each a directory listing its child page twice: 2^40 implied paths from ~40 pages."""
    url = tmp_path / "v"
    async with await new_vault(url) as v:
        await v.put("/leaf/f", b"x")
        await v.commit()
        pages = await _dir_pages(v, "/leaf")
        for level in range(40):
            await _graft(v, f"/l{level}/a", pages)
            await _graft(v, f"/l{level}/b", pages)
            await v.commit()
            pages = await _dir_pages(v, f"/l{level}")
            await v.rm(f"/l{level}", recursive=True)
        await v.rm("/leaf", recursive=True)
        await _graft(v, "/bomb", pages)
        await v.commit()
    async with await _fresh(url, tmp_path / "fresh", monkeypatch) as fresh:
        started = time.monotonic()
        with pytest.raises(IntegrityError, match="referenced twice"):
            async for _ in fresh.walk("/"):
                pass
        assert time.monotonic() - started < 5


async def test_an_honest_vault_passes_every_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many names (several pages per directory), files of every blob shape, moves: all still read."""
    url = tmp_path / "v"
    big = os.urandom(3 * MIB + 7)
    async with await new_vault(url) as v:
        for i in range(3000):
            await v.put(f"/many/{i:05d}-{'n' * 60}", b"")
        await v.put("/files/big", big)
        await v.put("/files/exact", big[: 2 * MIB])
        await v.commit()
        await v.mv("/files", "/moved")
        await v.commit()
        assert len(await _dir_pages(v, "/many")) > 1
    async with await _fresh(url, tmp_path / "fresh", monkeypatch) as fresh:
        assert len(await fresh.ls("/many")) == 3000
        assert await fresh.read_bytes("/moved/big") == big
        assert await fresh.read_bytes("/moved/exact") == big[: 2 * MIB]
        assert len([p async for p in fresh.walk("/")]) == 3000 + 4
