"""Key management on a live vault: write keystore generation + 1 and retire the older ones (CRYPTO.md §1.4).

:class:`Keys` is the facet an open vault hands out as ``vault.keys`` (the ``key …`` commands use
it): what the keystore holds (slots, parameters, generations) and the changes to it. The pure
keystore operations (:mod:`..keys.keystore`) build the next keystore; this module stores it and
nothing else. Every change:

1. checks that the unlocked keystore is still the newest ``k/`` object (else ConcurrencyError:
   another client changed the keys; reopen and retry);
2. runs the keystore operation in a thread (a new passphrase slot costs one Argon2id run);
3. stores ``k/{generation+1:016x}`` create-only (``put_if_absent``; losing that race is a
   ConcurrencyError and nothing was changed), and records that generation in this device's
   local state right away, so an old keystore served later (old credentials) is a RollbackError;
4. deletes every older ``k/`` object. A failure here leaves stale copies that still open with
   the old credentials; it is reported in :attr:`Changed.stale` and retried on the next change.

No data object is re-encrypted: slots wrap only the KSK. The device secret of a two-factor slot
lives at ``Places.device_secret`` (mode 0600, never uploaded; one per device and reused by every
vault of this user); its path is handed in, never looked up here. A rekey (a new KSK and epoch,
:mod:`..keys.rotate`) writes its keystores here too (:meth:`Keys.rekey`, :meth:`Keys.retire`); the
protocol around them is :mod:`..rekeying`'s.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from ...backends.base import Backend
from ..errors import AlreadyExists, BackendError, ConcurrencyError, IntegrityError, NotFound, UsageError
from ..format.canonical import b64u
from ..keys import keystore, rotate, xwing
from ..keys.credentials import Credential, DeviceKey, Passphrase
from ..keys.keyring import Params
from ..keys.keystore import SlotInfo, Unlocked, Written, keystore_name
from ..keys.secret import Secret
from ..keys.slots import INTERACTIVE, PROFILES, KdfProfile
from ..keys.writers import Writer, WriterCredential
from ..local import devstate, localstate


async def _nothing(_u: Unlocked, _what: dict[str, str]) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Changed:
    """The result of one key operation: the new unlocked state, the slot it touched, stale copies left."""

    vault: Unlocked
    slot: SlotInfo | None
    stale: int = 0

    @property
    def generation(self) -> int:
        return self.vault.generation


def load_device_secret(path: Path) -> Secret | None:
    """This device's secret, or None if it has none. LocalIOError if the file is unsafe or malformed."""
    if not path.exists():
        return None
    return localstate.read_device_secret(path)


def load_device_key(path: Path) -> DeviceKey | None:
    """This device's key for ``xwing`` device slots, or None if it has none. LocalIOError if unsafe."""
    if not path.exists():
        return None
    return DeviceKey(localstate.read_device_secret(path, "device key"))


def device_key(path: Path) -> DeviceKey:
    """This device's key, created (mode 0600) on first use."""
    try:
        return DeviceKey(localstate.create_device_secret(path, "device key"))
    except AlreadyExists:
        return DeviceKey(localstate.read_device_secret(path, "device key"))


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


async def _store(backend: Backend, folder: Path, written: Written, slot: bytes | None) -> Changed:
    if not await backend.put_if_absent(written.name, written.data):
        raise ConcurrencyError("another client changed the keys of this vault at the same time; nothing was changed")
    # pin the new generation at once: a provider restoring the old k/ objects is then a rollback
    await asyncio.to_thread(devstate.record_keystore, folder, written.vault)
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


def _passphrase(p: Passphrase | str) -> Passphrase:
    if isinstance(p, str):
        if not p:
            raise UsageError("the passphrase must not be empty")
        return Passphrase.of(p)
    return p


def _profile(p: KdfProfile | str) -> KdfProfile:
    if isinstance(p, str):
        if p not in PROFILES:
            raise UsageError(f"unknown KDF profile {p!r}: use {', '.join(sorted(PROFILES))}")
        return PROFILES[p]
    return p


def _new_slot(before: Unlocked, after: Unlocked) -> bytes:
    old = {s.id for s in before.slots}
    return next(s.id for s in after.slots if s.id not in old)


