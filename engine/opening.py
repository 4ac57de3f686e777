"""Creating and opening vaults: keystore, pin and local state, head, and the wiring of a :class:`Vault`.

Open follows CRYPTO.md §1.3 and §5.3: fetch the highest keystore, unlock it with the caller's
credential against the local pin (unlock runs Argon2 in a thread), verify the commit chain from
the local high-water mark to the head, and only then move the local state forward. The local
state of a vault lives under the state directory keyed by its full location (:mod:`.devstate`);
its MAC key comes from the vault, so a corrupted state file is detected after unlock.

Settings are handed in: the URL, this device's folders (:class:`~.local.settings.Places`) and the
:class:`~.local.settings.Tuning`. The front (:func:`sigmavault.open`, the CLI) fills in the
defaults from :mod:`sigmavault.config`; nothing here reads the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..backends.base import Backend, ensure_bucket, get_bounded
from ..backends.dispersed import DispersedBackend
from ..backends.metered import MeteredBackend
from ..backends.retrying import RetryingBackend
from ..backends.urls import open_backend
from . import dispersal, locking
from .errors import AlreadyExists, AuthError, IntegrityError, NotFound, UsageError, VaultError, VaultNotFound
from .format import squeeze
from .format.canonical import MAX_DOCUMENT, b64u
from .format.commits import ChainState, Commit, commit_name, seal_commit
from .format.envelope import Sealer
from .format.meta import MAX_LABEL
from .keys import keystore, xwing
from .keys.credentials import FINGERPRINT_LEN, Credential, Passphrase, Pin
from .keys.keyring import Lock, Params
from .keys.secret import Secret
from .keys.slots import INTERACTIVE, MINIMUM, STRONG, KdfProfile
from .local import devstate, localstate
from .local.cache import Cache
from .local.devstate import StateKeeper
from .local.localstate import LocalState
from .local.settings import Places, Tuning
from .repo import keymgmt, probe
from .repo.history import History
from .repo.keymgmt import Keys
from .repo.store import ObjectStore
from .vault import Vault

DEFAULT_TUNING = Tuning()
PROFILES: dict[str, KdfProfile] = {"interactive": INTERACTIVE, "strong": STRONG, "minimum": MINIMUM}


def _profile(kdf: str) -> KdfProfile:
    if kdf not in PROFILES:
        raise UsageError(f"unknown KDF profile {kdf!r}: use interactive, strong or minimum")
    return PROFILES[kdf]


async def _highest_keystore(backend: Backend, url: str) -> tuple[str, bytes]:
    names = sorted([n async for n in backend.list("k/")])
    if not names:
        raise VaultNotFound(f"no vault at {url}: create one with `sigmavault create`")
    for name in reversed(names):  # the newest keystore that is still there (older ones get deleted)
        try:
            return name, await get_bounded(backend, name, MAX_DOCUMENT)  # never an inflated k/ whole
        except NotFound:
            continue
    raise VaultNotFound(f"no vault at {url}")


async def _assemble(url: str, backend: Backend, unlocked: keystore.Unlocked, keeper: StateKeeper,
                    places: Places, tuning: Tuning, credential: Credential | None = None) -> Vault:
    params = unlocked.params
    keys = {e.epoch: unlocked.epoch_keys(e.epoch) for e in unlocked.keyring.epochs if e.root_key is not None}
    sealers = {e: Sealer(k, params.chunk_size, params.pad_floor) for e, k in keys.items()}
    pin = Pin(unlocked.fingerprint, unlocked.generation)
    slots = Keys(backend, unlocked, keeper.folder, places.device_secret, places.device_key)

    def reauth(name: str, data: bytes) -> keystore.Unlocked:
        """A newer keystore: with the KSK held now, else (a rekey elsewhere drew a new KSK) with the
        credential that opened this vault, if it still opens a slot there."""
        _, ksk, slot = slots.agent_key()
        try:
            return keystore.unlock_with_ksk(data, name, ksk, pin, slot)
        except AuthError:
            if credential is None:
                raise
            return keystore.unlock(data, name, credential, pin)

    history = History(backend, sealers, unlocked.vault_id, unlocked.fingerprint, unlocked.generation,
                      keeper.state.client_id, keeper.advance, epochs=unlocked.keyring.epochs,
                      reauth=reauth, writers=unlocked.keyring.writers)
    st = keeper.state
    since = ChainState(st.max_gen, st.head_hash) if st.max_gen is not None and st.head_hash is not None else None
    head = await history.find_head(since)
    store = ObjectStore(backend, keys, unlocked.current_epoch, params.chunk_size, params.pad_floor,
                        tuning.pack_cache, lambda: ((w.id, w.key) for w in history.writers), params.compression)
    cache = await Cache.open(keeper.folder / "cache.sqlite", unlocked.local_cache_key())
    vault = Vault(url=url, backend=backend, history=history, store=store, cache=cache, head=head,
                  inline_max=params.inline_max, tuning=tuning, keys=slots)
    return vault  # opening never walks the tree: a new or deleted dedup index refills on the first write


async def create(url: str | Sequence[str], *, places: Places, passphrase: str, kdf: str = "interactive",
                 chunk_size: int = 4 << 20, prf: str = "blake3-keyed-256",
                 tuning: Tuning = DEFAULT_TUNING, create_bucket: bool = False, single_writer: bool = False,
                 on_notice: Callable[[str], None] | None = None, needed: int | None = None,
                 write_quorum: int | None = None, lock_days: int | None = None, lock_mode: str = "governance",
                 compression: str = "off", **backend_opts: Any) -> Vault:
    """Create a new vault at ``url`` and return it open (this device's state goes below ``places``).

    ``create_bucket`` first creates the S3 bucket or Azure container if it is missing (else a
    missing one is a BackendError). Probes that the store honours create-only puts (refused unless
    ``single_writer``), sets aside this device's state of an earlier vault at the same location
    (``on_notice`` hears about it), then writes keystore generation 1 and the empty commit 0. A
    failure removes what this call wrote. Raises AlreadyExists if a vault (or what is left of one)
    is there, UsageError for bad parameters, BackendError for storage problems
    (:class:`probe.UnsafeStore` for a store that ignores create-only puts). The recovery code is
    available once as ``vault.recovery_code``; ``vault.keys`` holds the new keystore.

    Several URLs create a dispersed vault over them (:mod:`.dispersal`): ``needed`` of them (default
    all but one) rebuild every object; ``write_quorum`` places must take each write. ``lock_days``
    writes every object under a retention lock (``lock_mode`` governance or compliance) that even
    the vault's own credentials cannot lift (:mod:`.locking`). ``compression`` is ``off``, ``auto``
    or ``max`` (:mod:`.format.squeeze`; a vault parameter, fixed at creation).
    """
    profile = _profile(kdf)
    urls = dispersal.urls_of(url)
    layout = dispersal.layout(len(urls), needed) if len(urls) > 1 else None
    lock = None if lock_days is None else Lock(lock_days, lock_mode)
    if lock is not None and not lock.valid():
        raise UsageError("--lock-days takes 1 to 36500 days, --lock-mode governance or compliance")
    if compression not in squeeze.CLI_NAMES:
        raise UsageError(f"--compression takes off, auto or max, not {compression!r}")
    params = Params(chunk_size=chunk_size, prf=prf, dispersal=layout, lock=lock,  # type: ignore[arg-type]
                    compression=squeeze.CLI_NAMES[compression])
    if not params.valid():
        raise UsageError("chunk size must be a power of two from 1 MiB to 16 MiB; prf blake3-keyed-256 or hmac-sha256")
    url = ", ".join(urls)
    if layout is not None:
        backend: Backend = dispersal.connect(urls, backend_opts, create=True, write_quorum=write_quorum)
    else:
        backend = _connect(url, _create_opts(url, backend_opts))
    created: list[str] = []
    folder = devstate.folder_for(places, backend)
    old = None
    try:
        if lock is not None:
            await locking.prepare(backend, lock, create_bucket)
        if create_bucket:
            await ensure_bucket(backend)
        if [n async for n in backend.list("k/")]:
            raise AlreadyExists(f"a vault already exists at {url}")
        if [n async for n in backend.list("c/")]:
            raise AlreadyExists(f"{url} holds commits of an earlier vault but no keystore: "
                                "clear the location or choose another one")
        safe = await probe.check(backend)  # before anything of the vault is written
        if not safe:
            probe.unsafe(backend, single_writer=single_writer, on_notice=on_notice)
        written, recovery = await asyncio.to_thread(keystore.create, Passphrase.of(passphrase),
                                                    profile=profile, params=params)
        u = written.vault
        if isinstance(backend, DispersedBackend):
            await dispersal.mark(backend, u)
            backend.state_id = u.vault_id.hex()  # this device's state: by vault, whichever places are named
            folder = devstate.folder_for(places, backend)
        if not await backend.put_if_absent(written.name, written.data):
            raise AlreadyExists(f"a vault already exists at {url}")
        created.append(written.name)
        old = await asyncio.to_thread(devstate.set_aside, folder)  # no vault was here: its state is stale
        if old is not None and on_notice is not None:
            on_notice(f"this device's state of an earlier vault at {url} was moved to {old}")
        keys = u.epoch_keys()
        sealer = Sealer(keys, params.chunk_size, params.pad_floor)
        state = LocalState.new(u.vault_id, u.fingerprint, u.generation, u.current_epoch)
        c0 = Commit(u.vault_id, 0, None, u.current_epoch, u.generation, (), state.client_id, int(time.time()),
                    creator_meta(u))
        if not await backend.put_if_absent(commit_name(0), seal_commit(sealer, c0)):
            raise AlreadyExists(f"another vault was created at {url} at the same time")
        created.append(commit_name(0))
        keeper = StateKeeper(folder, u, state)
        keeper.save(state)
        if safe:
            await asyncio.to_thread(probe.remember, folder)
        vault = await _assemble(url, backend, u, keeper, places, tuning, Passphrase.of(passphrase))
        vault.recovery_code = recovery.text().reveal().decode()
        return vault
    except BaseException:
        await _remove(backend, created)
        if old is not None:  # no vault came of it: the earlier state goes back where it was
            await asyncio.to_thread(devstate.restore, folder, old)
        await backend.aclose()
        raise


def creator_meta(u: keystore.Unlocked) -> dict[str, Any]:
    """``meta`` of commit 0: the slot that created the vault (its first passphrase slot)."""
    slot = next((s for s in u.slots if s.id == u.opened_slot), None)
    return {} if slot is None else {"slot": b64u(slot.id), "slot_label": slot.label[:MAX_LABEL]}


async def _remove(backend: Backend, names: list[str]) -> None:
    """Best effort: take back what a failed ``create`` wrote, so the location holds no half vault."""
    for name in reversed(names):
        with contextlib.suppress(VaultError, OSError):
            await backend.delete(name)


def _connect(url: str, opts: dict[str, Any]) -> Backend:
    """The backend for ``url``, retrying transient failures with backoff (never auth errors or "no");
    every attempt is counted (requests, errors, latency) for :meth:`Vault.metrics`."""
    return RetryingBackend(MeteredBackend(open_backend(url, **opts)))


def _create_opts(url: str, opts: dict[str, Any]) -> dict[str, Any]:
    if "://" not in url or url.startswith("file://"):
        return {"create": True, **opts}
    return opts


async def open(url: str | Sequence[str], *, places: Places, passphrase: str | None = None,
               credential: Credential | None = None, fingerprint: str | None = None,
               tuning: Tuning = DEFAULT_TUNING, ksk: Secret | None = None, ksk_slot: bytes = b"",
               single_writer: bool = False, on_notice: Callable[[str], None] | None = None,
               write_quorum: int | None = None, create_places: bool = False, **backend_opts: Any) -> Vault:
    """Open and unlock the vault at ``url`` (or the places of a dispersed vault, in any order; one
    lost place may be left out) with a passphrase or another credential. ``create_places`` lets
    repair make a local folder that is gone (its place is rebuilt there).

    ``url`` is a local path, ``file://``, ``s3://bucket/prefix`` or ``az://container/prefix``;
    this device's pin and state for it live below ``places``. Use the result with ``async with``
    (commits what is pending on a normal exit, then closes) or call :meth:`Vault.aclose`.
    ``fingerprint`` (hex) pins a vault seen for the first time on this device; without it the
    first open pins what it finds (trust on first use, told to ``on_notice``). A pinned location
    that now holds a different vault stays an IntegrityError. ``ksk`` (with the id of the slot it
    came from) opens the keystore with a key the unlock agent kept instead of a credential; it
    needs a pin. ``vault.keys`` holds the unlocked keystore (key management, the agent). The
    first write from this device probes the store's create-only puts (see :mod:`.probe`;
    ``single_writer`` accepts a store that fails). Raises VaultNotFound,
    AuthError, IntegrityError (tampered keystore or commits, pin mismatch), RollbackError,
    BackendError, UsageError.
    """
    if credential is None and ksk is None:
        if passphrase is None:
            raise UsageError("a passphrase or another credential is needed to open the vault")
        credential = Passphrase.of(passphrase)
    urls = dispersal.urls_of(url)
    url = ", ".join(urls)
    if len(urls) > 1:
        spread = dispersal.connect(urls, backend_opts, create=create_places, write_quorum=write_quorum)
        spread.on_notice = on_notice
        backend: Backend = spread
    else:
        backend = _connect(url, backend_opts)
    try:
        name, data = await _highest_keystore(backend, url)
        folder = _folder_of(places, backend, name, data)
        state_file = folder / devstate.STATE_FILE
        known = localstate.load_unverified(state_file) if state_file.exists() else None
        pin = None
        if known is not None:
            pin = Pin(known.fingerprint, known.keystore_gen)
        elif fingerprint is not None:
            try:
                fp = bytes.fromhex(fingerprint.replace(":", "").replace(" ", ""))
            except ValueError:
                raise UsageError("the fingerprint must be 32 hex digits") from None
            if len(fp) != FINGERPRINT_LEN:
                raise UsageError("the fingerprint must be 32 hex digits")
            pin = Pin(fp, 0)
        if ksk is not None:
            if pin is None:
                raise AuthError("the unlock agent's key needs a pinned vault fingerprint")
            u = keystore.unlock_with_ksk(data, name, ksk, pin, ksk_slot)
        else:
            assert credential is not None
            u = await asyncio.to_thread(keystore.unlock, data, name, credential, pin)
        if isinstance(backend, DispersedBackend):
            await dispersal.configure(backend, u)
        elif u.params.dispersal is not None:
            raise UsageError(f"this vault is dispersed over {len(u.params.dispersal.places)} places: "
                             "name them all (one --vault for each)")
        locking.apply(backend, u.params.lock, on_notice)
        if known is not None:
            state = localstate.load(state_file, u.local_state_key())
            if state is None or not hmac.compare_digest(state.vault_id, u.vault_id):
                raise IntegrityError(f"the local state for {url} does not match this vault")
            state = replace(state, keystore_gen=max(state.keystore_gen, u.generation))
        else:
            state = LocalState.new(u.vault_id, u.fingerprint, u.generation, u.current_epoch)
        keeper = StateKeeper(folder, u, state)
        keeper.save(state)
        if known is None and on_notice is not None:
            how = "the fingerprint you gave" if fingerprint is not None else "trust on first use"
            on_notice(f"this device now pins vault {url} to fingerprint {u.fingerprint.hex()} ({how}); "
                      "compare it with `sigmavault info` on a device you trust")
        backend = probe.ProbedBackend(backend, folder, single_writer=single_writer, on_notice=on_notice)
        vault = await _assemble(url, backend, u, keeper, places, tuning, credential)
        try:
            await vault.finish_rekey()  # the finisher: a rekey killed after R1 or R3 (models/rekey.py)
        except BaseException:
            await vault.aclose()
            raise
        return vault
    except BaseException:
        await backend.aclose()
        raise


async def device_recipient(url: str | Sequence[str], places: Places, **backend_opts: Any) -> str:
    """This device's public key (``age1pq1…``) for the vault at ``url`` (or over several places, in
    any order), for an enrolled device to add with ``key add --device --public-key``; creates the
    device key on first use. Reads only the keystore's public vault id (no credential): a provider
    that lies about it only makes the enrolment fail to open."""
    _, vault_id = await _identify(url, places, backend_opts)
    key = await asyncio.to_thread(keymgmt.device_key, places.device_key)
    return xwing.recipient(key.public_key(vault_id))


async def state_folder(url: str | Sequence[str], places: Places, **backend_opts: Any) -> Path:
    """This device's state folder for the vault at ``url`` (below ``places``): no I/O on a
    single-place vault; a dispersed vault's places are asked for its keystore (its id keys the
    state, whichever places are named, in any order). VaultNotFound, BackendError."""
    urls = dispersal.urls_of(url)
    if len(urls) == 1:
        backend = open_backend(urls[0], **backend_opts)
        try:
            return devstate.folder_for(places, backend)
        finally:
            await backend.aclose()
    return (await _identify(urls, places, backend_opts))[0]


async def _identify(url: str | Sequence[str], places: Places, backend_opts: dict[str, Any]) -> tuple[Path, bytes]:
    """The state folder and the (unverified) vault id of the vault at ``url``, from its newest
    keystore (a dispersed vault's read by majority of its places)."""
    urls = dispersal.urls_of(url)
    backend = dispersal.connect(urls, backend_opts) if len(urls) > 1 else _connect(urls[0], backend_opts)
    try:
        name, data = await _highest_keystore(backend, ", ".join(urls))
        return _folder_of(places, backend, name, data), keystore.parse(data, name).vault_id
    finally:
        await backend.aclose()


def _folder_of(places: Places, backend: Backend, name: str, data: bytes) -> Path:
    """This device's state folder for the vault whose keystore ``name`` holds ``data``: a dispersed
    vault's by its vault id (unverified here; the pin in that folder is checked), whichever places."""
    if isinstance(backend, DispersedBackend):
        backend.state_id = keystore.parse(data, name).vault_id.hex()
    return devstate.folder_for(places, backend)


async def pinned(url: str | Sequence[str], places: Places, **backend_opts: Any) -> Pin | None:
    """The pin this device keeps for ``url`` (read unverified, before unlock), or None. No I/O on a
    single-place vault; the places of a dispersed vault are asked for its keystore (its id keys the
    state). VaultNotFound and BackendError as :func:`open` raises them."""
    path = await state_folder(url, places, **backend_opts) / devstate.STATE_FILE
    known = localstate.load_unverified(path) if path.exists() else None
    return None if known is None else Pin(known.fingerprint, known.keystore_gen)
