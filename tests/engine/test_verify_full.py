"""``verify`` and ``verify --full`` on a real local vault: a flipped byte in every single object is
caught by ``--full`` even with every cache warm; plain verify finds missing and truncated objects;
the store listing finds unreferenced and damaged objects; problems name the affected vault path."""

from __future__ import annotations

import os
from pathlib import Path

from vaulttools import MIB, new_vault, reopen

from sigmavault.backends.base import Backend, Wrapper
from sigmavault.engine.catalog.tree import Dir, Meta
from sigmavault.engine.vault import Vault


def all_objects(root: Path) -> list[Path]:
    return sorted(p for top in ("k", "c", "o") for p in (root / top).rglob("*")
                  if p.is_file() and not p.name.startswith("."))


def flip(path: Path, where: int) -> bytes:
    data = path.read_bytes()
    i = where % len(data)
    path.write_bytes(data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :])
    return data


async def populated(root: Path) -> Vault:
    """Files inline, packed and in full chunks, nested directories, several commits, a removal."""
    v = await new_vault(root, chunk_size=MIB)
    await v.put("small.txt", b"tiny")
    await v.put("docs/a.txt", b"a" * 3000)
    await v.put("docs/deep/b.bin", os.urandom(20_000))
    await v.commit()
    await v.put("big.bin", os.urandom(2 * MIB + 777))
    await v.put("docs/deep/c.bin", os.urandom(5000))
    await v.commit()
    await v.rm("docs/a.txt")
    await v.put("other/d.bin", os.urandom(MIB // 2))
    await v.commit()
    return v


async def test_full_verify_catches_a_flipped_byte_in_every_object_with_warm_caches(tmp_path: Path) -> None:
    root = tmp_path / "v"
    async with await populated(root):
        pass
    async with await reopen(root) as v:
        async for path, st in v.walk("/"):  # warm the page cache and the pack cache
            if st.type == "file":
                await v.read_bytes(path)
        assert (await v.verify(full=True)).ok
        objects = all_objects(root)
        assert len(objects) >= 10
        kinds = {p.parent.name if p.parent.parent == root else "o" for p in objects}
        assert kinds == {"k", "c", "o"}
        for obj in objects:
            for where in (7, os.path.getsize(obj) // 2, -1):
                original = flip(obj, where)
                try:
                    report = await v.verify(full=True)
                    assert not report.ok, f"flipped byte {where} of {obj.relative_to(root)} went unnoticed"
                finally:
                    obj.write_bytes(original)
        assert (await v.verify(full=True)).ok


async def test_a_corrupted_page_pack_is_reported_with_its_path_despite_the_cache(tmp_path: Path) -> None:
    root = tmp_path / "v"
    async with await populated(root) as v:
        deep = (await v._tree.lookup([b"docs", b"deep"]))
        pack = deep.pages[0].object_name  # type: ignore[union-attr]
    async with await reopen(root) as v:
        assert [s.name for s in await v.ls("docs/deep")] == ["b.bin", "c.bin"]  # the page is in the cache now
        flip(Path(root / "o" / pack[2:4] / pack[2:]), 100)
        assert (await v.verify()).ok  # plain verify: present, and page packs carry no length
        report = await v.verify(full=True)
        assert not report.ok
        assert any(p.startswith("/docs/deep: directory unreadable") for p in report.problems), report.problems


async def test_plain_verify_names_the_paths_of_missing_and_truncated_objects(tmp_path: Path) -> None:
    root = tmp_path / "v"
    async with await populated(root) as v:
        big = [b.object_name for b in (await v._tree.lookup([b"big.bin"])).blobs]  # type: ignore[union-attr]
    async with await reopen(root) as v:
        (root / "o" / big[0][2:4] / big[0][2:]).unlink()
        p1 = root / "o" / big[1][2:4] / big[1][2:]
        p1.write_bytes(p1.read_bytes()[:-10])
        report = await v.verify()
        assert {p for p in report.problems if "big.bin" in p} == {
            f"/big.bin: object {big[0]} is missing",
            f"/big.bin: object {big[1]} has the wrong length ({p1.stat().st_size} bytes, "
            f"the catalog says {p1.stat().st_size + 10})",
        }
        assert report.generations == 4


async def test_removed_files_of_old_generations_are_checked_and_named(tmp_path: Path) -> None:
    root = tmp_path / "v"
    async with await populated(root) as v:
        old = await v.at(2)
        refs = (await old._tree.lookup([b"docs", b"a.txt"])).blobs  # type: ignore[union-attr]
    name = refs[0].object_name
    async with await reopen(root) as v:
        flip(root / "o" / name[2:4] / name[2:], 50)
        report = await v.verify(full=True)
    assert any(p.startswith("/docs/a.txt (generation 2):") or p.startswith("/docs/a.txt (generation 1):")
               for p in report.problems), report.problems


async def test_the_store_listing_reports_unreferenced_and_damaged_objects(tmp_path: Path) -> None:
    root = tmp_path / "v"
    async with await populated(root) as v:
        await v.put("never committed", os.urandom(MIB + 5))  # a full chunk uploaded, then the process "dies"
        await v._content.flush()
        orphan = [b.object_name for b in (await v._tree.lookup([b"never committed"])).blobs]
        v._tree = v._catalog.tree(v._head.commit)  # drop the edit: its objects stay behind, unreferenced
    junk = root / "o" / "ab" / ("ab" + "0" * 62)
    junk.parent.mkdir(exist_ok=True)
    junk.write_bytes(os.urandom(5000))
    async with await reopen(root) as v:
        plain = await v.verify()
        full = await v.verify(full=True)
    assert plain.ok
    assert any(orphan[0] in n and "not referenced" in n for n in plain.notes)
    assert any(orphan[0] in n and "(chunk) is not referenced" in n for n in full.notes), full.notes
    assert full.problems == (f"object o/{junk.name} (referenced by no generation) is damaged: "
                             "it opens as no kind of object",)


async def test_a_page_placed_twice_in_one_generation_is_a_problem_not_a_blowup(tmp_path: Path) -> None:
    root = tmp_path / "v"
    async with await new_vault(root) as v:
        await v.put("a/f", b"x" * 3000)
        await v.commit()
        a = await v._tree.lookup([b"a"])
        assert isinstance(a, Dir)
        for name in (b"y", b"z"):  # a co-writer points two more directories at the same pages
            await v._tree.put([name], Dir(Meta.now(0o755), list(a.pages)))
        await v.commit()
        report = await v.verify(full=True)
    assert sorted(p.split(":")[0] for p in report.problems) == ["/y", "/z"]
    assert all("referenced twice in one generation" in p for p in report.problems)


async def test_full_verify_downloads_each_object_once(tmp_path: Path) -> None:
    class CountingGets(Wrapper):
        __slots__ = ("gets",)

        def __init__(self, inner: Backend) -> None:
            super().__init__(inner)
            self.gets: list[str] = []

        async def get(self, name: str, start: int = 0, end: int | None = None) -> bytes:
            self.gets.append(name)
            return await self.inner.get(name, start, end)

    root = tmp_path / "v"
    async with await populated(root) as v:
        await v.put("twice/one.bin", (await v.read_bytes("big.bin"))[:MIB])  # a chunk two paths share
        await v.put("twice/two.bin", (await v.read_bytes("big.bin"))[:MIB])
    async with await reopen(root) as v:
        outer = v._store.backend
        assert isinstance(outer, Wrapper)
        spy = CountingGets(outer.inner)
        outer.inner = spy
        report = await v.verify(full=True)
        assert report.ok
        data_gets = [n for n in spy.gets if n.startswith("o/")]
        assert data_gets and len(data_gets) == len(set(data_gets))  # no object of o/ fetched twice
