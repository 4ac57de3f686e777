"""The one read route (issue 11): every front reads blobs through one reader that opens them off the
event loop, verifies each id exactly once, serves the still-open data pack from memory without
uploading it, and turns a flipped byte in a pack member or a full chunk into the one IntegrityError
naming the path (open_read, VaultFile, export, the mount's chunk reads)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from vaulttools import MIB, PASS, new_vault, reopen

import sigmavault
from sigmavault.actors import mixpool
from sigmavault.actors.mixer import Mixer
from sigmavault.backends.base import Backend, Wrapper
from sigmavault.engine.errors import IntegrityError, IsADirectory
from sigmavault.engine.format.envelope import Sealer
from sigmavault.engine.format.refs import PendingRef, final_ref
from sigmavault.engine.keys.schedule import KIND_CHUNK, KIND_DATA_PACK, KIND_PAGE_PACK, EpochKeys
from sigmavault.engine.repo import reader as reader_mod
from sigmavault.mount.files import FileContent
from sigmavault.mount.inodes import Handle, InodeTable
from sigmavault.mount.options import MountOptions

BIG = random.Random(7).randbytes(2 * MIB + 300_000)  # two full chunks and a tail in the data pack
SMALL = random.Random(8).randbytes(20_000)  # a pack member
BLOB_KINDS = (KIND_CHUNK, KIND_PAGE_PACK, KIND_DATA_PACK)


class CountingPuts(Wrapper):
    """Passes everything through, noting the name of every object uploaded."""

    __slots__ = ("puts",)

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.puts: list[str] = []

    async def put_if_absent(self, name: str, data: bytes | bytearray | memoryview) -> bool:
        self.puts.append(name)
        return await self.inner.put_if_absent(name, data)


def count_puts(v: sigmavault.Vault) -> list[str]:
    """Names of every object the vault uploads from now on (a wrapper under the retrying layer)."""
    outer = v._store.backend
    assert isinstance(outer, Wrapper)
    counting = CountingPuts(outer.inner)
    outer.inner = counting
    return counting.puts


async def test_a_tail_in_the_open_pack_is_read_from_memory_without_an_upload(tmp_path: Path) -> None:
    url = tmp_path / "v"
    async with await new_vault(url) as v:
        await v.put("/big.bin", BIG)
        await v.put("/small.bin", SMALL)
        assert v._data_pack.pending  # both tails wait in the open data pack
        puts = count_puts(v)
        assert await v.read_bytes("/big.bin") == BIG
        assert await v.read_bytes("/small.bin") == SMALL
        assert await v.read_bytes("/big.bin", 2 * MIB + 5, 100) == BIG[2 * MIB + 5 : 2 * MIB + 105]
        async with await v.open("/big.bin") as f:
            await f.seek(2 * MIB - 10)
            assert await f.read(1000) == BIG[2 * MIB - 10 : 2 * MIB + 990]
        size, inline, blobs = await v.chunks("/big.bin")
        assert (size, inline, len(blobs)) == (len(BIG), None, 3)
        assert isinstance(blobs[2], PendingRef) and not blobs[2].done
        assert await v.read_chunk(blobs[2]) == BIG[2 * MIB :]
        await v.get("/small.bin", tmp_path / "out.bin")
        assert (tmp_path / "out.bin").read_bytes() == SMALL
        # the mount reads through the same route: its view keeps the pending ref
        content = FileContent(v, MountOptions(cache_dir=tmp_path / "cache"), InodeTable(), asyncio.Lock())
        ino = content.inodes.ino_for((b"big.bin",))
        assert await content.read(Handle(ino, False), 2 * MIB + 1, 4096) == BIG[2 * MIB + 1 : 2 * MIB + 4097]
        content.close()
        assert puts == []  # reading uploaded nothing
        assert v._data_pack.pending
        await v.commit()
        assert puts  # the commit does upload the pack
        assert blobs[2].done
        assert await v.read_chunk(blobs[2]) == BIG[2 * MIB :]  # now from the stored pack
    async with await reopen(url) as v:
        assert await v.read_bytes("/big.bin") == BIG
        assert await v.read_bytes("/small.bin") == SMALL


def _record(monkeypatch: pytest.MonkeyPatch, on_loop: list[tuple[str, int]], off_loop: list[tuple[str, int]],
            mixed: list[int], loop_thread: int) -> None:
    """Record every opening of a blob object (kinds 1, 2, 4) and whether it ran on the loop's thread."""

    def note(where: str, kind: int) -> None:
        if kind in BLOB_KINDS:
            (on_loop if threading.get_ident() == loop_thread else off_loop).append((where, kind))

    def wrap_sealer(name: str) -> None:
        real: Callable[..., Any] = getattr(Sealer, name)

        def opened(self: Sealer, kind: int, *a: Any, **kw: Any) -> Any:
            note(f"Sealer.{name}", kind)
            return real(self, kind, *a, **kw)

        monkeypatch.setattr(Sealer, name, opened)

    wrap_sealer("open")
    wrap_sealer("open_into")
    real_run = mixpool.Crypto.run

    def run(self: mixpool.Crypto, op: int, inp: memoryview, out: memoryview, kind: int, name: str,
            salt: bytes | None) -> int:
        if op == mixpool.OPEN:
            note("mixer", kind)
        return real_run(self, op, inp, out, kind, name, salt)

    monkeypatch.setattr(mixpool.Crypto, "run", run)
    real_view = Mixer.open_view

    async def open_view(self: Mixer, kind: int, *a: Any, **kw: Any) -> Any:
        mixed.append(kind)
        return await real_view(self, kind, *a, **kw)

    monkeypatch.setattr(Mixer, "open_view", open_view)


