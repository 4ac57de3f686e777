"""Shared fixtures: the known-answer vectors and the shared design folder."""

from __future__ import annotations

import asyncio
import inspect
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


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own local state, cache and config folders (never the user's)."""
    home = tmp_path_factory.mktemp("svhome")
    monkeypatch.setenv("SIGMAVAULT_HOME", str(home))
    monkeypatch.delenv("SIGMAVAULT_VAULT", raising=False)
    monkeypatch.delenv("SIGMAVAULT_PASSPHRASE", raising=False)
    return home


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests in a fresh event loop (no plugin needed)."""
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        names = pyfuncitem._fixtureinfo.argnames
        asyncio.run(pyfuncitem.obj(**{n: pyfuncitem.funcargs[n] for n in names}))
        return True
    return None
