"""The create-only probe (issue 10 item 15) and a create that fails leaving nothing (issue 17)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from vaulttools import PASS

import sigmavault
from sigmavault import config
from sigmavault.backends.base import Backend, Wrapper
from sigmavault.backends.faulty import FaultyBackend
from sigmavault.backends.memory import MemoryBackend
from sigmavault.engine import opening as session
from sigmavault.engine.errors import BackendError
from sigmavault.engine.local import devstate
from sigmavault.engine.repo import probe


class IgnoresCondition(Wrapper):
    """A store that treats every create-only put as a plain put (overwrites, says "created")."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.names: list[str] = []

    async def put_if_absent(self, name: str, data: bytes | bytearray | memoryview) -> bool:
        self.names.append(name)
        await self.inner.delete(name)
        await self.inner.put_if_absent(name, data)
        return True


class SameLocation(FaultyBackend):
    """Faults, but the same location (so the same local state folder) as the store it wraps."""

    @property
    def description(self) -> str:
        return self.inner.description


def _wrap(monkeypatch: pytest.MonkeyPatch, make: Any) -> list[Any]:
    made: list[Any] = []
    real = session._connect

    def connect(url: str, opts: dict[str, Any]) -> Backend:
        wrapped = make(real(url, opts))
        made.append(wrapped)
        return wrapped  # type: ignore[no-any-return]

    monkeypatch.setattr(session, "_connect", connect)
    return made


async def _names(backend: Backend) -> list[str]:
    return sorted([n async for n in backend.list("")])


async def test_probe_passes_on_a_real_store_and_cleans_up() -> None:
    backend = MemoryBackend()
    assert await probe.check(backend)
    assert await _names(backend) == []


async def test_probe_fails_on_a_store_that_ignores_the_condition() -> None:
    inner = MemoryBackend()
    backend = IgnoresCondition(inner)
    assert not await probe.check(backend)
    assert await _names(inner) == []  # the probe is deleted even then
    assert all(n.startswith("l/probe-") for n in backend.names)  # never under o/, c/ or k/


async def test_create_refuses_a_store_that_ignores_create_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = _wrap(monkeypatch, IgnoresCondition)
    with pytest.raises(probe.UnsafeStore, match="ignores create-only writes"):
        await sigmavault.create(str(tmp_path / "v"), passphrase=PASS, kdf="minimum")
    assert all(n.startswith("l/") for n in made[0].names)  # nothing of a vault was written
    assert not list((tmp_path / "v").rglob("k/*")) and not list((tmp_path / "v").rglob("c/*"))


async def test_single_writer_accepts_it_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _wrap(monkeypatch, IgnoresCondition)
    notes: list[str] = []
    async with await sigmavault.create(str(tmp_path / "v"), passphrase=PASS, kdf="minimum", single_writer=True,
                                       on_notice=notes.append) as v:
        await v.put(b"/f", b"x")
        await v.commit()
    assert any("single-writer" in n for n in notes)


async def test_first_write_from_a_device_probes_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = str(tmp_path / "v")
    real = session._connect
    async with await sigmavault.create(url, passphrase=PASS, kdf="minimum") as v:
        await v.put(b"/a", b"1")
        await v.commit()
    # a second device, whose store now ignores the condition (say, a proxy in front of it)
    monkeypatch.setenv("SIGMAVAULT_HOME", str(tmp_path / "device2"))
    made = _wrap(monkeypatch, IgnoresCondition)
    async with await sigmavault.open(url, passphrase=PASS) as v:
        assert await v.read_bytes(b"/a") == b"1"  # reading needs no probe
    with pytest.raises(probe.UnsafeStore):
        async with await sigmavault.open(url, passphrase=PASS) as v:
            await v.put(b"/b", b"2")
    assert not any(n.startswith(("c/", "k/", "o/")) for m in made for n in m.names)  # refused before any write
    monkeypatch.setattr(session, "_connect", real)
    async with await sigmavault.open(url, passphrase=PASS) as v:  # an honest store: probed once, then remembered
        await v.put(b"/b", b"2")
        await v.commit()
    async with await sigmavault.open(url, passphrase=PASS) as v:
        assert probe.passed(devstate.folder_for(config.places(), v.backend))


async def test_create_that_fails_midway_leaves_no_objects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def make(inner: Backend) -> FaultyBackend:
        faulty = FaultyBackend(inner)
        faulty.fail("put_if_absent", BackendError("refused"), nth=4)  # probe ×2, k/, then c/0 fails
        return faulty

    _wrap(monkeypatch, make)
    with pytest.raises(BackendError):
        await sigmavault.create(str(tmp_path / "v"), passphrase=PASS, kdf="minimum")
    left = [p for p in (tmp_path / "v").rglob("*") if p.is_file()]
    assert left == [], left


async def test_lost_probe_response_is_not_a_false_alarm(monkeypatch: pytest.MonkeyPatch) -> None:
    faulty = FaultyBackend(MemoryBackend())
    faulty.lose_response("put_if_absent", nth=1)  # created, but the caller saw an error and retried
    from sigmavault.backends.retrying import RetryingBackend

    backend = RetryingBackend(faulty, base_delay=0.001)
    assert await probe.check(backend)


async def test_create_that_fails_puts_old_state_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    url = str(tmp_path / "v")
    async with await sigmavault.create(url, passphrase=PASS, kdf="minimum") as v:
        folder = devstate.folder_for(config.places(), v.backend)
    before = (folder / devstate.STATE_FILE).read_bytes()
    shutil.rmtree(tmp_path / "v")

    def make(inner: Backend) -> FaultyBackend:
        faulty = SameLocation(inner)
        faulty.fail("put_if_absent", BackendError("refused"), nth=4)  # probe ×2, k/ (state set aside), c/0 fails
        return faulty

    _wrap(monkeypatch, make)
    with pytest.raises(BackendError):
        await sigmavault.create(url, passphrase=PASS, kdf="minimum")
    assert (folder / devstate.STATE_FILE).read_bytes() == before
    assert not list(folder.parent.glob("*.replaced-*"))
    assert not [p for p in (tmp_path / "v").rglob("*") if p.is_file()]
