"""Retention locks for a whole vault (``create --lock-days N``; issue 13, "Immutability").

The lock lives in the vault's authenticated parameters (``Params.lock``), so every client of the
vault writes every object under it, and nobody can quietly turn it off (the provider cannot edit
the keyring). This module hands it to the stores: each place of the vault (one, or each place of a
dispersed vault) must be a :class:`~..backends.base.Lockable` store — S3 with Object Lock, Azure
with version-level immutability. At ``create`` a place that cannot lock is a UsageError and a
bucket or container without the feature a BackendError saying what to turn on; at ``open`` a
place that cannot lock (a local copy of the vault, say) only gets a notice: reading needs no lock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from ..backends.base import Backend, Lockable, Retention, RetentionMode, ensure_bucket, lockable
from ..backends.dispersed import DispersedBackend
from .errors import UsageError
from .keys.keyring import Lock


def retention(lock: Lock | None) -> Retention | None:
    return None if lock is None else Retention(lock.days, cast(RetentionMode, lock.mode))  # both checked valid


def _stores(backend: Backend) -> list[tuple[Backend, Lockable | None]]:
    places = [p.backend for p in backend.given] if isinstance(backend, DispersedBackend) else [backend]
    return [(b, lockable(b)) for b in places]


async def prepare(backend: Backend, lock: Lock, create_bucket: bool) -> None:
    """At ``create``: lock every place, make missing buckets with the lock on, and check that each
    bucket or container can lock. UsageError for a place that cannot lock at all."""
    r = retention(lock)
    assert r is not None
    for place, store in _stores(backend):
        if store is None:
            raise UsageError(f"{place.description} cannot lock objects: --lock-days needs S3 (with Object Lock) "
                             "or Azure Blob (with version-level immutability) for every place")
        store.set_retention(r)
        if create_bucket:
            await ensure_bucket(place)
        await store.check_retention()


def apply(backend: Backend, lock: Lock | None, on_notice: Callable[[str], None] | None) -> None:
    """At ``open``: every place that can lock writes under the vault's lock from now on."""
    r = retention(lock)
    if r is None:
        return
    for place, store in _stores(backend):
        if store is not None:
            store.set_retention(r)
        elif on_notice is not None:
            on_notice(f"{place.description} cannot lock objects: what this session writes there is not "
                      f"protected by the vault's {r.days}-day lock")
