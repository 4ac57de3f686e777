"""The one write route: every byte of file content — ``put``, import and the mount's ``patch`` — goes
chunker → coordinate → mixer → writer; full data packs are sealed by the mixer stage and uploaded by
the writer stage like chunks; a commit stores what is left of them, whatever became of the pipeline."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from vaulttools import MIB, new_vault, reopen

import sigmavault
from sigmavault.actors import mixpool
from sigmavault.actors.mixer import Mixer
from sigmavault.backends.base import Backend, Wrapper
from sigmavault.engine.catalog.tree import Meta
from sigmavault.engine.edits import Planned
from sigmavault.engine.errors import BackendAuthError
from sigmavault.engine.format.envelope import Sealer, object_len
from sigmavault.engine.format.refs import PendingRef, final_ref
from sigmavault.engine.keys.schedule import KIND_CHUNK, KIND_DATA_PACK, KIND_PAGE_PACK

BIG = random.Random(11).randbytes(3 * MIB + 5000)  # three full chunks and a tail
SMALLS = [random.Random(100 + i).randbytes(60_000 + i) for i in range(30)]  # 1.8 MB: closes a data pack


class FailingPuts(Wrapper):
    """Notes every upload; fails the ``fail_at``-th one (0-based) with an error no retry hides."""

    __slots__ = ("fail_at", "puts")

    def __init__(self, inner: Backend, fail_at: int | None = None) -> None:
        super().__init__(inner)
        self.puts: list[tuple[str, int]] = []
        self.fail_at = fail_at

    async def put_if_absent(self, name: str, data: bytes | bytearray | memoryview) -> bool:
        if name.startswith("l/"):  # the writer's lease (prune beside writers): not an upload of the vault's
            return await self.inner.put_if_absent(name, data)
        if self.fail_at is not None and len(self.puts) == self.fail_at:
            self.fail_at = None
            raise BackendAuthError("the provider refused the upload")
        self.puts.append((name, len(data)))
        return await self.inner.put_if_absent(name, data)


def under_retries(v: sigmavault.Vault, fail_at: int | None = None) -> FailingPuts:
    outer = v._store.backend
    assert isinstance(outer, Wrapper)
    spy = FailingPuts(outer.inner, fail_at)
    outer.inner = spy
    return spy


def _record_seals(monkeypatch: pytest.MonkeyPatch, loop_thread: int) -> tuple[list[int], list[tuple[int, str]]]:
    """Kinds sealed on the event loop's thread, and (kind, name) of every seal the mixer was asked for."""
    on_loop: list[int] = []
    mixed: list[tuple[int, str]] = []
    real_seal_into: Callable[..., Any] = Sealer.seal_into

    def seal_into(self: Sealer, kind: int, *a: Any, **kw: Any) -> Any:
        if threading.get_ident() == loop_thread:
            on_loop.append(kind)
        return real_seal_into(self, kind, *a, **kw)

    monkeypatch.setattr(Sealer, "seal_into", seal_into)
    real_run = mixpool.Crypto.run

    def run(self: mixpool.Crypto, op: int, inp: memoryview, out: memoryview, kind: int, name: str,
            salt: bytes | None) -> int:
        if op == mixpool.SEAL and threading.get_ident() == loop_thread:
            on_loop.append(kind)
        return real_run(self, op, inp, out, kind, name, salt)

    monkeypatch.setattr(mixpool.Crypto, "run", run)
    real_seal = Mixer.seal

    async def seal(self: Mixer, kind: int, name: str, *a: Any, **kw: Any) -> Any:
        mixed.append((kind, name))
        return await real_seal(self, kind, name, *a, **kw)

    monkeypatch.setattr(Mixer, "seal", seal)
    return on_loop, mixed


@pytest.mark.parametrize("mixer", ["thread", "process"])
async def test_put_patch_and_commit_never_seal_on_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 mixer: str) -> None:
    monkeypatch.setenv("SIGMAVAULT_MIXER", mixer)
    on_loop, mixed = _record_seals(monkeypatch, threading.get_ident())
    url = tmp_path / "v"
    async with await new_vault(url) as v:
        await v.mkdir("/d")
        await v.commit()  # pages alone: sealed in a thread, no mixer started for them
        assert v._mixer is None
        await v.put("/big.bin", BIG)
        new_mid = random.Random(12).randbytes(MIB)
        tail = random.Random(13).randbytes(2000)
        await v.patch("/big.bin", 3 * MIB + 2000, {1: new_mid, 3: tail})
        _, _, blobs = await v.chunks("/big.bin")
        patched = final_ref(blobs[1])
        assert (KIND_CHUNK, patched.object_name) in mixed  # the patch's new chunk went through the mixer
        assert isinstance(blobs[3], PendingRef)  # its new tail through coordinate into the data pack
        await v.commit()
    assert [k for k in on_loop if k in (KIND_CHUNK, KIND_PAGE_PACK, KIND_DATA_PACK)] == []  # commits are tiny
    kinds = {k for k, _ in mixed}
    assert KIND_CHUNK in kinds and KIND_DATA_PACK in kinds  # the commit's pack flush: the mixer, once started
    async with await reopen(url) as v:
        assert await v.read_bytes("/big.bin") == BIG[:MIB] + new_mid + BIG[2 * MIB : 3 * MIB] + tail


