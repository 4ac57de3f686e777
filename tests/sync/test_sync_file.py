"""``SyncVault.open``: a seekable io.RawIOBase over the vault's ranged reads (BufferedReader, shutil, zipfile)."""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from synctools import MIB, blob, new_sync_vault, reopen_sync

from sigmavault import IntegrityError, UsageError
from sigmavault.sync import SyncFile, SyncVault

SIZE = 5 * MIB + 12345  # several chunks and a partial last one


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[SyncVault]:
    with new_sync_vault(tmp_path / "v") as v:
        v.put("big.bin", blob(SIZE))
        v.put("tiny.txt", b"0123456789")
        v.put("empty", b"")
        v.commit()
        yield v


def test_read_readinto_tell_and_eof(vault: SyncVault) -> None:
    data = blob(SIZE)
    with vault.open("tiny.txt") as f:
        assert isinstance(f, SyncFile) and isinstance(f, io.RawIOBase)
        assert f.readable() and f.seekable() and not f.writable()
        assert (f.name, f.mode, f.size) == ("/tiny.txt", "rb", 10)
        assert f.read(3) == b"012" and f.tell() == 3
        buf = bytearray(4)
        assert f.readinto(buf) == 4 and buf == b"3456" and f.tell() == 7
        big = bytearray(100)
        assert f.readinto(big) == 3 and big[:3] == b"789"  # short read at the end
        assert f.readinto(big) == 0 and f.read(5) == b"" and f.read() == b""  # past EOF: nothing, no error
        f.seek(100)
        assert f.read(1) == b"" and f.tell() == 100
        assert "tiny.txt" in repr(f)
    with vault.open("empty") as f:
        assert f.read() == b"" and f.readinto(bytearray(8)) == 0
    with vault.open("big.bin") as f:
        assert f.read() == data  # readall in steps
        mv = memoryview(bytearray(16)).cast("B", (4, 4))  # a multi-dimensional buffer is filled flat
        f.seek(MIB - 8)
        assert f.readinto(mv) == 16 and mv.tobytes() == data[MIB - 8 : MIB + 8]


def test_seek_from_start_current_and_end_across_chunk_boundaries(vault: SyncVault) -> None:
    data = blob(SIZE)
    with vault.open("big.bin") as f:
        assert f.seek(MIB - 3) == MIB - 3
        assert f.read(6) == data[MIB - 3 : MIB + 3]  # spans chunks 0 and 1
        assert f.seek(2 * MIB, os.SEEK_CUR) == 3 * MIB + 3
        assert f.read(10) == data[3 * MIB + 3 : 3 * MIB + 13]
        assert f.seek(-5, os.SEEK_CUR) == 3 * MIB + 8
        assert f.read(5) == data[3 * MIB + 8 : 3 * MIB + 13]
        assert f.seek(-100, os.SEEK_END) == SIZE - 100
        assert f.read() == data[-100:]
        assert f.seek(0) == 0 and f.read(MIB + 1) == data[: MIB + 1]
        assert f.seek(10, os.SEEK_END) == SIZE + 10 and f.read() == b""
        with pytest.raises(OSError):
            f.seek(-1)
        with pytest.raises(OSError):
            f.seek(-SIZE - 1, os.SEEK_END)
        with pytest.raises(ValueError, match="whence"):
            f.seek(0, 7)
        assert f.tell() == SIZE + 10  # a failed seek moves nothing


def test_buffered_reader_and_copyfileobj_stream_a_multi_mib_file(vault: SyncVault, tmp_path: Path) -> None:
    data = blob(SIZE)
    with vault.open("big.bin") as raw, io.BufferedReader(raw, buffer_size=64 * 1024) as f:
        assert f.read(10) == data[:10]
        f.seek(2 * MIB + 7)
        assert f.readline(0) == b"" and f.read(3 * MIB) == data[2 * MIB + 7 : 5 * MIB + 7]
        assert f.peek(1)[:1] == data[5 * MIB + 7 : 5 * MIB + 8]
    with vault.open("big.bin") as f, (tmp_path / "copy.bin").open("wb") as out:
        shutil.copyfileobj(f, out, 256 * 1024)
    assert (tmp_path / "copy.bin").read_bytes() == data


def test_zipfile_lists_and_reads_members_through_the_sync_file(vault: SyncVault, tmp_path: Path) -> None:
    members = {"readme.txt": b"hello zip\n" * 50, "data/big.bin": blob(3 * MIB, seed=3), "data/empty": b""}
    local = tmp_path / "archive.zip"
    with zipfile.ZipFile(local, "w") as z:
        for name, content in members.items():
            z.writestr(name, content, compress_type=zipfile.ZIP_STORED if name.endswith(".bin") else
                       zipfile.ZIP_DEFLATED)
    vault.put("archive.zip", local)
    with vault.open("archive.zip") as f, zipfile.ZipFile(f) as z:
        assert sorted(z.namelist()) == sorted(members)
        assert z.testzip() is None
        for name, content in members.items():
            assert z.read(name) == content
        with z.open("data/big.bin") as member:  # a member read in slices over ranged reads
            member.seek(MIB + 1)
            assert member.read(100) == members["data/big.bin"][MIB + 1 : MIB + 101]
    with vault.open("tiny.txt") as f, pytest.raises(zipfile.BadZipFile):  # shorter than a zip's end record
        zipfile.ZipFile(f)


def test_closed_file_closed_vault_and_damaged_data(vault: SyncVault, tmp_path: Path) -> None:
    f = vault.open("tiny.txt")
    f.close()
    f.close()  # idempotent
    for call in (f.read, f.tell, f.readable, f.seekable, lambda: f.seek(0), lambda: f.readinto(bytearray(1))):
        with pytest.raises(ValueError, match="closed"):
            call()
    still_open = vault.open("big.bin")
    assert still_open.read(1) == blob(1)
    vault.close()
    with pytest.raises(UsageError, match="closed"):
        still_open.read(1)
    still_open.close()  # quiet once the vault is gone
    assert still_open.closed


def test_a_tampered_object_is_an_integrity_error_naming_the_file(tmp_path: Path) -> None:
    with new_sync_vault(tmp_path / "v") as v:
        v.put("secret.bin", blob(2 * MIB))
        v.commit()
    for obj in (tmp_path / "v" / "o").rglob("*"):
        if obj.is_file() and obj.stat().st_size > MIB:  # the data pack
            raw = bytearray(obj.read_bytes())
            raw[len(raw) // 2] ^= 1
            obj.write_bytes(bytes(raw))
    with reopen_sync(tmp_path / "v") as v, v.open("secret.bin") as f, \
            pytest.raises(IntegrityError, match=r"secret\.bin"):
        f.read()
