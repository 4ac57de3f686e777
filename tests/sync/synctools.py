"""Helpers for the blocking facade's tests: a fast SyncVault (minimum KDF, 1 MiB chunks), threads left."""

from __future__ import annotations

import threading
from pathlib import Path

import sigmavault.sync
from sigmavault.sync import SyncVault

PASS = "correct horse battery staple"
MIB = 1 << 20


def new_sync_vault(url: str | Path, *, chunk_size: int = MIB) -> SyncVault:
    return sigmavault.sync.create(str(url), passphrase=PASS, kdf="minimum", chunk_size=chunk_size)


def reopen_sync(url: str | Path) -> SyncVault:
    return sigmavault.sync.open(str(url), passphrase=PASS)


def blob(n: int, seed: int = 0) -> bytes:
    """``n`` bytes that differ at every offset (a misplaced read shows), from a cheap pattern."""
    pattern = bytes((i * 131 + seed * 7 + (i >> 8) * 17) & 0xFF for i in range(65521))  # a prime period
    return (pattern * (n // len(pattern) + 1))[:n]


def threads() -> set[threading.Thread]:
    return set(threading.enumerate())
