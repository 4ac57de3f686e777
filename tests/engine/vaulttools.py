"""Helpers for engine tests: make a vault quickly (minimum KDF, small chunks), inspect its objects."""

from __future__ import annotations

from pathlib import Path

import sigmavault

PASS = "correct horse battery staple"
MIB = 1 << 20


async def new_vault(url: str | Path, *, chunk_size: int = MIB) -> sigmavault.Vault:
    return await sigmavault.create(str(url), passphrase=PASS, kdf="minimum", chunk_size=chunk_size)


async def reopen(url: str | Path) -> sigmavault.Vault:
    return await sigmavault.open(str(url), passphrase=PASS)


def object_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "o").rglob("*") if p.is_file() and not p.name.startswith("."))
