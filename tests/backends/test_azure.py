"""AzureBackend against a real Azurite on 127.0.0.1: the conformance suite plus Azure-specific faults."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.storage.blob import ContainerSasPermissions, generate_container_sas
from conformance import BackendConformance, oname, payload
from servers import AZURITE_KEY, AzuriteServer, running

from sigmavault.backends.azure import EMULATOR_API_VERSION, AzureBackend, parse_url
from sigmavault.backends.base import Backend
from sigmavault.backends.urls import open_backend
from sigmavault.engine.errors import BackendAuthError, BackendError, BackendUnavailable, NotFound, UsageError

_AZ_VARS = (
    "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_API_VERSION",
)


@pytest.fixture
def az_env(azure_server: AzuriteServer, monkeypatch: pytest.MonkeyPatch) -> AzuriteServer:
    """The credential variables hold exactly the test server's connection string."""
    for var in _AZ_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure_server.connection_string)
    return azure_server


class TestAzureConformance(BackendConformance):
    racers = 50

    @pytest.fixture(autouse=True)
    def _server(self, az_env: AzuriteServer) -> None:
        self.container = az_env.new_container()

    async def make_backend(self) -> Backend:
        return open_backend(f"az://{self.container}/vault")


class TestAzureAccountKeyConformance(BackendConformance):
    """Account name + key from the environment, endpoint from the URL, container root."""

    racers = 50

    @pytest.fixture(autouse=True)
    def _server(self, azure_server: AzuriteServer, monkeypatch: pytest.MonkeyPatch) -> None:
        for var in _AZ_VARS:
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("AZURE_STORAGE_ACCOUNT", azure_server.account)
        monkeypatch.setenv("AZURE_STORAGE_KEY", azure_server.key)
        self.url = f"az://{azure_server.new_container()}?endpoint={azure_server.endpoint}"

    async def make_backend(self) -> Backend:
        return AzureBackend.from_url(self.url)


# -- URLs and configuration -------------------------------------------------------------------------


def test_parse_url() -> None:
    assert parse_url("az://my-container") == ("my-container", "", {})
    assert parse_url("az://abc/a/b/") == ("abc", "a/b", {})
    assert parse_url("az://abc/p?api_version=2025-11-05") == ("abc", "p", {"api_version": "2025-11-05"})
    for bad in ("az://", "az://ab", "az://Abc", "az://a--b", "az://-abc", "az://abc-", "s3://abc", "az://abc/a/../b",
                "az://abc?colour=red", "az://abc#x", "az://" + "a" * 64):
        with pytest.raises(UsageError):
            parse_url(bad)


