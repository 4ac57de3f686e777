"""The catalog's memo of decoded pages: a commit rereads the directories it edited without decoding
their pages again, and the memo stays bounded and answers like a fresh decode."""

from __future__ import annotations

from pathlib import Path

import pytest
from vaulttools import new_vault, reopen

from sigmavault.engine.catalog import pagestore
from sigmavault.engine.format.pages import Page


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real = pagestore.decode_page

    def counting(data: bytes, **kw: int) -> Page:
        calls[0] += 1
        return real(data, **kw)

    monkeypatch.setattr(pagestore, "decode_page", counting)
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
