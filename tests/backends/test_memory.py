"""The memory backend: the conformance suite, plus shared named stores behind mem:// URLs."""

from __future__ import annotations

import asyncio

import pytest
from conformance import BackendConformance, oname

from sigmavault.backends.base import Backend
from sigmavault.backends.memory import STORES, MemoryBackend, MemoryStores
from sigmavault.backends.urls import open_backend
from sigmavault.engine.errors import UsageError


class TestMemoryConformance(BackendConformance):
    async def make_backend(self) -> Backend:
        return MemoryBackend()


class TestNamedStoreConformance(BackendConformance):
    @pytest.fixture(autouse=True)
    def _stores(self) -> None:
        self.stores = MemoryStores()

    async def make_backend(self) -> Backend:
        return open_backend("mem://conformance", stores=self.stores)


def test_not_persistent() -> None:
    assert MemoryBackend().properties.persistent is False


def test_same_name_is_same_store() -> None:
    stores = MemoryStores()

    async def main() -> None:
        first = open_backend("mem://shared", stores=stores)
        second = open_backend("mem://shared", stores=stores)
        other = open_backend("mem://other", stores=stores)
        assert await first.put_if_absent(oname(1), b"one") is True
        assert await second.put_if_absent(oname(1), b"two") is False
        assert await second.get(oname(1)) == b"one"
        await first.aclose()  # closing does not drop the objects
        assert await open_backend("mem://shared", stores=stores).get(oname(1)) == b"one"
        assert [n async for n in other.list()] == []
        assert first.description == "mem://shared"

    asyncio.run(main())
    assert stores.names() == ["other", "shared"]
    stores.drop("shared")
    stores.drop("never")
    assert stores.names() == ["other"]


def test_separate_store_objects_are_isolated() -> None:
    async def main() -> None:
        await open_backend("mem://iso", stores=MemoryStores()).put_if_absent(oname(2), b"x")
        assert [n async for n in open_backend("mem://iso", stores=MemoryStores()).list()] == []

    asyncio.run(main())


def test_default_stores_are_process_wide() -> None:
    async def main() -> None:
        await open_backend("mem://test-default-stores").put_if_absent(oname(3), b"x")
        assert await STORES.open("test-default-stores").get(oname(3)) == b"x"

    try:
        asyncio.run(main())
    finally:
        STORES.drop("test-default-stores")


def test_unnamed_or_optioned_mem_url_rejected() -> None:
    with pytest.raises(UsageError):
        open_backend("mem://")
    with pytest.raises(UsageError):
        open_backend("mem://x", stores=MemoryStores(), create=True)


def test_import_has_no_registry_side_effects() -> None:
    import subprocess
    import sys

    code = "import sigmavault.backends.memory as m; print(m.STORES.names())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