def test_description_properties_api_version(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in _AZ_VARS:
        monkeypatch.delenv(var, raising=False)
    local = AzureBackend.from_url("az://abc/pre/", endpoint_url="http://127.0.0.1:1/acct", concurrency=9)
    assert local.description == "az://abc/pre?endpoint=http://127.0.0.1:1/acct"
    assert local.properties.concurrency == 9
    assert local._api_version == EMULATOR_API_VERSION
    remote = AzureBackend.from_url("az://abc", account_name="acct", account_key="a2V5")
    assert remote._api_version is None
    assert remote._account_url == "https://acct.blob.core.windows.net"
    assert remote.description == "az://abc?endpoint=https://acct.blob.core.windows.net"
    conn = "DefaultEndpointsProtocol=http;AccountName=devacct;AccountKey=a2V5;BlobEndpoint=http://h:1/devacct;"
    described = AzureBackend.from_url("az://abc", connection_string=conn).description
    assert described == "az://abc?endpoint=http://h:1/devacct" and "a2V5" not in described
    monkeypatch.setenv("AZURE_STORAGE_API_VERSION", "2025-05-05")
    assert AzureBackend.from_url("az://abc", account_name="acct")._api_version == "2025-05-05"
    with pytest.raises(UsageError):
        AzureBackend.from_url("az://abc", connection_string="UseDevelopmentStorage=true", endpoint_url="http://x")


# -- credentials and containers -------------------------------------------------------------------


def test_wrong_key_is_one_auth_error(azure_server: AzuriteServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in _AZ_VARS:
        monkeypatch.delenv(var, raising=False)
    container = azure_server.new_container()
    wrong = "A" + AZURITE_KEY[1:]

    async def main() -> None:
        backend = AzureBackend.from_url(
            f"az://{container}", endpoint_url=azure_server.endpoint, account_name=azure_server.account,
            account_key=wrong,
        )
        try:
            began = time.monotonic()
            for op in (lambda: backend.put_if_absent(oname(1), b"x"), lambda: backend.get(oname(1)),
                       lambda: backend.head(oname(1)), lambda: backend.delete(oname(1))):
                with pytest.raises(BackendAuthError) as info:
                    await op()
                assert "AZURE_STORAGE_KEY" in info.value.message and container in info.value.message
                assert wrong not in info.value.message
            with pytest.raises(BackendAuthError):
                [n async for n in backend.list()]
            assert time.monotonic() - began < 5  # rejected once, not retried with backoff
        finally:
            await backend.aclose()

    asyncio.run(main())


def test_missing_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in _AZ_VARS:
        monkeypatch.delenv(var, raising=False)

    async def main() -> None:
        backend = AzureBackend.from_url("az://abc", endpoint_url="http://127.0.0.1:1/acct")
        with pytest.raises(BackendAuthError, match=r"no Azure credentials.*AZURE_STORAGE_CONNECTION_STRING"):
            await backend.get(oname(1))
        await backend.aclose()

    asyncio.run(main())


def test_sas_token(azure_server: AzuriteServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in _AZ_VARS:
        monkeypatch.delenv(var, raising=False)
    container = azure_server.new_container()
    expiry = datetime.now(UTC) + timedelta(hours=1)
    full = ContainerSasPermissions(read=True, write=True, create=True, list=True, delete=True)
    sas = generate_container_sas(azure_server.account, container, account_key=azure_server.key,
                                 permission=full, expiry=expiry)
    read_only = generate_container_sas(azure_server.account, container, account_key=azure_server.key,
                                       permission=ContainerSasPermissions(read=True), expiry=expiry)

    async def main() -> None:
        monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", "?" + sas)
        backend = AzureBackend.from_url(f"az://{container}", endpoint_url=azure_server.endpoint)
        try:
            assert await backend.put_if_absent(oname(1), b"via sas") is True
            assert await backend.put_if_absent(oname(1), b"again") is False
            assert [n async for n in backend.list()] == [oname(1)]
        finally:
            await backend.aclose()
        reader = AzureBackend.from_url(f"az://{container}", endpoint_url=azure_server.endpoint, sas_token=read_only)
        try:
            assert await reader.get(oname(1)) == b"via sas"
            with pytest.raises(BackendAuthError) as info:
                await reader.put_if_absent(oname(2), b"denied")
            assert read_only not in info.value.message
        finally:
            await reader.aclose()

    asyncio.run(main())


def test_missing_container_is_named(az_env: AzuriteServer) -> None:
    async def main() -> None:
        backend = AzureBackend.from_url("az://no-such-container/x")
        try:
            ops = [
                lambda: backend.put_if_absent(oname(1), b"x"), lambda: backend.get(oname(1)),
                lambda: backend.get(oname(1), 4, 4), lambda: backend.head(oname(1)),
                lambda: backend.delete(oname(1)),
            ]
            for op in ops:
                with pytest.raises(BackendError, match="container 'no-such-container' does not exist") as info:
                    await op()
                assert not isinstance(info.value, NotFound)  # a missing container is not an empty vault
                assert "127.0.0.1" in info.value.message
            with pytest.raises(BackendError, match="no-such-container"):
                [n async for n in backend.list("c/")]
        finally:
            await backend.aclose()

    asyncio.run(main())


def test_prefixes_isolate_and_foreign_blobs_ignored(az_env: AzuriteServer) -> None:
    container = az_env.new_container()
    from azure.storage.blob import ContainerClient

    with ContainerClient.from_connection_string(az_env.connection_string, container) as raw:
        raw.upload_blob("one/not-an-object", b"junk")

    async def main() -> None:
        one, two = AzureBackend.from_url(f"az://{container}/one"), AzureBackend.from_url(f"az://{container}/two")
        try:
            assert await one.put_if_absent(oname(1), b"in one") is True
            assert await two.put_if_absent(oname(1), b"in two") is True
            assert await one.get(oname(1)) == b"in one"
            assert [n async for n in one.list()] == [oname(1)]
            assert [n async for n in two.list("o/")] == [oname(1)]
        finally:
            await one.aclose()
            await two.aclose()

    asyncio.run(main())
    with ContainerClient.from_connection_string(az_env.connection_string, container) as raw:
        assert sorted(raw.list_blob_names()) == sorted(["one/not-an-object", "one/" + oname(1), "two/" + oname(1)])


def test_closed_backend_refuses(az_env: AzuriteServer) -> None:
    async def main() -> None:
        backend = AzureBackend.from_url(f"az://{az_env.new_container()}")
        await backend.put_if_absent(oname(1), b"x")
        await backend.aclose()
        with pytest.raises(UsageError, match="closed"):
            await backend.get(oname(1))

    asyncio.run(main())


def test_twenty_racing_writers_one_winner(az_env: AzuriteServer) -> None:
    """20 separate clients (own connection pools) race to create one commit name, 5 rounds."""
    container = az_env.new_container()

    async def main() -> None:
        clients = [AzureBackend.from_url(f"az://{container}/v") for _ in range(20)]
        try:
            for generation in range(5):
                name = f"c/{generation:016x}"
                bodies = [payload(f"{generation} {i}", 1100) for i in range(20)]
                results = await asyncio.wait_for(
                    asyncio.gather(*(c.put_if_absent(name, body) for c, body in zip(clients, bodies))), 60
                )
                assert results.count(True) == 1
                assert await clients[0].get(name) == bodies[results.index(True)]
        finally:
            for c in clients:
                await c.aclose()

    asyncio.run(main())


# -- a server that dies ---------------------------------------------------------------------------


@pytest.fixture
def own_azurite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AzuriteServer]:
    """An Azurite of this test's own, free to kill and restart."""
    server = AzuriteServer(root=tmp_path / "azurite")
    with running(server):
        for var in _AZ_VARS:
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", server.connection_string)
        yield server


def test_killed_server_unavailable_then_recovers(own_azurite: AzuriteServer) -> None:
    container = own_azurite.new_container()

    async def main() -> None:
        backend = AzureBackend.from_url(f"az://{container}/v", connect_timeout=2, read_timeout=10)
        try:
            assert await backend.put_if_absent(oname("before"), payload("before", 5000)) is True
            own_azurite.kill()
            began = time.monotonic()
            for op in (lambda: backend.get(oname("before")), lambda: backend.put_if_absent(oname(2), b"x"),
                       lambda: backend.head(oname(2)), lambda: backend.delete(oname(2))):
                with pytest.raises(BackendUnavailable) as info:
                    await asyncio.wait_for(op(), 30)
                assert "127.0.0.1" in info.value.message
            with pytest.raises(BackendUnavailable):
                await asyncio.wait_for(anext(backend.list()), 30)
            assert time.monotonic() - began < 30
            own_azurite.start()
            # Azurite saves its metadata every ~5 s: a crash right after creating the container
            # forgets it (and the blob), unlike a real store. Re-create it if so.
            own_azurite.create_container(container)
            # the same backend object, with its pool of now-dead connections, works again
            assert await asyncio.wait_for(backend.put_if_absent(oname("after"), b"after"), 30) is True
            assert await backend.get(oname("after")) == b"after"
            assert oname("after") in [n async for n in backend.list()]
            own_azurite.restart()  # a polite stop (SIGTERM) saves everything
            assert await asyncio.wait_for(backend.get(oname("after")), 30) == b"after"
        finally:
            await backend.aclose()

    asyncio.run(main())
