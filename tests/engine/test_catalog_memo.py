"""The catalog's memo of decoded pages: a commit rereads the directories it edited without decoding
their pages again, and the memo stays bounded and answers like a fresh decode."""

from __future__ import annotations

from pathlib import Path

import pytest
from vaulttools import new_vault, reopen

from sigmavault.engine.catalog import pagestore
from sigmavault.engine.catalog.tree import Dir
from sigmavault.engine.format.pages import PageView


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real = pagestore.view_page

    def counting(data: bytes, **kw: int) -> PageView:
        calls[0] += 1
        return real(data, **kw)

    monkeypatch.setattr(pagestore, "view_page", counting)
    return calls


async def test_a_commit_decodes_no_page_its_edits_did_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with await new_vault(tmp_path / "v") as v:
        for i in range(300):
            await v.put(f"big/f{i:04d}", b"%d" % i)
        await v.put("other/x", b"x")
        await v.commit()
    decodes = count_decodes(monkeypatch)
    async with await reopen(tmp_path / "v") as v:
        await v.put("big/f0007", b"changed")
        loaded = decodes[0]
        assert loaded >= 2  # the root and big/, from the store or the local cache
        await v.commit()  # its diff rereads the head's root and big/: from the memo
        await v.put("big/f0008", b"changed too")
        await v.commit()  # the head is the commit just saved: its pages were remembered as written
        assert decodes[0] == loaded
        assert (await v.log(changes=True))[0].modified == 1
    async with await reopen(tmp_path / "v") as v:
        assert await v.read_bytes("big/f0007") == b"changed"
        assert await v.read_bytes("big/f0008") == b"changed too"
        assert len(await v.ls("big")) == 300


async def test_the_memo_is_bounded_and_evicted_pages_are_decoded_again(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pagestore, "DECODED_MEMO_BYTES", 4096)
    async with await new_vault(tmp_path / "v") as v:
        for d in range(20):
            await v.put(f"d{d:02d}/f", b"%d" % d)
        await v.commit()
    decodes = count_decodes(monkeypatch)
    async with await reopen(tmp_path / "v") as v:
        for d in range(20):
            assert await v.read_bytes(f"d{d:02d}/f") == b"%d" % d
        catalog = v._catalog
        assert catalog._decoded_bytes <= 4096 and len(catalog._decoded) < 21
        assert sum(catalog._decoded_sizes.values()) == catalog._decoded_bytes
        before = decodes[0]
        await v.commit()  # nothing pending
        await v.put("d00/f", b"new")
        await v.commit()  # the head's root and d00/ were evicted: decoded again, same answers
        assert decodes[0] > before
    async with await reopen(tmp_path / "v") as v:
        assert await v.read_bytes("d00/f") == b"new"
        assert [s.name for s in await v.ls("/")] == [f"d{d:02d}" for d in range(20)]


async def test_a_commit_keeps_the_unchanged_pages_of_a_big_directory(tmp_path: Path) -> None:
    names = {f"f{i:03d}": b"%d" % i for i in range(60)}
    async with await new_vault(tmp_path / "v") as v:
        v._catalog._target = 700  # a page holds a few entries: big/ has many
        for name, data in names.items():
            await v.put(f"big/{name}", data)
        await v.commit()

        async def pages() -> list[bytes]:
            node = await v._tree.lookup([b"big"])
            assert isinstance(node, Dir)
            return [r.id for r in node.pages]

        before = await pages()
        assert len(before) > 6
        await v.put("big/f030", b"changed")
        names["f030"] = b"changed"
        await v.commit()
        after = await pages()
        assert len(set(after) - set(before)) <= 2 and len(set(before) & set(after)) >= len(before) - 1
        await v.rm("big/f000")  # the first page's range
        await v.put("big/f0305", b"between")  # a new name inside a kept page's range
        await v.put("big/zzz", b"last")
        del names["f000"]
        names |= {"f0305": b"between", "zzz": b"last"}
        await v.commit()
        assert len(set(await pages()) & set(after)) >= len(after) - 4
    async with await reopen(tmp_path / "v") as v:
        assert [s.name for s in await v.ls("big")] == sorted(names)
        for name, data in names.items():
            assert await v.read_bytes(f"big/{name}") == data


async def test_after_a_merge_every_dirty_directory_gets_new_pages(tmp_path: Path) -> None:
    # a moves big/ away (its pages go with it); b edits one file in big/ and loses the race: its
    # merged big/ becomes a conflict copy, which must not keep pages the moved directory holds
    url = tmp_path / "v"
    async with await new_vault(url) as v:
        v._catalog._target = 700
        for i in range(40):
            await v.put(f"big/f{i:03d}", b"%d" % i)
    a, b = await reopen(url), await reopen(url)
    try:
        b._catalog._target = 700
        await a.mv("big", "moved")
        await b.put("big/f010", b"b's edit")
        await a.commit()
        await b.commit()
    finally:
        await a.aclose()
        await b.aclose()
    async with await reopen(url) as v:
        top = [s.name for s in await v.ls("/")]
        copy = next(n for n in top if n.startswith("big (conflict "))
        assert len(await v.ls("moved")) == 40 and len(await v.ls(copy)) == 40  # both load: no page twice
        assert await v.read_bytes(f"{copy}/f010") == b"b's edit"
        assert await v.read_bytes("moved/f010") == b"10"
