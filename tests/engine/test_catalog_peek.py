"""A read's path lookup bisects a big directory's pages for the one entry it needs (issue 15: a
million files, ``ls`` of one directory in a 10,000-entry root), and an edit after such a read still
loads every directory it marks changed whole: nothing of the directory is lost."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from vaulttools import new_vault, reopen

from sigmavault import NotFound
from sigmavault.engine.catalog import pagestore
from sigmavault.engine.format import pages
from sigmavault.engine.format.pages import PageView

DIRS = 120


async def _build(url: Path) -> int:
    """A vault whose root spans many pages (small page target); returns the root's page count."""
    async with await new_vault(url) as v:
        v._catalog._target = 700
        for i in range(DIRS):
            await v.put(f"/d{i:03d}/f", b"%d" % i)
        await v.commit()
        return len(v._tree.root.pages)


def _count(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    calls = {"pages": 0, "entries": 0}
    view, entry = pagestore.view_page, pages.entry_from_json

    def counting_view(data: bytes, **kw: int) -> PageView:
        calls["pages"] += 1
        return view(data, **kw)

    def counting_entry(value: object) -> pages.Entry:
        calls["entries"] += 1
        return entry(value)

    monkeypatch.setattr(pagestore, "view_page", counting_view)
    monkeypatch.setattr(pages, "entry_from_json", counting_entry)
    return calls


async def test_a_read_bisects_the_pages_of_a_big_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root_pages = await _build(tmp_path / "v")
    assert root_pages >= 8
    monkeypatch.setenv("SIGMAVAULT_HOME", str(tmp_path / "fresh"))
    calls = _count(monkeypatch)
    async with await reopen(tmp_path / "v") as v:
        assert await v.read_bytes("/d077/f") == b"77"
        # the root: a bisection's pages (one entry decoded, a few names); d077/: its one page
        assert calls["pages"] <= math.ceil(math.log2(root_pages)) + 2
        assert calls["entries"] <= 2
        assert (await v.stat("/d077")).type == "dir"
        with pytest.raises(NotFound):
            await v.stat("/d0775")  # between two names: not there
        with pytest.raises(NotFound):
            await v.stat("/zzz")  # past the last page
        # a listing still reads (and checks) the whole directory
        assert [s.name for s in await v.ls("/")] == [f"d{i:03d}" for i in range(DIRS)]
        assert calls["entries"] >= DIRS


async def test_an_edit_after_a_read_keeps_the_whole_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    await _build(tmp_path / "v")
    monkeypatch.setenv("SIGMAVAULT_HOME", str(tmp_path / "fresh"))
    async with await reopen(tmp_path / "v") as v:
        assert (await v.stat("/d005/f")).size == 1  # the root and d005/ found, not loaded
        assert len(await v.ls("/d006")) == 1  # d006/ loaded (its pages claimed by the node found)
        await v.set_meta("/d005/f", mode=0o600)  # the very node the read found is changed in place
        await v.put("/d005/g", b"new")
        await v.set_xattr("/d006/f", b"user.k", b"v")
        await v.commit()
    async with await reopen(tmp_path / "v") as v:
        assert [s.name for s in await v.ls("/")] == [f"d{i:03d}" for i in range(DIRS)]
        assert (await v.stat("/d005/f")).mode & 0o777 == 0o600
        assert [s.name for s in await v.ls("/d005")] == ["f", "g"]
        assert await v.xattrs("/d006/f") == {b"user.k": b"v"}
        for i in range(DIRS):
            assert await v.read_bytes(f"/d{i:03d}/f") == b"%d" % i
