"""Shared fixtures: the known-answer vectors and the shared design folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def kat() -> dict[str, Any]:
    path = SHARED / "crypto-kat.json"
    if not path.exists():  # a copy is kept in the repo so a clone without ../shared still tests
        path = ROOT / "tests" / "data" / "crypto-kat.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]
