"""fsspec's own abstract test suite (copy, get, put, pipe, open) run against a real local vault."""

from __future__ import annotations

import posixpath
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fsspec.tests import abstract
from fstools import make_vault, open_fs

from sigmavault.fs import VaultFileSystem


@pytest.fixture(scope="module")
def empty_vault(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One empty vault made once; each test works on its own copy of the folder."""
    return Path(make_vault(tmp_path_factory.mktemp("template") / "vault"))


class VaultFixtures(abstract.AbstractFixtures):  # type: ignore[misc]
    """A fresh vault per test (a copy of one empty vault); paths are vault paths below ``/``."""

    @pytest.fixture
    def fs(self, tmp_path: Path, empty_vault: Path) -> Iterator[VaultFileSystem]:
        shutil.copytree(empty_vault, tmp_path / "vault")
        fs = open_fs(str(tmp_path / "vault"))
        yield fs
        fs.close()

    @pytest.fixture
    def fs_join(self) -> Callable[..., str]:
        return posixpath.join

    @pytest.fixture
    def fs_path(self) -> str:
        return "/"


class TestVaultCopy(abstract.AbstractCopyTests, VaultFixtures):  # type: ignore[misc]
    pass


class TestVaultGet(abstract.AbstractGetTests, VaultFixtures):  # type: ignore[misc]
    pass


class TestVaultPut(abstract.AbstractPutTests, VaultFixtures):  # type: ignore[misc]
    pass


class TestVaultPipe(abstract.AbstractPipeTests, VaultFixtures):  # type: ignore[misc]
    pass


class TestVaultOpen(abstract.AbstractOpenTests, VaultFixtures):  # type: ignore[misc]
    pass
