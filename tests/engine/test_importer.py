"""Importing local trees, and the incremental backup that skips unchanged files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from vaulttools import MIB, new_vault, object_files, reopen

from sigmavault import NotFound
from sigmavault.engine.transfer.importer import import_paths


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"alpha",
        "sub/b.bin": os.urandom(MIB + 3),
        "sub/deeper/c.bin": os.urandom(40_000),
        "empty": b"",
    }
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (root / "sub" / "link").symlink_to("deeper/c.bin")
    os.chmod(root / "a.txt", 0o600)
    return files


async def test_import_a_tree_keeps_content_structure_and_metadata(tmp_path: Path) -> None:
    src = tmp_path / "photos"
    files = make_tree(src)
    async with await new_vault(tmp_path / "v") as v:
        report = await import_paths(v, [src], "/backup")
        assert (report.files, report.symlinks, report.directories) == (4, 1, 3)
        assert report.bytes_total == sum(len(d) for d in files.values())
        for rel, data in files.items():
            assert await v.read_bytes(f"backup/photos/{rel}") == data
        assert (await v.stat("backup/photos/sub/link")).target == "deeper/c.bin"
        assert (await v.stat("backup/photos/a.txt")).mode == 0o600
        assert (await v.stat("backup/photos/a.txt")).mtime_ns == os.stat(src / "a.txt").st_mtime_ns


async def test_import_of_a_missing_path_changes_nothing(tmp_path: Path) -> None:
    async with await new_vault(tmp_path / "v") as v:
        with pytest.raises(NotFound):
            await import_paths(v, [tmp_path / "nope"], "/x")
        assert await v.ls("/") == []
        assert not v.pending


async def test_backup_skips_unchanged_files_and_picks_up_changes(tmp_path: Path) -> None:
    src = tmp_path / "data"
    make_tree(src)
    url = tmp_path / "v"
    async with await new_vault(url) as v:
        first = await import_paths(v, [src], "/", incremental=True)
        assert first.skipped == 0 and first.bytes_read > MIB
        await v.commit()
    objects = len(object_files(url))
    async with await reopen(url) as v:
        second = await import_paths(v, [src], "/", incremental=True)
        assert second.skipped == 4 and second.bytes_read == 0  # nothing was even read
        assert v._mixer is None and v._ledger.started == 0  # nor a pipeline started (no mixer, no lease)
        (src / "a.txt").write_bytes(b"alpha, changed")
        third = await import_paths(v, [src], "/", incremental=True)
        assert third.skipped == 3 and third.bytes_read == len(b"alpha, changed")
        assert await v.read_bytes("data/a.txt") == b"alpha, changed"
        await v.commit()
    assert len(object_files(url)) - objects <= 2  # one data pack and one page pack, no chunk re-upload


async def test_backup_reads_recorded_stats_in_batches_and_still_sees_each_change(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sigmavault.engine.local.cache import Cache
    from sigmavault.engine.transfer import importer

    monkeypatch.setattr(importer, "STAT_BATCH", 4)
    src = tmp_path / "data"
    for i in range(11):
        (src / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 3}" / f"f{i:02d}").write_bytes(b"%d" % i)
    async with await new_vault(tmp_path / "v") as v:
        await import_paths(v, [src], "/", incremental=True)
        await v.commit()
        hops: list[int] = []
        real = Cache.file_stats

        async def counting(self: Cache, paths: list[bytes]) -> list[tuple[int, int, int] | None]:
            hops.append(len(paths))
            return await real(self, paths)

        monkeypatch.setattr(Cache, "file_stats", counting)
        (src / "d1" / "f07").write_bytes(b"seven, changed")  # in the second batch of four
        again = await import_paths(v, [src], "/", incremental=True)
        assert hops == [4, 4, 3]  # 11 files, one hop per batch, not one per file
        assert (again.files, again.skipped, again.changed) == (11, 10, 1)
        assert await v.read_bytes("data/d1/f07") == b"seven, changed"


async def test_two_sources_of_one_name_merge_into_the_tree_the_first_made(tmp_path: Path) -> None:
    # the first source creates /d/x and what is below it (new: nothing there is looked up); the
    # second, of the same name, merges into it: below it every path is looked up again, and its
    # files of existing names replace those of the first
    first, second = tmp_path / "one" / "x", tmp_path / "two" / "x"
    for root, files in ((first, {"same": b"1", "sub/in": b"2", "only_first": b"3"}),
                        (second, {"same": b"one", "sub/in": b"two", "sub/new": b"4"})):
        for rel, data in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
    async with await new_vault(tmp_path / "v") as v:
        report = await import_paths(v, [first, second], "/d")
        assert await v.read_bytes("d/x/same") == b"one"
        assert await v.read_bytes("d/x/sub/in") == b"two"
        assert await v.read_bytes("d/x/sub/new") == b"4"
        assert await v.read_bytes("d/x/only_first") == b"3"
        assert report.files == 6


async def test_a_small_file_that_vanished_after_the_scan_fails_the_import_by_name(tmp_path: Path) -> None:
    """Small files are read many per thread hop: one removed between the scan and its read still
    fails the import with its own name, and nothing is committed."""
    from sigmavault.engine.transfer.importer import import_items, scan

    src = tmp_path / "src"
    src.mkdir()
    for i in range(300):
        (src / f"f{i:03}").write_bytes(os.urandom(2000 + i))
    items, _ = scan([src], [b"data"])
    (src / "f150").unlink()
    v = await new_vault(tmp_path / "v")
    try:
        with pytest.raises(NotFound, match=r"f150: no such file \(it may have disappeared"):
            await import_items(v, items, [b"data"])
        assert v.generation == 0
    finally:
        await v.aclose()
