"""How export puts files on the disk: unnamed until complete (O_TMPFILE, linked at the end), or a hidden
temporary name where the filesystem has no O_TMPFILE; a damaged object stops a large file's read-ahead
with the IntegrityError naming it, and nothing partial ever sits under the final name."""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest
from vaulttools import MIB, new_vault, reopen

from sigmavault.engine.errors import IntegrityError
from sigmavault.engine.format.refs import final_ref
from sigmavault.engine.keys.schedule import KIND_CHUNK
from sigmavault.engine.transfer import localdest

BIG = random.Random(11).randbytes(6 * MIB + 12_345)  # six full chunks (more than the read-ahead window) and a tail
SMALL = {f"/t/d{i % 3}/f{i}": random.Random(i).randbytes(1 + i * 997) for i in range(40)}


@pytest.fixture(params=["unnamed", "named"])
def route(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Each test runs with O_TMPFILE and with a filesystem that refuses it (the kernel's own EINVAL:
    O_TMPFILE without write access), so the named fallback is exercised too."""
    assert localdest.UNNAMED  # Linux with /proc: the default route is the unnamed file
    if request.param == "named":
        monkeypatch.setattr(localdest, "O_UNNAMED", os.O_RDONLY | os.O_TMPFILE | os.O_CLOEXEC)
    probe = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        tmp, fd = localdest.open_temp(probe)
        os.close(fd)
        localdest.unlink_quiet(probe, tmp)
    finally:
        os.close(probe)
    assert (tmp == b"") == (request.param == "unnamed")
    return str(request.param)


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".sv-part-")]


async def test_small_and_large_files_land_whole_with_their_metadata(tmp_path: Path, route: str) -> None:
    async with await new_vault(tmp_path / "v") as v:
        for path, data in SMALL.items():
            await v.put(path, data, mode=0o640)
        await v.put("/t/big.bin", BIG, mode=0o604)
        await v.commit()
        out = tmp_path / "out"
        assert await v.get("/t", out) == len(BIG) + sum(map(len, SMALL.values()))
    for path, data in SMALL.items():
        f = out / path.removeprefix("/t/")
        assert f.read_bytes() == data and stat.S_IMODE(f.stat().st_mode) == 0o640
    assert (out / "big.bin").read_bytes() == BIG and stat.S_IMODE((out / "big.bin").stat().st_mode) == 0o604
    assert not _leftovers(out)


async def test_files_of_the_same_name_are_replaced_not_written_through(tmp_path: Path, route: str) -> None:
    out = tmp_path / "out"
    (out / "d0").mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    (out / "d0" / "f0").write_bytes(b"old small")
    (out / "big.bin").symlink_to(victim)  # a symlink under the name: replaced, never followed
    async with await new_vault(tmp_path / "v") as v:
        for path, data in SMALL.items():
            await v.put(path, data)
        await v.put("/t/big.bin", BIG)
        await v.commit()
        await v.get("/t", out, overwrite=True)
    assert (out / "d0" / "f0").read_bytes() == SMALL["/t/d0/f0"]
    assert not (out / "big.bin").is_symlink() and (out / "big.bin").read_bytes() == BIG
    assert victim.read_bytes() == b"keep me"
    assert not _leftovers(out)


async def test_a_damaged_chunk_stops_a_large_file_and_leaves_nothing_under_its_name(tmp_path: Path,
                                                                                    route: str) -> None:
    async with await new_vault(tmp_path / "v") as v:
        await v.put("/big.bin", BIG)
        await v.put("/old.bin", BIG)
        await v.commit()
        _, _, blobs = await v.chunks("/big.bin")
    refs = [final_ref(b) for b in blobs]
    assert [r.kind for r in refs[:6]] == [KIND_CHUNK] * 6
    # the fourth chunk: the first three are written by then, and the window has read past it
    (obj,) = [p for p in (tmp_path / "v" / "o").rglob(refs[3].object_name[2:]) if p.is_file()]
    data = bytearray(obj.read_bytes())
    data[5000] ^= 0x01
    obj.chmod(0o600)
    obj.write_bytes(bytes(data))
    out = tmp_path / "out"
    out.mkdir()
    (out / "kept.bin").write_bytes(b"the previous copy")
    async with await reopen(tmp_path / "v") as v:
        with pytest.raises(IntegrityError, match=r"/big\.bin"):
            await v.get("/big.bin", out / "fresh.bin")
        with pytest.raises(IntegrityError, match=r"/big\.bin"):
            await v.get("/big.bin", out / "kept.bin", overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["kept.bin"]  # no partial file, no temporary
    assert (out / "kept.bin").read_bytes() == b"the previous copy"

