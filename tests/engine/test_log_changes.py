"""``Vault.log(changes=True)``: what each generation changed, read only where it changed."""

from __future__ import annotations

from pathlib import Path

from vaulttools import new_vault

from sigmavault.engine.catalog.tree import Dir


async def test_log_counts_added_modified_removed_and_bytes_per_generation(tmp_path: Path) -> None:
    async with await new_vault(tmp_path / "v") as v:
        await v.put("a/one", b"1" * 3000)
        await v.put("a/two", b"2" * 10)
        await v.commit()  # 1: +a/ +a/one +a/two
        await v.put("a/one", b"x" * 5000)
        await v.put("b", b"b" * 700)
        await v.rm("a/two")
        await v.symlink("l", "a/one")
        await v.commit()  # 2: ~a/one +b +l -a/two
        log = await v.log(changes=True)
        assert [(e.generation, e.added, e.modified, e.removed, e.bytes) for e in log] == [
            (2, 2, 1, 1, 5700), (1, 3, 0, 0, 3010), (0, 0, 0, 0, 0)]
        assert all(e.client == log[0].client and len(e.client) == 8 for e in log)
        assert [e.generation for e in await v.log(1)] == [2]
        assert (await v.log())[0].added is None  # not computed unless asked


async def test_log_does_not_read_subtrees_a_generation_left_unchanged(tmp_path: Path) -> None:
    async with await new_vault(tmp_path / "v") as v:
        for i in range(40):
            await v.put(f"big/d{i}/f", b"x" * 2000)
        await v.put("small/f", b"y")
        await v.commit()
        await v.put("small/f", b"z")
        await v.commit()
        loaded: list[Dir] = []
        real = v._catalog.load

        async def counting(d: Dir) -> dict[bytes, object]:
            loaded.append(d)
            return await real(d)  # type: ignore[return-value]

        v._catalog.load = counting  # type: ignore[method-assign,assignment]
        [entry] = await v.log(1, changes=True)
        assert (entry.added, entry.modified, entry.removed) == (0, 1, 0)
        assert len(loaded) == 4  # the root and /small, before and after: never /big or below
