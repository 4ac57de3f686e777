"""Mount fixtures: a fresh vault per test and mounts that are always unmounted at teardown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mounttools import Mounts


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mounts]:
    m = Mounts(tmp_path)
    try:
        yield m
    finally:
        m.close()
