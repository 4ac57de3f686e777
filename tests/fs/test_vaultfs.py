"""VaultFileSystem on a real local vault: pandas and pyarrow, ranged reads, streaming writes, errors,
secrets, commit modes and embedding."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fstools import MIB, PASS, make_vault, open_fs, other_client_sees

import sigmavault
from sigmavault.fs import VaultFileSystem

DATA = os.urandom(3 * MIB + 54321)  # a few chunks and a partial one


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    yield make_vault(tmp_path / "vault")
    for fs in list(VaultFileSystem._cache.values()):  # instances pandas made through the registry
        fs.close()
    VaultFileSystem.clear_instance_cache()


@pytest.fixture
def fs(url: str) -> Iterator[VaultFileSystem]:
    fs = open_fs(url)
    yield fs
    fs.close()


def test_paths_with_and_without_the_protocol() -> None:
    strip = VaultFileSystem._strip_protocol
    assert strip("sigmavault://p") == strip("sigmavault:///p") == strip("/p/") == strip("p") == "/p"
    assert strip("sigmavault://a/b/c.csv") == "/a/b/c.csv"
    assert strip("sigmavault://") == strip("") == "/"
    assert strip(["sigmavault://x", "/y"]) == ["/x", "/y"]


def test_pandas_csv_through_the_registered_protocol(url: str) -> None:
    opts = {"vault": url, "passphrase": PASS}
    frame = pd.DataFrame({"a": range(1000), "b": [f"row {i}" for i in range(1000)]})
    frame.to_csv("sigmavault:///data.csv", index=False, storage_options=opts)
    back = pd.read_csv("sigmavault:///data.csv", storage_options=opts)
    pd.testing.assert_frame_equal(back, frame)
    assert other_client_sees(url, "/data.csv")


def test_parquet_written_through_open_read_by_pyarrow(fs: VaultFileSystem, url: str) -> None:
    table = pa.table({"n": list(range(50_000)), "s": [str(i) * 3 for i in range(50_000)]})
    with fs.open("sigmavault:///t/table.parquet", "wb") as f:
        pq.write_table(table, f, row_group_size=10_000)
    assert pq.read_table("/t/table.parquet", filesystem=fs).equals(table)
    assert pq.read_table("/t/table.parquet", filesystem=fs, columns=["s"]).column("s").equals(table.column("s"))
    opts = {"vault": url, "passphrase": PASS}
    pd.DataFrame({"x": [1.5, 2.5]}).to_parquet("sigmavault:///p.parquet", storage_options=opts)
    assert pd.read_parquet("sigmavault:///p.parquet", storage_options=opts)["x"].tolist() == [1.5, 2.5]


def test_ranged_cat_file(fs: VaultFileSystem) -> None:
    fs.pipe_file("/big.bin", DATA)
    for start, end in [(0, 10), (MIB - 5, MIB + 5), (MIB, 3 * MIB + 7), (2 * MIB + 1, None), (None, 100),
                       (-100, None), (10, -10), (len(DATA) - 3, len(DATA) + 50), (len(DATA) + 5, None)]:
        assert fs.cat_file("/big.bin", start, end) == DATA[start:end], (start, end)
    assert fs.cat_file("sigmavault:///big.bin") == DATA


def test_seek_and_read_across_chunk_boundaries(fs: VaultFileSystem) -> None:
    fs.pipe_file("/big.bin", DATA)
    with fs.open("/big.bin", "rb") as f:
        assert f.size == len(DATA) and f.seekable()
        for pos, n in [(MIB - 3, 10), (3 * MIB - 1, 2), (5, 2 * MIB), (0, 1), (2 * MIB + 100, MIB + 5)]:
            f.seek(pos)
            assert f.read(n) == DATA[pos:pos + n]
            assert f.tell() == min(len(DATA), pos + n)
        f.seek(-20, os.SEEK_END)
        buf = bytearray(50)
        assert f.readinto(buf) == 20 and bytes(buf[:20]) == DATA[-20:]
        f.seek(0)
        got = io.BytesIO()
        while piece := f.read(300_000):
            got.write(piece)
        assert got.getvalue() == DATA
        assert f.cache.cache_info().currsize <= 4  # a bounded block cache, however large the file


def test_write_larger_than_a_chunk_streams_into_the_vault(fs: VaultFileSystem, url: str) -> None:
    with fs.open("/out/w.bin", "wb") as f:
        for i in range(0, len(DATA), 65536):
            f.write(DATA[i:i + 65536])
        assert f._task is not None and not f._task.done()  # the put runs while we still write
        assert f._queue is not None and f._queue.qsize() <= 2  # at most two blocks wait
    assert fs.info("/out/w.bin")["size"] == len(DATA)
    assert fs.cat_file("/out/w.bin") == DATA

    async def read_back() -> bytes:
        async with await sigmavault.open(url, passphrase=PASS) as vault:
            return await vault.read_bytes("/out/w.bin")

    assert asyncio.run(read_back()) == DATA


def test_a_write_left_by_an_exception_stores_nothing(fs: VaultFileSystem) -> None:
    with pytest.raises(RuntimeError), fs.open("/half.bin", "wb") as f:
        f.write(DATA)
        raise RuntimeError("stop")
    assert not fs.exists("/half.bin")
    with fs.open("/x.bin", "xb") as f:
        f.write(b"once")
    with pytest.raises(FileExistsError):
        fs.open("/x.bin", "xb")


def test_errors_are_the_builtin_ones(fs: VaultFileSystem) -> None:
    fs.pipe_file("/d/f.txt", b"x")
    for call in (lambda: fs.cat_file("/nope"), lambda: fs.info("/nope"), lambda: fs.open("/nope", "rb"),
                 lambda: fs.rm("/nope"), lambda: fs.get_file("/nope", "/tmp/never-written"),
                 lambda: fs.mv("/nope", "/d2")):
        with pytest.raises(FileNotFoundError):
            call()
    assert not fs.exists("/nope") and not fs.isdir("/nope") and not fs.isfile("/nope")
    with pytest.raises(OSError) as exc:
        fs.rm("/d")
    assert exc.value.errno == errno.ENOTEMPTY and "not empty" in str(exc.value)
    assert fs.exists("/d/f.txt")
    with pytest.raises(IsADirectoryError):
        fs.open("/d", "rb")
    with pytest.raises(IsADirectoryError):
        fs.open("/d", "wb")
    with pytest.raises(IsADirectoryError):
        fs.cat_file("/d")
    with pytest.raises(IsADirectoryError):
        fs.rm_file("/d")
    with pytest.raises(NotADirectoryError):
        fs.pipe_file("/d/f.txt/under", b"y")
    with pytest.raises(FileExistsError):
        fs.mkdir("/d")
    with pytest.raises(FileExistsError):
        fs.makedirs("/d/f.txt", exist_ok=True)
    with pytest.raises(NotImplementedError, match="append"):
        fs.open("/d/f.txt", "ab")
    with pytest.raises(ValueError, match="unsupported file mode"):
        fs._open("/d/f.txt", "r+b")
    with pytest.raises(sigmavault.UsageError, match=r"'\.\.'"):
        fs.cat_file("/d/../f.txt")
    with pytest.raises(ValueError, match="commit must be"):
        VaultFileSystem(vault="/x", passphrase=PASS, commit="sometimes", skip_instance_cache=True)


def test_listing_moving_removing(fs: VaultFileSystem) -> None:
    fs.pipe({"/a/1.txt": b"1", "/a/2.csv": b"22", "/a/sub/3.txt": b"333"})
    assert fs.ls("/a", detail=False) == ["/a/1.txt", "/a/2.csv", "/a/sub"]
    info = {e["name"]: e for e in fs.ls("sigmavault:///a")}
    assert info["/a/2.csv"]["size"] == 2 and info["/a/2.csv"]["type"] == "file"
    assert info["/a/sub"]["type"] == "directory" and info["/a/1.txt"]["mtime"] > 0
    assert fs.ls("/a/1.txt", detail=False) == ["/a/1.txt"]
    assert fs.find("/") == ["/a/1.txt", "/a/2.csv", "/a/sub/3.txt"]
    assert fs.glob("/a/*.txt") == ["/a/1.txt"]
    assert fs.size("/a/sub/3.txt") == 3 and fs.isdir("/a/sub") and fs.isfile("/a/1.txt")
    fs.makedirs("/b", exist_ok=True)
    fs.mv("/a/sub", "/b")  # into an existing directory
    fs.mv("/a/1.txt", "/c/one.txt")  # a new parent is made
    assert fs.find("/") == ["/a/2.csv", "/b/sub/3.txt", "/c/one.txt"]
    fs.rm("/a/*.csv")
    fs.rm(["/b", "/c"], recursive=True)
    assert fs.ls("/", detail=False) == ["/a"]


def test_passphrase_is_nowhere_to_be_seen(fs: VaultFileSystem, url: str) -> None:
    fs.pipe_file("/f", b"x")
    with fs.open("/f") as f:
        file_repr = repr(f)
    for text in (repr(fs), str(fs), json.dumps(fs.storage_options), fs.to_json(), file_repr):
        assert PASS not in text
    assert PASS.encode() not in pickle.dumps(fs)
    assert url in repr(fs)


def test_a_copy_finds_its_credential_in_the_environment(fs: VaultFileSystem, monkeypatch: pytest.MonkeyPatch,
                                                        url: str) -> None:
    fs.pipe_file("/f", b"x")
    copy = pickle.loads(pickle.dumps(fs))
    with pytest.raises(sigmavault.AuthError, match="SIGMAVAULT_PASSPHRASE"):
        copy.cat_file("/f")
    monkeypatch.setenv("SIGMAVAULT_PASSPHRASE", PASS)
    monkeypatch.setenv("SIGMAVAULT_VAULT", url)
    by_env = VaultFileSystem(skip_instance_cache=True)
    assert by_env.cat_file("/f") == b"x"
    by_env.close()
    monkeypatch.setenv("SIGMAVAULT_PASSPHRASE", "wrong")
    with pytest.raises(sigmavault.AuthError):
        VaultFileSystem(skip_instance_cache=True).ls("/")


def test_commit_on_close(fs: VaultFileSystem, url: str) -> None:
    with fs.open("/c.txt", "wb") as f:
        f.write(b"committed")
        assert not other_client_sees(url, "/c.txt")
    assert other_client_sees(url, "/c.txt")
    fs.rm("/c.txt")
    assert not other_client_sees(url, "/c.txt")


def test_commit_manual(url: str) -> None:
    fs = open_fs(url, commit="manual")
    with fs.open("/m.txt", "wb") as f:
        f.write(b"later")
    fs.pipe_file("/n.txt", b"n")
    assert fs.cat_file("/m.txt") == b"later"  # this filesystem sees its own edits
    assert not other_client_sees(url, "/m.txt")
    assert fs.commit() >= 1
    assert other_client_sees(url, "/m.txt") and other_client_sees(url, "/n.txt")
    fs.pipe_file("/dropped.txt", b"d")
    with pytest.warns(UserWarning, match="uncommitted"):
        fs.close()
    assert not other_client_sees(url, "/dropped.txt")


def test_fsspec_open_and_the_url_forms(url: str) -> None:
    with fsspec.open("sigmavault://notes/a.txt", "w", vault=url, passphrase=PASS) as f:
        f.write("text through fsspec\n")
    with fsspec.open("sigmavault:///notes/a.txt", "r", vault=url, passphrase=PASS) as f:
        assert f.read() == "text through fsspec\n"


async def test_an_open_vault_embedded(url: str) -> None:
    async with await sigmavault.open(url, passphrase=PASS) as vault:
        fs = VaultFileSystem(vault_obj=vault, asynchronous=True, commit="manual")
        assert fs is not VaultFileSystem(vault_obj=vault, asynchronous=True)  # never shared by the cache
        await fs._pipe_file("sigmavault:///e.txt", b"embedded")
        assert await fs._cat_file("/e.txt", 2, 5) == b"bed"
        assert [e["name"] for e in await fs._ls("/")] == ["/e.txt"]
        assert vault.pending
        await fs._commit()
        await fs.aclose()
        assert not vault.pending and await vault.read_bytes("/e.txt") == b"embedded"  # still open
        with pytest.raises(ValueError, match="closed"):
            await fs._info("/e.txt")


def test_a_byte_the_provider_flipped_is_an_integrity_error_never_wrong_bytes(fs: VaultFileSystem, url: str) -> None:
    """(P) The provider flips one byte of a chunk object: every read path through fsspec fails loudly."""
    data = os.urandom(3 * MIB)
    fs.pipe_file("/big.bin", data)
    objects = [p for p in (Path(url) / "o").rglob("*") if p.is_file() and not p.name.startswith(".")]
    chunk = max(objects, key=lambda p: p.stat().st_size)  # full chunks are the largest objects
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    chunk.chmod(0o600)
    chunk.write_bytes(bytes(raw))
    other = open_fs(url)
    try:
        with pytest.raises(sigmavault.IntegrityError):
            other.cat_file("/big.bin")
        with pytest.raises(sigmavault.IntegrityError), other.open("/big.bin", "rb") as f:
            while f.read(MIB):
                pass
        failed = 0
        for start in range(0, 3 * MIB, MIB // 4):  # a range gives the true bytes or fails, never others
            try:
                assert other.cat_file("/big.bin", start, start + 100) == data[start : start + 100]
            except sigmavault.IntegrityError:
                failed += 1
        assert failed  # the ranges inside the damaged chunk
    finally:
        other.close()