async def test_a_full_data_pack_is_sealed_and_uploaded_by_the_pipeline_before_any_commit(tmp_path: Path) -> None:
    url = tmp_path / "v"
    async with await new_vault(url) as v:
        spy = under_retries(v)
        async with v.ingest() as ing:
            for i, data in enumerate(SMALLS):
                await ing.add([f"f{i:02}".encode()], data, Meta.now(0o644))
        full = object_len(MIB, MIB, 4096)
        refs = [(await v.chunks(f"/f{i:02}"))[2][0] for i in range(len(SMALLS))]
        assert all(isinstance(r, PendingRef) for r in refs)
        landed = [r for r in refs if r.done]
        assert landed and len(landed) < len(refs)  # the first pack is stored, the rest wait in the open one
        assert all(final_ref(r).object_len == full for r in landed)  # a full pack: a full chunk's size
        assert {final_ref(r).object_name for r in landed} <= {n for n, _ in spy.puts}
        assert {size for _, size in spy.puts} == {full}  # nothing else was uploaded yet
        assert not v._data_pack._closed  # nothing left for the commit but the open pack
        await v.commit()
        assert all(r.done for r in refs)
    async with await reopen(url) as v:
        for i, data in enumerate(SMALLS):
            assert await v.read_bytes(f"/f{i:02}") == data


async def test_a_pack_the_provider_refused_mid_import_is_stored_by_the_next_commit(tmp_path: Path) -> None:
    """(P) The writer stage's upload of a full pack fails: the import stops with that error, but files
    whose pieces were in that pack may already be in the tree. The next commit stores the pack."""
    url = tmp_path / "v"
    async with await new_vault(url) as v:
        spy = under_retries(v, fail_at=0)  # the first upload is the first full pack
        with pytest.raises(BackendAuthError, match="refused"):
            async with v.ingest() as ing:
                for i, data in enumerate(SMALLS):
                    await ing.add([f"f{i:02}".encode()], data, Meta.now(0o644))
        assert v._data_pack._closed  # the refused pack waits in memory, its members readable
        names = {st.name for st in await v.ls("/")}
        present = [i for i in range(len(SMALLS)) if f"f{i:02}" in names]
        stuck = [i for i in present if not (await v.chunks(f"/f{i:02}"))[2][0].done]
        assert stuck  # the failure left files in the tree whose pack was not stored
        for i in present:
            assert await v.read_bytes(f"/f{i:02}") == SMALLS[i]
        await v.commit()
        assert not v._data_pack._closed and spy.puts
    async with await reopen(url) as v:
        for i in present:
            assert await v.read_bytes(f"/f{i:02}") == SMALLS[i]
        assert not (await v.verify(full=True)).problems


async def test_a_pack_stored_by_a_flush_and_by_its_pipeline_lands_once(tmp_path: Path) -> None:
    async with await new_vault(tmp_path / "v") as v:
        pack = v._data_pack
        landed: list[int] = []
        pack._on_landed = lambda refs: landed.append(len(refs))
        closed = None
        members = []
        for data in SMALLS:
            m, c = pack.add(data, v._store.keys.chunk_id_of(data))
            members.append(m)
            closed = closed or c
        assert closed is not None and pack.member_bytes(members[0]) == SMALLS[0]  # closed, not stored: memory
        await pack.flush()  # a commit stores it (and the open pack) first ...
        before = pack.objects_written
        await pack.store(closed)  # ... then the pipeline's upload of the same pack finds it there
        assert pack.objects_written == before and landed == [len(closed.members), len(members) - len(closed.members)]
        assert all(m.done for m in members) and pack.member_bytes(members[0]) is None
        assert await v._reader.read(members[0]) == SMALLS[0]


async def test_chunks_stored_ahead_are_linked_by_a_patch_without_their_content(tmp_path: Path) -> None:
    """The mount's write-behind: ``ingest(on_file=...)`` stores full chunks and hands back their blobs
    without touching the tree; a later ``patch`` links them (and refuses a blob of the wrong length)."""
    v = await new_vault(tmp_path)
    got: dict[bytes, Any] = {}

    async def on_file(parts: list[bytes], node: Any) -> None:
        got[parts[0]] = node.blobs[0]

    a, b = BIG[:MIB], BIG[MIB : 2 * MIB]
    async with v.ingest(on_file=on_file) as ing:
        for name, data in ((b"0", a), (b"1", b)):
            await ing.add([name], Planned((data,)), Meta.now(0o600))
    assert await v.ls("/") == []  # nothing reached the tree
    with pytest.raises(sigmavault.UsageError):  # a full chunk's blob where the 10-byte tail belongs
        await v.patch("/f.bin", 2 * MIB + 10, {0: got[b"0"], 1: got[b"1"], 2: got[b"0"]})
    await v.patch("/f.bin", 2 * MIB + 10, {0: got[b"0"], 1: got[b"1"], 2: b"t" * 10})
    assert await v.read_bytes("/f.bin") == a + b + b"t" * 10
    await v.commit()
    await v.aclose()
    again = await reopen(tmp_path)
    assert await again.read_bytes("/f.bin") == a + b + b"t" * 10
    await again.aclose()
