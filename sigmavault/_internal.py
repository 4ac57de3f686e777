"""The one internal facade of the command line: engine names the CLI needs that are not library API.

The CLI (``sigmavault/cli/``) uses the public package (:func:`sigmavault.open`, ``create``,
:class:`~sigmavault.Vault`, its ``keys`` facet, the error classes) and, for what a command line
needs beyond a library — credentials typed or read from files, the unlock agent's key handling,
progress of whole-tree transfers, this device's state folders — this module, never engine
modules directly. Nothing here is a stable API for other callers: it may change with the CLI.

The functions below bind the settings of :mod:`sigmavault.config` (this device's folders) to
the engine calls that take them as arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from . import config
from .backends.urls import open_backend
from .engine import opening
from .engine.anomaly import DEFAULTS as GUARD_DEFAULTS
from .engine.anomaly import GuardState, protected_in, run_counts, run_meta, score
from .engine.catalog.tree import show, split_path
from .engine.content.pipeline import Progress
from .engine.dispersal import degraded
from .engine.dispersal import repair as repair_places
from .engine.dispersal import status as places_status
from .engine.errors import LockedError, ObjectMissing, first_error
from .engine.format.canonical import b64u, unb64u
from .engine.format.shards import tolerated
from .engine.keys import harden
from .engine.keys.credentials import Credential, DeviceKey, Passphrase, Pin, RecoveryCode, TwoFactor, XwingKey
from .engine.keys.harden import secret_env
from .engine.keys.keystore import SlotInfo
from .engine.keys.secret import Secret
from .engine.keys.slots import PROFILES, passphrase_from_file
from .engine.keys.writers import Writer, WriterCredential, normalize_prefix
from .engine.keys.xwing import parse_identity
from .engine.local import devstate
from .engine.rekeying import Rekeyed
from .engine.repo.destroy import DestroyProgress, DestroyReport, destroy
from .engine.repo.keymgmt import Changed, load_device_key, load_device_secret
from .engine.rewriting import Rewritten
from .engine.transfer.exporter import ExportOptions, ExportReport, export_tree
from .engine.transfer.importer import ImportReport, Item, import_items, scan
from .engine.vault import Vault

__all__ = [
    "GUARD_DEFAULTS", "PROFILES", "Changed", "Credential", "DeviceKey", "ExportOptions", "ExportReport", "GuardState",
    "ImportReport", "Item", "LockedError", "ObjectMissing", "Passphrase", "Pin", "Progress", "RecoveryCode", "Rekeyed",
    "Rewritten", "Secret", "SlotInfo", "TwoFactor", "Writer", "WriterCredential", "XwingKey", "b64u", "degraded",
    "destroy_vault", "device_key", "device_recipient", "device_secret", "export_tree", "first_error", "forget_device",
    "harden", "has_objects", "has_vault", "import_items", "normalize_prefix", "parse_identity", "passphrase_from_file",
    "pinned", "places_status", "protected_in", "repair_places", "run_counts", "run_meta", "scan", "score", "secret_env",
    "show", "split_path", "state_folder", "tolerated", "unb64u", "vault_state_folder",
]


async def has_vault(url: str) -> bool:
    """Whether ``url`` holds a keystore (a vault): a cheap listing, before any prompt."""
    return await _holds(url, "k/")


async def has_objects(url: str) -> bool:
    """Whether ``url`` holds anything at all (a new place must start empty)."""
    return await _holds(url, "")


async def _holds(url: str, prefix: str) -> bool:
    backend = open_backend(url)
    try:
        async for _ in backend.list(prefix):
            return True
        return False
    finally:
        await backend.aclose()


async def destroy_vault(url: str | list[str], progress: DestroyProgress | None = None) -> DestroyReport:
    """Crypto-shred the vault at ``url``, or a dispersed vault at its places (every place's keystores
    first, then every object); resumable, needs no key."""
    async with contextlib.AsyncExitStack() as opened:
        backends = []
        for u in [url] if isinstance(url, str) else url:
            backends.append(backend := open_backend(u))
            opened.push_async_callback(backend.aclose)
        return await destroy(backends, progress)


async def pinned(url: str | list[str]) -> Pin | None:
    """The pin this device keeps for ``url`` or a dispersed vault's places (unverified), or None."""
    return await opening.pinned(url, config.places())


async def state_folder(url: str | list[str]) -> Path:
    """This device's state folder for the vault at ``url`` (a dispersed one's: by the vault id its
    places' keystore holds)."""
    return await opening.state_folder(url, config.places())


def vault_state_folder(vault: Vault) -> Path:
    """This device's state folder for an open vault (a dispersed one's too)."""
    return devstate.folder_for(config.places(), vault.backend)


async def forget_device(url: str | list[str]) -> tuple[Path, list[Path]]:
    """Delete this device's state for ``url`` (or a dispersed vault's places): its folder, and the
    folders removed (maybe none)."""
    folder = await state_folder(url)
    return folder, await asyncio.to_thread(devstate.forget, folder)


def device_secret() -> Secret | None:
    """This device's second factor, or None if it has none. LocalIOError if the file is unsafe."""
    return load_device_secret(config.places().device_secret)


def device_key() -> DeviceKey | None:
    """This device's key for ``xwing`` device slots, or None if it has none. LocalIOError if unsafe."""
    return load_device_key(config.places().device_key)


async def device_recipient(url: str | list[str]) -> str:
    """This device's ``age1pq1…`` key for the vault at ``url`` or over several places (created on
    first use; no unlock)."""
    return await opening.device_recipient(url, config.places())
