"""Helpers for the dispersed-backend tests: fixed shard keys and a configured backend over places."""

from __future__ import annotations

from collections.abc import Sequence

from sigmavault.backends.base import Backend
from sigmavault.backends.dispersed import DispersedBackend
from sigmavault.engine.format.shards import ShardKeys

VAK = bytes(range(32))
VAULT_ID = bytes(range(100, 132))
KEYS = ShardKeys.derive(VAK, VAULT_ID, "blake3-keyed-256")


def place_ids(n: int) -> list[bytes]:
    return [bytes([i + 1]) * 16 for i in range(n)]


async def dispersed(places: Sequence[Backend], needed: int = 2, **kw: object) -> DispersedBackend:
    """A new dispersed backend over ``places`` (empty stores): place records written, keys given."""
    backend = DispersedBackend(places, needed, **kw)  # type: ignore[arg-type]
    await backend.mark_places(KEYS, place_ids(len(places)))
    return backend


async def reopen(places: Sequence[Backend], n: int, needed: int = 2, **kw: object) -> DispersedBackend:
    """The same layout opened again over ``places`` (any order, possibly fewer than n)."""
    backend = DispersedBackend(places, needed, count=n, **kw)  # type: ignore[arg-type]
    await backend.configure(KEYS, place_ids(n))
    return backend