class Keys:
    """The key slots of one open vault (``vault.keys``): look at them, add, remove, change passphrases.

    Holds the unlocked keystore the vault was opened with and moves to each new generation it
    writes, so several changes in a row work. ``folder`` is this device's state folder of the
    vault (the new keystore generation is pinned there); ``device_secret`` is where this device's
    second factor lives. Never shows a secret in its repr.
    """

    def __init__(self, backend: Backend, unlocked: Unlocked, folder: Path, device_secret: Path,
                 device_key: Path) -> None:
        self._backend = backend
        self._u = unlocked
        #: told of each keystore this facet writes (the vault's history adopts it: epochs, writers)
        self.on_change: Callable[[Unlocked, dict[str, str]], Awaitable[None]] = _nothing
        self._folder = folder
        self.device_secret = device_secret
        self.device_key = device_key

    def __repr__(self) -> str:
        return f"<Keys of vault {self._u.fingerprint.hex()} (keystore generation {self._u.generation})>"

    @property
    def generation(self) -> int:
        """The keystore generation this vault holds (it moves with each change made here)."""
        return self._u.generation

    @property
    def fingerprint(self) -> bytes:
        return self._u.fingerprint

    @property
    def epoch(self) -> int:
        """The key epoch new objects are sealed under."""
        return self._u.current_epoch

    @property
    def params(self) -> Params:
        """The vault's fixed parameters (suite, chunk size, padding, ...)."""
        return self._u.params

    @property
    def opened_slot(self) -> bytes:
        """The id of the slot that unlocked the vault (empty when the unlock agent's key did)."""
        return self._u.opened_slot

    def slots(self) -> list[SlotInfo]:
        """The key slots, as stored (no secrets)."""
        return self._u.list_slots()

    def writers(self) -> tuple[Writer, ...]:
        """The vault's write-only clients, removed ones (state ``removed``) included; no key in their repr."""
        return self._u.writers

    def find(self, text: str) -> bytes:
        """The id of the slot whose hex id starts with ``text`` (at least 4 hex digits). UsageError,
        NotFound otherwise."""
        return find_slot(self._u, text)

    def agent_key(self) -> tuple[bytes, Secret, bytes]:
        """(fingerprint, KSK, slot id) to hand to the unlock agent: a secret, never to be logged."""
        return self._u.fingerprint, self._u.ksk, self._u.opened_slot

    async def _apply(self, change: Changed, op: str, slot: SlotInfo | None = None) -> Changed:
        """Hold the new keystore and tell the vault what changed (its audit records it in the chain)."""
        self._u = change.vault
        touched = slot or change.slot
        what = {"op": op}
        if touched is not None:
            what.update(slot=b64u(touched.id), type=touched.type, label=touched.label[:256])
        await self.on_change(change.vault, what)
        return change

    async def change_passphrase(self, new: Passphrase | str, *, slot_id: bytes | None = None,
                                profile: KdfProfile | str | None = None) -> Changed:
        """passwd: re-wrap a passphrase slot (default: the one used to unlock) under ``new``
        (``profile``: a new hashing cost, default: keep)."""
        u = self._u
        await _check_newest(self._backend, u)
        slot = slot_id or u.opened_slot
        if not slot:
            raise UsageError("name the passphrase slot to change with --slot (see `sigmavault key list`)")
        device_secret = None
        if any(s.id == slot and s.type == "argon2id+device" for s in u.slots):
            device_secret = load_device_secret(self.device_secret)
        written = await asyncio.to_thread(keystore.change_passphrase, u, _passphrase(new), slot_id=slot,
                                          device_secret=device_secret,
                                          profile=None if profile is None else _profile(profile))
        return await self._apply(await _store(self._backend, self._folder, written, slot), "passwd")

    async def add_passphrase(self, passphrase: Passphrase | str, label: str,
                             profile: KdfProfile | str = INTERACTIVE) -> Changed:
        """Add a passphrase slot (``profile``: its hashing cost, an object or a name such as ``"strong"``)."""
        u = self._u
        await _check_newest(self._backend, u)
        written = await asyncio.to_thread(keystore.add_passphrase, u, _passphrase(passphrase), label,
                                          _profile(profile))
        return await self._apply(await _store(self._backend, self._folder, written, _new_slot(u, written.vault)),
                                 "add")

    async def add_two_factor(self, passphrase: Passphrase | str, label: str,
                             profile: KdfProfile | str = INTERACTIVE) -> Changed:
        """Add an ``argon2id+device`` slot bound to this device's secret (created on first use, mode 0600)."""
        u = self._u
        await _check_newest(self._backend, u)
        device = await asyncio.to_thread(_device_secret, self.device_secret)
        written, _ = await asyncio.to_thread(keystore.add_two_factor, u, _passphrase(passphrase), label, device,
                                             _profile(profile))
        return await self._apply(await _store(self._backend, self._folder, written, _new_slot(u, written.vault)),
                                 "add")

    async def add_recipient(self, recipient: str, label: str) -> Changed:
        """Give the holder of an ``age1pq1…`` identity access. UsageError for a malformed recipient."""
        u = self._u
        await _check_newest(self._backend, u)
        try:
            written = keystore.add_recipient(u, recipient, label)
        except IntegrityError as exc:  # from the bech32 and key checks: the user's input, not the vault
            raise UsageError("not a valid age1pq1… recipient") from exc
        return await self._apply(await _store(self._backend, self._folder, written, _new_slot(u, written.vault)),
                                 "add")

    async def device_recipient(self) -> str:
        """This device's public key for this vault (``age1pq1…``), creating the device key on first use."""
        key = await asyncio.to_thread(device_key, self.device_key)
        return xwing.recipient(key.public_key(self._u.vault_id))

    async def add_device(self, label: str, recipient: str | None = None) -> Changed:
        """Enrol a device: this one (``recipient=None``; its key is created on first use, mode 0600),
        or another by the ``age1pq1…`` key that ``sigmavault key device`` printed there. The device
        then opens the vault with no passphrase once it pins the fingerprint. UsageError for a
        malformed key or a device already enrolled."""
        u = self._u
        await _check_newest(self._backend, u)
        try:
            pk = xwing.parse_recipient(recipient or await self.device_recipient())
        except IntegrityError as exc:
            raise UsageError("not a valid age1pq1… device key") from exc
        if any(getattr(s, "pk", None) == pk for s in u.slots):
            raise UsageError("this device (key) already has a slot in this vault")
        written = keystore.add_device(u, pk, label)
        return await self._apply(await _store(self._backend, self._folder, written, _new_slot(u, written.vault)),
                                 "add")

    async def add_writer(self, label: str, prefix: str) -> WriterCredential:
        """Add a write-only client that may write under the vault folder ``prefix`` (such as ``/web-1``)
        and return its credential: signing keys, the current epoch's drop public key, the vault's id,
        fingerprint and parameters; no key that reads the vault. UsageError for a bad label or prefix
        or a dispersed vault; ConcurrencyError."""
        u = self._u
        await _check_newest(self._backend, u)
        written, cred = keystore.add_writer(u, label, prefix)
        await self._apply(await _store(self._backend, self._folder, written, cred.writer_id), "add")
        return cred

    async def remove(self, slot_id: bytes) -> Changed:
        """Remove a slot (a writer's: the writer is revoked, its keyring entry stays as a tombstone).
        Raises UsageError (see :func:`keystore.remove_slot`), ConcurrencyError."""
        await _check_newest(self._backend, self._u)
        victim = next((s for s in self._u.list_slots() if s.id == slot_id), None)
        written = keystore.remove_slot(self._u, slot_id)
        return await self._apply(await _store(self._backend, self._folder, written, None), "remove", victim)

    def unfinished(self) -> tuple[int, ...]:
        """Older epochs still active beside the current one: a rekey whose R4 has not run yet."""
        return rotate.pending_epochs(self._u)

    def adopt(self, u: Unlocked) -> None:
        """A newer keystore this vault read (another client's rekey or key change): hold it from now on."""
        if u.generation > self._u.generation:
            self._u = u
            devstate.record_keystore(self._folder, u)  # a provider serving the older one later: a rollback

    async def rekey(self, credential: Credential | None, *, remove: bytes | None = None,
                    drop_passphrase_slots: bool = False) -> tuple[Changed, rotate.Rotated]:
        """R1 of a rekey: store keystore generation + 1 under a new KSK with a new current epoch
        (see :func:`..keys.rotate.rekey`). The caller records the rekey in the chain and retires
        the old epoch. UsageError, ConcurrencyError."""
        u = self._u
        await _check_newest(self._backend, u)
        device = None
        if any(s.id == u.opened_slot and s.type == "argon2id+device" for s in u.slots):
            device = load_device_secret(self.device_secret)
        rotated = await asyncio.to_thread(rotate.rekey, u, credential, device_secret=device, remove=remove,
                                          drop_passphrase_slots=drop_passphrase_slots)
        change = await _store(self._backend, self._folder, rotated.written, None)
        self._u = change.vault
        return change, rotated

    async def retire(self, first: dict[int, int]) -> Changed | None:
        """R4 of a rekey: store keystore generation + 1 retiring each older active epoch e at
        ``first[e] - 1``; None when nothing is left to retire. ConcurrencyError (another client
        changed the keys, maybe finishing the same rekey)."""
        u = self._u
        written = rotate.retire(u, first)
        if written is None:
            return None
        await _check_newest(self._backend, u)
        change = await _store(self._backend, self._folder, written, None)
        self._u = change.vault
        return change
