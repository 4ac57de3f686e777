"""open_backend: which backend each vault URL opens, and the errors for bad URLs."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from conformance import cname

from sigmavault.backends.local import LocalBackend
from sigmavault.backends.memory import MemoryBackend, MemoryStores
from sigmavault.backends.urls import open_backend
from sigmavault.engine.errors import UsageError


def test_paths_and_file_urls_open_local(tmp_path: Path) -> None:
    for url in (str(tmp_path), f"file://{tmp_path}", f"file://localhost{tmp_path}"):
        backend = open_backend(url)
        assert isinstance(backend, LocalBackend) and backend.root == tmp_path
    spaced = tmp_path / "my vault"
    backend = open_backend(f"file://{tmp_path}/my%20vault")
    assert isinstance(backend, LocalBackend) and backend.root == spaced
    relative = open_backend("some/relative/dir")
    assert isinstance(relative, LocalBackend) and relative.root == Path.cwd() / "some/relative/dir"
    home = open_backend("~/vault")
    assert isinstance(home, LocalBackend) and home.root == Path.home() / "vault"


def test_create_option_reaches_the_local_backend(tmp_path: Path) -> None:
    root = tmp_path / "new" / "vault"
    asyncio.run(open_backend(str(root), create=True).put_if_absent(cname(0), b"root"))
    assert (root / "c" / f"{0:016x}").read_bytes() == b"root"
    with pytest.raises(UsageError, match="only the 'create' option"):
        open_backend(str(root), region="eu")


def test_mem_urls() -> None:
    stores = MemoryStores()
    backend = open_backend("mem://demo", stores=stores)
    assert isinstance(backend, MemoryBackend) and backend.description == "mem://demo"
    assert stores.names() == ["demo"]


@pytest.mark.parametrize("url", ["gs://bucket", "http://example.com/v", "ftp://host/x", "S4://b"])
def test_unknown_scheme(url: str) -> None:
    scheme = url.split("://")[0].lower()
    with pytest.raises(UsageError) as info:
        open_backend(url)
    assert str(info.value) == (f"unknown vault URL scheme '{scheme}': use a path, file://, mem://, s3:// or az://")


@pytest.mark.parametrize("url", ["", "   ", "file://otherhost/srv/v", "file://"])
def test_malformed_urls(url: str) -> None:
    with pytest.raises(UsageError):
        open_backend(url)


def test_local_and_memory_urls_do_not_import_cloud_sdks(tmp_path: Path) -> None:
    import subprocess

    code = (
        "import sys; from sigmavault.backends.urls import open_backend; "
        f"open_backend({str(tmp_path)!r}); open_backend('mem://x'); "
        "print([m for m in ('aiobotocore', 'botocore', 'azure', 'sigmavault.backends.s3') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cloud_schemes_dispatch_to_their_modules() -> None:
    for scheme, module in (("s3", "s3"), ("az", "azure")):
        try:
            backend = open_backend(f"{scheme}://bucket/prefix")
        except UsageError as exc:
            # the module or its SDK is not installed yet: the error says so instead of crashing
            assert f"{scheme}:// vaults need" in str(exc) or module in str(exc)
        else:
            assert type(backend).__module__ == f"sigmavault.backends.{module}"
            asyncio.run(backend.aclose())
