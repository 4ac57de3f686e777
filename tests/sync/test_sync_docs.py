"""docs/sync.md's example runs as printed (a real vault in a temporary folder)."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "sync.md"


def test_the_documented_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    before = set(threading.enumerate())
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert code is not None
    exec(compile(code.group(1), str(DOC), "exec"), {"__name__": "docs_sync"})
    out = capsys.readouterr().out
    assert "['inside.txt'] b'zipped'" in out and "not found: /missing" in out
    assert set(threading.enumerate()) <= before
