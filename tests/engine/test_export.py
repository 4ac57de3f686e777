"""Export against a hostile co-writer's catalog: no write or chmod outside the destination, no set-id bits.

The co-writer holds the keys and writes what the catalog format admits (any symlink target, any mode,
any owner); the codec refuses names that could climb out of a directory. Whatever it writes, an
export of it touches only paths inside the destination.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from vaulttools import new_vault

from sigmavault.engine.errors import AlreadyExists, IntegrityError, UsageError
from sigmavault.engine.format.canonical import b64u, dumps
from sigmavault.engine.format.pages import FILE, Entry, Page, decode_page, encode_page
from sigmavault.engine.transfer.exporter import ExportOptions, export_tree


def _snapshot(root: Path) -> dict[str, tuple[int, int, bytes | None]]:
    """Every path below ``root`` with its mode, mtime and (for files) content."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            out[str(p)] = (st.st_mode, st.st_mtime_ns, p.read_bytes() if p.is_file() and not p.is_symlink() else None)
    st = root.lstat()
    out[str(root)] = (st.st_mode, st.st_mtime_ns, None)
    return out


async def test_force_export_never_writes_or_chmods_through_a_symlink_on_disk(tmp_path: Path) -> None:
    outside = tmp_path / "some" / "dir"
    outside.mkdir(parents=True)
    (outside / "f").write_bytes(b"theirs, not the vault's")
    os.chmod(outside, 0o700)
    before = _snapshot(tmp_path / "some")
    out = tmp_path / "out"
    async with await new_vault(tmp_path / "v") as v:
        # generation 1: share/x is a symlink to the victim directory, share/y to a victim file
        await v.symlink("/share/x", str(outside))
        await v.symlink("/share/y", str(outside / "f"))
        await v.commit()
        assert await v.get("/share", out) == 0
        assert os.readlink(out / "x") == str(outside)
        # generation 2: share/x is a world-writable directory holding f, share/y a setuid file
        await v.rm("/share/x")
        await v.rm("/share/y")
        await v.put("/share/x/f", b"hostile content", mode=0o666)
        await v.set_meta("/share/x", mode=0o777)
        await v.put("/share/y", b"#!/bin/sh\n", mode=0o4777)
        await v.commit()
        with pytest.raises(AlreadyExists):
            await v.get("/share", out)  # not empty: refused without overwrite
        written = await v.get("/share", out, overwrite=True)
    assert written == len(b"hostile content") + len(b"#!/bin/sh\n")
    assert _snapshot(tmp_path / "some") == before  # nothing written, chmodded or touched outside
    assert not (out / "x").is_symlink() and (out / "x").is_dir()
    assert (out / "x" / "f").read_bytes() == b"hostile content"
    assert stat.S_IMODE((out / "x").stat().st_mode) == 0o777
    assert not (out / "y").is_symlink() and stat.S_IMODE((out / "y").stat().st_mode) == 0o777  # no setuid


async def test_a_symlink_named_as_a_file_destination_is_replaced_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    os.chmod(victim, 0o600)
    dest = tmp_path / "dest"
    dest.symlink_to(victim)
    async with await new_vault(tmp_path / "v") as v:
        await v.put("/f", b"new", mode=0o644)
        await v.commit()
        await v.get("/f", dest, overwrite=True)
    assert victim.read_bytes() == b"keep me" and stat.S_IMODE(victim.stat().st_mode) == 0o600
    assert not dest.is_symlink() and dest.read_bytes() == b"new"


async def test_a_local_directory_where_the_vault_has_a_file_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "f").mkdir(parents=True)
    (out / "f" / "mine").write_bytes(b"mine")
    async with await new_vault(tmp_path / "v") as v:
        await v.put("/t/f", b"vault", mode=0o644)
        await v.commit()
        with pytest.raises(AlreadyExists, match="is a directory"):
            await v.get("/t", out, overwrite=True)
    assert (out / "f" / "mine").read_bytes() == b"mine"
    assert not [p for p in out.rglob(".sv-part-*")]  # no temporary left behind


