"""Helpers for the fsspec tests: a real local vault in a tmp folder (1 MiB chunks) and a filesystem on it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import fsspec

import sigmavault
from sigmavault.fs import VaultFileSystem

PASS = "correct horse battery staple"
MIB = 1 << 20


def make_vault(folder: Path) -> str:
    """Create a vault (minimum KDF, 1 MiB chunks) at ``folder`` and return its URL."""
    async def create() -> None:
        vault = await sigmavault.create(str(folder), passphrase=PASS, kdf="minimum", chunk_size=MIB)
        await vault.aclose()

    asyncio.run(create())
    fsspec.register_implementation("sigmavault", VaultFileSystem, clobber=True)
    return str(folder)


def open_fs(url: str, **kwargs: object) -> VaultFileSystem:
    return VaultFileSystem(vault=url, passphrase=PASS, skip_instance_cache=True, **kwargs)


def other_client_sees(url: str, path: str) -> bool:
    """Whether a second, fresh ``sigmavault.open`` of the vault finds ``path``."""
    async def look() -> bool:
        async with await sigmavault.open(url, passphrase=PASS) as vault:
            try:
                await vault.stat(path)
            except sigmavault.NotFound:
                return False
            return True

    return asyncio.run(look())