@pytest.mark.parametrize("mixer", ["inline", "thread", "process"])
async def test_blobs_are_never_opened_on_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        mixer: str) -> None:
    monkeypatch.setenv("SIGMAVAULT_MIXER", mixer)
    url = tmp_path / "v"
    async with await new_vault(url) as v:
        await v.put("/big.bin", BIG)
        await v.put("/d/small.bin", SMALL)
        await v.commit()
    on_loop: list[tuple[str, int]] = []
    off_loop: list[tuple[str, int]] = []
    mixed: list[int] = []
    _record(monkeypatch, on_loop, off_loop, mixed, threading.get_ident())
    async with await reopen(url) as v:
        assert await v.read_bytes("/d/small.bin") == SMALL
        assert v._mixer is None  # packs alone never start the mixer (worker processes cost seconds)
        v._reader._packs.clear()
        await v.mixer()  # running: packs open in it too
        assert await v.read_bytes("/big.bin") == BIG
        assert await v.read_bytes("/d/small.bin") == SMALL
        async with await v.open("/d/small.bin") as f:
            assert await f.read() == SMALL
        _, _, blobs = await v.chunks("/big.bin")
        assert [await v.read_chunk(b) for b in blobs] == [BIG[:MIB], BIG[MIB : 2 * MIB], BIG[2 * MIB :]]
        await v.get("/d", tmp_path / "out")
        report = await v.verify(full=True)  # loads every catalog page through a fresh reader
        assert not report.problems
    assert on_loop == []
    assert (KIND_PAGE_PACK not in mixed) and ("Sealer.open_into", KIND_PAGE_PACK) in off_loop  # pages: a thread
    if mixer == "inline":  # the inline mixer would run in the loop: worker threads open instead
        assert {k for _, k in off_loop} == set(BLOB_KINDS)
    else:
        assert set(mixed) == {KIND_CHUNK, KIND_DATA_PACK}  # chunks and data packs in the mixer
        if mixer == "thread":
            assert {k for w, k in off_loop if w == "mixer"} == {KIND_CHUNK, KIND_DATA_PACK}


async def test_each_blob_id_is_computed_once_per_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with await new_vault(tmp_path / "v") as v:
        await v.put("/big.bin", BIG)
        await v.commit()
    ids: list[int] = []
    real = EpochKeys.chunk_id_of

    def chunk_id_of(self: EpochKeys, data: bytes | bytearray | memoryview) -> bytes:
        ids.append(len(data))
        return real(self, data)

    monkeypatch.setattr(EpochKeys, "chunk_id_of", chunk_id_of)
    async with await reopen(tmp_path / "v") as v:
        assert await v.read_bytes("/big.bin") == BIG
        assert sorted(ids) == sorted([MIB, MIB, len(BIG) - 2 * MIB])
        ids.clear()
        _, _, blobs = await v.chunks("/big.bin")
        for b in blobs:
            await v.read_chunk(b)
        assert sorted(ids) == sorted([MIB, MIB, len(BIG) - 2 * MIB])


def _flip(root: Path, name: str, at: int) -> None:
    (path,) = [p for p in (root / "o").rglob(name[2:]) if p.is_file()]
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.chmod(0o600)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("target", ["chunk", "pack"])
async def test_a_flipped_byte_is_an_integrity_error_naming_the_path_through_every_front(
        tmp_path: Path, target: str) -> None:
    url = tmp_path / "v"
    async with await new_vault(url) as v:
        await v.put("/big.bin", BIG)
        await v.put("/small.bin", SMALL)
        await v.commit()
        _, _, blobs = await v.chunks("/big.bin")
        _, _, small = await v.chunks("/small.bin")
    refs = [final_ref(b) for b in blobs]  # the pack was sealed at the commit: every ref is final
    assert len(refs) == 3 and refs[2].kind == KIND_DATA_PACK
    if target == "chunk":
        path, ref = "/big.bin", refs[1]
        _flip(url, ref.object_name, 5000)
    else:
        path, ref = "/small.bin", final_ref(small[0])
        _flip(url, ref.object_name, 62 + ref.off + 100)  # inside the member's own record
    async with await reopen(url) as v:
        with pytest.raises(IntegrityError, match=path):
            await v.read_bytes(path)
        with pytest.raises(IntegrityError, match=path):
            async with await v.open(path) as f:
                await f.read()
        with pytest.raises(IntegrityError, match=path):
            await v.get(path, tmp_path / "out.bin")
        assert not (tmp_path / "out.bin").exists()
        content = FileContent(v, MountOptions(cache_dir=tmp_path / "cache"), InodeTable(), asyncio.Lock())
        ino = content.inodes.ino_for((path[1:].encode(),))
        with pytest.raises(IntegrityError):
            await content.read(Handle(ino, False), 0, len(BIG))
        content.close()
        _, _, now = await v.chunks(path)
        with pytest.raises(IntegrityError):
            await v.read_chunk(ref)
        assert now  # the untouched blobs still read
        other = "/small.bin" if target == "chunk" else "/big.bin"
        if target == "chunk":
            assert await v.read_bytes(other) == SMALL
        else:  # big.bin's tail sits in the same damaged pack; its full chunks still read
            assert await v.read_bytes(other, 0, 2 * MIB) == BIG[: 2 * MIB]