@pytest.mark.parametrize("name", [b"..", b".", b"a/b", b"/", b"", b"a\0b", b"../../etc"])
def test_the_page_codec_refuses_names_that_leave_a_directory(name: bytes) -> None:
    page = encode_page(Page((Entry(name=b"ok", type=FILE, mode=0o644, uid=0, gid=0, mtime_ns=0, ctime_ns=0,
                                   size=1, inline=b"x"),)))
    doc = json.loads(page)
    doc["entries"][0]["n"] = b64u(name)
    with pytest.raises(IntegrityError):
        decode_page(dumps(doc))


async def test_special_bits_are_dropped_unless_asked_for(tmp_path: Path) -> None:
    async with await new_vault(tmp_path / "v") as v:
        await v.put("/t/sh", b"#!/bin/sh\n", mode=0o6755)
        await v.mkdir("/t/tmp", mode=0o1777)
        await v.commit()
        await v.get("/t", tmp_path / "plain")
        await export_tree(v, "/t", tmp_path / "kept", ExportOptions(keep_special_bits=True))
    assert stat.S_IMODE((tmp_path / "plain" / "sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "plain" / "tmp").stat().st_mode) == 0o777
    assert stat.S_IMODE((tmp_path / "kept" / "sh").stat().st_mode) == 0o6755
    assert stat.S_IMODE((tmp_path / "kept" / "tmp").stat().st_mode) == 0o1777


async def test_owner_is_restored_only_with_same_owner_as_root(tmp_path: Path) -> None:
    async with await new_vault(tmp_path / "v") as v:
        await v.put("/t/f", b"data", mode=0o4755)
        await v.set_meta("/t/f", uid=4321, gid=4321)
        await v.symlink("/t/l", "f")
        await v.set_meta("/t/l", uid=4321, gid=4321)
        await v.commit()
        if os.geteuid() != 0:
            with pytest.raises(UsageError, match="root"):
                await export_tree(v, "/t", tmp_path / "o", ExportOptions(same_owner=True))
            return
        await v.get("/t", tmp_path / "plain")
        await export_tree(v, "/t", tmp_path / "owned", ExportOptions(same_owner=True, keep_special_bits=True))
    assert (tmp_path / "plain" / "f").stat().st_uid == os.geteuid()
    st = (tmp_path / "owned" / "f").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (4321, 4321, 0o4755)  # chown before chmod
    assert (tmp_path / "owned" / "l").lstat().st_uid == 4321


async def test_bytes_count_every_file_written_by_parallel_workers(tmp_path: Path) -> None:
    sizes = [100_000 + 1000 * i for i in range(24)]
    async with await new_vault(tmp_path / "v") as v:
        for i, n in enumerate(sizes):
            await v.put(f"/t/f{i:02}", os.urandom(n))
        await v.symlink("/t/link", "f00")
        await v.commit()
        events: list[tuple[str, str, int]] = []
        report = await export_tree(v, "/t", tmp_path / "out", on_file=lambda *e: events.append(e))
    assert report.bytes == sum(sizes) == sum(n for _, _, n in events)
    assert report.files == len(sizes) and report.directories == 1


async def test_delete_removes_only_what_the_vault_lacks_and_dry_run_changes_nothing(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_bytes(b"outside")
    out = tmp_path / "out"
    async with await new_vault(tmp_path / "v") as v:
        await v.put("/t/a", b"a")
        await v.put("/t/sub/b", b"b")
        await v.commit()
        await v.get("/t", out)
        (out / "extra").write_bytes(b"x")
        (out / "sub" / "old" / "deeper").mkdir(parents=True)
        (out / "sub" / "old" / "deeper" / "f").write_bytes(b"f")
        (out / "sub" / "link-out").symlink_to(victim)  # removed as a link, never followed
        before = _snapshot(out)
        listed: list[Path] = []
        dry = await export_tree(v, "/t", out, ExportOptions(force=True, delete=True, dry_run=True),
                                on_delete=listed.append)
        assert dry.removed == 3 and sorted(listed) == [out / "extra", out / "sub" / "link-out", out / "sub" / "old"]
        assert _snapshot(out) == before  # a dry run writes nothing
        with pytest.raises(UsageError):
            await export_tree(v, "/t/a", out, ExportOptions(force=True, delete=True))
        report = await export_tree(v, "/t", out, ExportOptions(force=True, delete=True))
    assert report.removed == 3
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["a", "sub", "sub/b"]
    assert (victim / "keep").read_bytes() == b"outside"
