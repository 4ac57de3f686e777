"""A dispersed vault over a local folder, SeaweedFS (S3) and Azurite (Azure Blob): real servers."""

from __future__ import annotations

from pathlib import Path

import pytest
from conformance import BackendConformance
from dispersal import dispersed
from servers import AzuriteServer, SeaweedServer
from test_cloud_vault import cloud_env, place_on, use_env

import sigmavault
from sigmavault.backends.base import Backend
from sigmavault.backends.faulty import FaultyBackend
from sigmavault.backends.local import LocalBackend
from sigmavault.backends.urls import open_backend
from sigmavault.engine import dispersal

PASS = "correct horse battery staple"
MIB = 1 << 20


@pytest.fixture
def urls(
    s3_server: SeaweedServer, azure_server: AzuriteServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    s3 = place_on(s3_server, tmp_path, monkeypatch)
    az = place_on(azure_server, tmp_path, monkeypatch)
    use_env(monkeypatch, {**cloud_env(s3_server, tmp_path), **cloud_env(azure_server, tmp_path)})
    return [str(tmp_path / "local"), s3.url, az.url]


async def test_round_trip_a_lost_place_and_repair(urls: list[str], tmp_path: Path) -> None:
    data = {"big.bin": bytes(range(256)) * (3 * MIB // 256) + b"tail", "small.txt": b"small"}
    async with await sigmavault.create(places=urls, needed=2, passphrase=PASS, kdf="minimum", chunk_size=MIB) as v:
        for path, body in data.items():
            await v.put(path, body)
        await v.commit()
    async with await sigmavault.open([urls[2], urls[0], urls[1]], passphrase=PASS) as v:
        for path, body in data.items():
            assert await v.read_bytes(path) == body
    gone = open_backend(urls[2])  # everything in the Azure container, deleted outright
    for name in [n async for n in gone.list("")]:
        await gone.delete(name)
    await gone.aclose()
    async with await sigmavault.open(urls, passphrase=PASS) as v:
        for path, body in data.items():
            assert await v.read_bytes(path) == body
        report = await dispersal.repair(v)
        assert report.shards_written > 0 and not report.unrecoverable, report
        assert (await dispersal.repair(v)).clean
    async with await sigmavault.open([urls[1], urls[2]], passphrase=PASS) as v:  # the local folder unused
        for path, body in data.items():
            assert await v.read_bytes(path) == body
        assert (await v.verify(full=True)).ok


class TestServersConformance(BackendConformance):
    """Local + SeaweedFS + Azurite under one dispersed backend, the suite unchanged (fewer racers)."""

    racers = 20

    @pytest.fixture(autouse=True)
    def _places(self, urls: list[str]) -> None:
        self.urls = urls

    async def make_backend(self) -> Backend:
        return await dispersed(
            [LocalBackend(self.urls[0], create=True), open_backend(self.urls[1]), open_backend(self.urls[2])]
        )


class TestServersOneDownConformance(TestServersConformance):
    """The same with the S3 place failing every call after its id record was written."""

    racers = 1

    async def make_backend(self) -> Backend:
        s3 = FaultyBackend(open_backend(self.urls[1]))
        b = await dispersed([LocalBackend(self.urls[0], create=True), s3, open_backend(self.urls[2])])
        s3.fail("*", every=1)
        return b


async def test_a_server_killed_before_an_import_then_repair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """S3 dies while the vault is open: the import still commits (2 of 3 places, the write quorum);
    once the server is back, repair fills what it missed and S3 carries the vault with one folder."""
    from servers import running

    server = SeaweedServer(root=tmp_path / "server")
    with running(server):
        s3 = place_on(server, tmp_path, monkeypatch)
        urls = [str(tmp_path / "a"), s3.url, str(tmp_path / "b")]
        body = bytes(range(256)) * (2 * MIB // 256) + b"end"
        async with await sigmavault.create(places=urls, passphrase=PASS, kdf="minimum", chunk_size=MIB) as v:
            await v.put("before.bin", body)
            await v.commit()
            server.kill()
            await v.put("during.bin", body[::-1])
            await v.commit()
            assert any("place 2" in d for d in dispersal.degraded(v))
        server.start()
        async with await sigmavault.open(urls, passphrase=PASS) as v:
            report = await dispersal.repair(v)
            assert report.shards_written > 0 and report.records_copied > 0 and not report.unrecoverable, report
        async with await sigmavault.open([urls[1], urls[2]], passphrase=PASS) as v:
            assert await v.read_bytes("during.bin") == body[::-1]
            assert await v.read_bytes("before.bin") == body
            assert (await v.verify(full=True)).ok