async def test_with_the_inline_mixer_reads_start_no_mixer_and_reuse_their_buffers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGMAVAULT_MIXER", "inline")
    url = tmp_path / "v"
    data = random.Random(9).randbytes(8 * MIB + 10)
    async with await new_vault(url) as v:
        await v.put("/eight.bin", data)
        await v.commit()
    async with await reopen(url) as v:
        made: list[int] = []
        real = reader_mod._Buffers.take

        def take(self: reader_mod._Buffers) -> bytearray:
            fresh = not self._free
            buf = real(self)
            if fresh:
                made.append(len(buf))
            return buf

        monkeypatch.setattr(reader_mod._Buffers, "take", take)
        for _ in range(2):
            assert await v.read_bytes("/eight.bin") == data
        assert v._mixer is None  # an inline mixer would open on the loop: it is not even started
        assert 0 < len(made) <= 4  # 17 objects opened, into at most a window's worth of buffers


async def test_read_files_reads_a_batch_of_pack_members_in_one_hop(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Export's batches: every file whole, byte for byte what read_bytes gives, the committed pack
    members inflated and checked in one worker-thread hop; the open pack's member and full chunks
    read one by one."""
    rng = random.Random(11)
    files = {"/tiny": b"x" * 10, "/empty": b"", "/text": b"words and words " * 2000, "/big.bin": BIG}
    files.update({f"/s{i}": rng.randbytes(20_000 + i) for i in range(5)})
    async with await sigmavault.create(str(tmp_path / "v"), passphrase=PASS, kdf="minimum", chunk_size=MIB,
                                       compression="auto") as v:
        for path, data in files.items():
            await v.put(path, data)
        await v.commit()
        await v.put("/pending", SMALL)  # stays in the open data pack
        files["/pending"] = SMALL
        hops: list[int] = []
        real = reader_mod._open_members

        def counted(members: list[Any], chunk_size: int) -> list[Any]:
            hops.append(len(members))
            return real(members, chunk_size)

        monkeypatch.setattr(reader_mod, "_open_members", counted)
        paths = list(files)
        assert await v.read_files(paths) == list(files.values())
        assert hops == [7]  # /text, /s0…/s4 and big.bin's tail; /pending is read from the open pack
        _, _, text = await v.chunks("/text")
        assert final_ref(text[0]).zlen is not None  # a compressed member was among them
        await v.mkdir("/d")
        with pytest.raises(IsADirectory, match="/d is a directory"):
            await v.read_files(["/s0", "/d"])


async def test_read_files_names_the_file_whose_member_is_forged(tmp_path: Path) -> None:
    """A co-writer's catalog points one file at another blob's place under its own id (threat C):
    the batch fails naming that file, each good file still reads, and read_many puts the error in
    the forged blob's place only."""
    rng = random.Random(12)
    async with await new_vault(tmp_path / "v") as v:
        for i in range(4):
            await v.put(f"/f{i}", rng.randbytes(9000 + i))
        await v.commit()
        refs = [final_ref((await v.chunks(f"/f{i}"))[2][0]) for i in range(4)]
        forged = dataclasses.replace(refs[2], off=refs[1].off, length=refs[1].length)
        got = await v._reader.read_many([refs[0], forged, refs[3]])
        assert isinstance(got[1], IntegrityError)
        assert got[0] == await v.read_bytes("/f0") and got[2] == await v.read_bytes("/f3")
        node = await v._tree.lookup([b"f2"])
        node.blobs[0] = forged  # type: ignore[union-attr]
        with pytest.raises(IntegrityError, match="/f2"):
            await v.read_files(["/f0", "/f1", "/f2", "/f3"])
        assert await v.read_files(["/f0", "/f1", "/f3"]) == [await v.read_bytes(f"/f{i}") for i in (0, 1, 3)]
