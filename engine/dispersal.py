"""Dispersed vaults in the engine: the places' backends, their layout and the shard keys (issue 12).

The word *stores* here means the object stores a dispersed vault spreads over (the user's
"places"); :class:`~.local.settings.Places` is this device's folders, unrelated. The layout (k of
n, and the random id of each store) lives in the keyring's authenticated parameters
(:class:`~.keys.keyring.Dispersal`); each store keeps its own id in a record tagged with a key from
the vault-level key, so the stores may be named in any order. The backend receives only the shard
keys (:class:`~.format.shards.ShardKeys`), never an epoch key.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from ..backends.base import layers
from ..backends.dispersed import DispersedBackend
from ..backends.dispersed.repair import PlaceStatus, Progress, RepairReport
from ..backends.dispersed.repair import repair as repair_places
from ..backends.dispersed.repair import status as places_status
from ..backends.metered import MeteredBackend
from ..backends.retrying import RetryingBackend
from ..backends.urls import open_backend
from .errors import UsageError
from .format.shards import PLACE_ID, ShardKeys, tolerated
from .keys.keyring import Dispersal, Params
from .keys.keystore import Unlocked
from .vault import Vault


def urls_of(url: str | Sequence[str]) -> list[str]:
    """One URL or several: the list. Several URLs must differ."""
    urls = [url] if isinstance(url, str) else list(url)
    if not urls:
        raise UsageError("no vault URL given")
    if len(set(urls)) != len(urls):
        raise UsageError("a place was named twice: name each place of a dispersed vault once")
    return urls


def layout(stores: int, needed: int | None) -> Dispersal:
    """The layout of a new vault over ``stores`` places needing ``needed`` (default n−1): refuses a
    layout that tolerates losing no place (f = min(n−k, ⌈n/2⌉−1) = 0)."""
    k = stores - 1 if needed is None else needed
    if not 1 <= k <= stores:
        raise UsageError(f"--needed must be from 1 to the number of places ({stores}); got {k}")
    if stores > 16:
        raise UsageError("a dispersed vault spreads over at most 16 places")
    if tolerated(k, stores) <= 0:
        raise UsageError(
            f"{k} of {stores} places tolerates losing no place (data needs {k}, commits a majority): "
            "name more places or lower --needed"
        )
    return Dispersal(k, tuple(secrets.token_bytes(PLACE_ID) for _ in range(stores)))


def connect(
    urls: Sequence[str], opts: dict[str, Any], *, create: bool = False, write_quorum: int | None = None
) -> DispersedBackend:
    """A dispersed backend over ``urls`` (each retried and metered like a single-place vault's)."""
    stores = []
    for url in urls:
        local = "://" not in url or url.startswith("file://")
        extra: dict[str, Any] = {"create": True, **opts} if create and local else dict(opts)
        stores.append(RetryingBackend(MeteredBackend(open_backend(url, **extra))))
    return DispersedBackend(stores, write_quorum=write_quorum)


def shard_keys(u: Unlocked) -> ShardKeys:
    return ShardKeys.derive(u.keyring.vak.reveal(), u.vault_id, u.params.prf)


async def mark(backend: DispersedBackend, u: Unlocked) -> None:
    """At create: each store keeps its id record; the backend learns keys and layout."""
    d = _dispersal(u.params)
    await backend.mark_places(shard_keys(u), d.places)
    await backend.configure(shard_keys(u), d.places, d.needed)


async def configure(backend: DispersedBackend, u: Unlocked) -> None:
    """After unlock: the backend learns the keys and the layout from the vault's parameters."""
    d = _dispersal(u.params)
    if len(backend.given) > len(d.places):
        raise UsageError(f"{len(backend.given)} places given, but this vault spreads over {len(d.places)}")
    await backend.configure(shard_keys(u), d.places, d.needed)


def _dispersal(params: Params) -> Dispersal:
    if params.dispersal is None:
        raise UsageError("this vault is not dispersed: name its one place")
    return params.dispersal


def backend_of(vault: Vault) -> DispersedBackend | None:
    """The dispersed backend under an open vault, or None for a single-place vault."""
    found = [b for b in layers(vault.backend) if isinstance(b, DispersedBackend)]
    return found[0] if found else None


def degraded(vault: Vault) -> list[str]:
    """The places that failed, were corrupt or missing during this session (empty: none, or not dispersed)."""
    b = backend_of(vault)
    return [] if b is None else b.degraded()


async def repair(vault: Vault, on_progress: Progress | None = None) -> RepairReport:
    """``sigmavault repair``: every missing or corrupt shard and commit/keystore replica, rebuilt.
    A repair that changed anything is recorded in the chain (``audit`` lists it) once every place
    is reachable again."""
    report = await repair_places(_need(vault), on_progress)
    if not report.clean and not report.unreachable and not vault.pending:
        await vault._record({"repair": {"objects": report.objects, "shards_written": report.shards_written,
                                        "shards_replaced": report.shards_replaced,
                                        "records_copied": report.records_copied,
                                        "copies_removed": report.copies_removed}})
    return report


async def status(vault: Vault) -> list[PlaceStatus]:
    """``sigmavault places``: each place's health and holdings."""
    return await places_status(_need(vault))


def _need(vault: Vault) -> DispersedBackend:
    b = backend_of(vault)
    if b is None:
        raise UsageError("this vault is not dispersed (it has one place)")
    return b
