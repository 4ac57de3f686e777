"""Product code may only use ``secrets``/``os.urandom`` for randomness (CRYPTO.md §7.1)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ["sigmavault", "engine", "actors", "backends", "mount"]
FORBIDDEN_MODULES = {"random", "numpy.random"}


def product_files() -> list[Path]:
    files: list[Path] = []
    for top in PRODUCT:
        base = ROOT / top
        if base.is_symlink():
            continue  # the subpackage symlinks are scanned through their real folders
        files.extend(p for p in base.rglob("*.py") if p.is_file())
    return files


def violations(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name in FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if mod in FORBIDDEN_MODULES or (mod == "numpy" and any(a.name == "random" for a in node.names)):
                found.append(mod)
        elif isinstance(node, ast.Attribute) and node.attr == "random":
            if isinstance(node.value, ast.Name) and node.value.id in {"np", "numpy"}:
                found.append(f"{node.value.id}.random")
    return found


def test_detector_catches_each_form() -> None:
    assert violations("import random")
    assert violations("from random import choice")
    assert violations("import numpy.random")
    assert violations("import numpy as np\nx = np.random.rand(3)")
    assert violations("from numpy import random")
    assert not violations("import secrets\nsecrets.token_bytes(3)")


def test_product_code_uses_no_weak_randomness() -> None:
    files = product_files()
    assert len(files) > 5
    bad = {str(p.relative_to(ROOT)): v for p in files if (v := violations(p.read_text()))}
    assert bad == {}
