"""Key management on a live vault: write keystore generation + 1 and retire the older ones (CRYPTO.md §1.4).

The pure keystore operations (:mod:`.keystore`) build the next keystore; this module stores it
and nothing else. Every operation takes the backend and the :class:`~.keystore.Unlocked` state of
an opened vault and:

1. checks that the unlocked keystore is still the newest ``k/`` object (else ConcurrencyError:
   another client changed the keys; reopen and retry);
2. runs the keystore operation in a thread (a new passphrase slot costs one Argon2id run);
3. stores ``k/{generation+1:016x}`` create-only (``put_if_absent``; losing that race is a
   ConcurrencyError and nothing was changed), and records that generation in this device's
   local state right away, so an old keystore served later (old credentials) is a RollbackError;
4. deletes every older ``k/`` object. A failure here leaves stale copies that still open with
   the old credentials; it is reported in :attr:`Changed.stale` and retried on the next change.

No data object is re-encrypted: slots wrap only the KSK. The device secret of a two-factor slot
lives in ``config_dir()/device-secret`` (mode 0600, never uploaded; one per device and reused by
every vault of this user). Revocation (a new KSK and epoch) is not done here.
"""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass
from pathlib import Path

from .. import config
from ..backends.base import Backend
from . import devstate, keystore, localstate
from .credentials import Passphrase
from .errors import AlreadyExists, BackendError, ConcurrencyError, IntegrityError, NotFound, UsageError
from .keystore import SlotInfo, Unlocked, Written, keystore_name
from .secret import Secret
from .slots import INTERACTIVE, KdfProfile


@dataclass(frozen=True, slots=True)
class Changed:
    """The result of one key operation: the new unlocked state, the slot it touched, stale copies left."""

    vault: Unlocked
    slot: SlotInfo | None
    stale: int = 0

    @property
    def generation(self) -> int:
        return self.vault.generation


def device_secret_path() -> Path:
    """Where this device keeps the second factor of ``argon2id+device`` slots."""
    return config.config_dir() / "device-secret"


def load_device_secret(path: Path | None = None) -> Secret | None:
    """This device's secret, or None if it has none. LocalIOError if the file is unsafe or malformed."""
    path = path or device_secret_path()
    if not path.exists():
        return None
    return localstate.read_device_secret(path)


def _device_secret(path: Path) -> Secret:
    try:
        return localstate.create_device_secret(path)
    except AlreadyExists:
        return localstate.read_device_secret(path)


def find_slot(u: Unlocked, text: str) -> bytes:
    """The id of the slot whose hex id starts with ``text`` (at least 4 hex digits). UsageError otherwise."""
    want = text.strip().lower()
    if len(want) < 4 or any(c not in "0123456789abcdef" for c in want):
        raise UsageError("a key slot is named by its hex id (at least 4 digits; see `sigmavault key list`)")
    hits = [s.id for s in u.slots if s.id.hex().startswith(want)]
    if not hits:
        raise NotFound(f"no key slot {want!r} (see `sigmavault key list`)")
    if len(hits) > 1:
        raise UsageError(f"key slot {want!r} is ambiguous: give more digits")
    return hits[0]


async def _store(backend: Backend, u: Unlocked, written: Written, slot: bytes | None) -> Changed:
    if not await backend.put_if_absent(written.name, written.data):
        raise ConcurrencyError("another client changed the keys of this vault at the same time; nothing was changed")
    # pin the new generation at once: a provider restoring the old k/ objects is then a rollback
    await asyncio.to_thread(devstate.record_keystore, backend, written.vault)
    stale = 0
    for name in sorted([n async for n in backend.list("k/")]):
        if name < written.name:
            try:
                await backend.delete(name)
            except BackendError:
                stale += 1  # still opens with the old credentials: the next key change retries
    info = None
    if slot is not None:
        info = next(i for i in written.vault.list_slots() if hmac.compare_digest(i.id, slot))
    return Changed(written.vault, info, stale)


async def _check_newest(backend: Backend, u: Unlocked) -> None:
    names = sorted([n async for n in backend.list("k/")])
    if not names or names[-1] != keystore_name(u.generation):
        raise ConcurrencyError("the keys of this vault changed since it was opened: open it again and retry")


def _new_slot(before: Unlocked, after: Unlocked) -> bytes:
    old = {s.id for s in before.slots}
    return next(s.id for s in after.slots if s.id not in old)


async def change_passphrase(backend: Backend, u: Unlocked, new: Passphrase, *, slot_id: bytes | None = None,
                            device_secret: Secret | None = None, profile: KdfProfile | None = None) -> Changed:
    """passwd: re-wrap a passphrase slot (default: the one used to unlock) under ``new``."""
    await _check_newest(backend, u)
    slot = slot_id or u.opened_slot
    if not slot:
        raise UsageError("name the passphrase slot to change with --slot (see `sigmavault key list`)")
    if device_secret is None and any(s.id == slot and s.type == "argon2id+device" for s in u.slots):
        device_secret = load_device_secret()
    written = await asyncio.to_thread(keystore.change_passphrase, u, new, slot_id=slot,
                                      device_secret=device_secret, profile=profile)
    return await _store(backend, u, written, slot)


async def add_passphrase(backend: Backend, u: Unlocked, passphrase: Passphrase, label: str,
                         profile: KdfProfile = INTERACTIVE) -> Changed:
    await _check_newest(backend, u)
    written = await asyncio.to_thread(keystore.add_passphrase, u, passphrase, label, profile)
    return await _store(backend, u, written, _new_slot(u, written.vault))


async def add_two_factor(backend: Backend, u: Unlocked, passphrase: Passphrase, label: str,
                         profile: KdfProfile = INTERACTIVE, device_path: Path | None = None) -> Changed:
    """Add an ``argon2id+device`` slot bound to this device's secret (created on first use, mode 0600)."""
    await _check_newest(backend, u)
    device = await asyncio.to_thread(_device_secret, device_path or device_secret_path())
    written, _ = await asyncio.to_thread(keystore.add_two_factor, u, passphrase, label, device, profile)
    return await _store(backend, u, written, _new_slot(u, written.vault))


async def add_recipient(backend: Backend, u: Unlocked, recipient: str, label: str) -> Changed:
    """Give the holder of an ``age1pq1…`` identity access. UsageError for a malformed recipient."""
    await _check_newest(backend, u)
    try:
        written = keystore.add_recipient(u, recipient, label)
    except IntegrityError as exc:  # from the bech32 and key checks: the user's input, not the vault
        raise UsageError("not a valid age1pq1… recipient") from exc
    return await _store(backend, u, written, _new_slot(u, written.vault))


async def remove_slot(backend: Backend, u: Unlocked, slot_id: bytes) -> Changed:
    await _check_newest(backend, u)
    written = keystore.remove_slot(u, slot_id)
    return await _store(backend, u, written, None)
