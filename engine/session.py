"""Creating and opening vaults: keystore, pin and local state, head, and the wiring of a :class:`Vault`.

Open follows CRYPTO.md §1.3 and §5.3: fetch the highest keystore, unlock it with the caller's
credential against the local pin (unlock runs Argon2 in a thread), verify the commit chain from
the local high-water mark to the head, and only then move the local state forward. The local
state of a vault lives under the state directory keyed by its URL; its MAC key comes from the
vault, so a corrupted state file is detected after unlock.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import fcntl
import hmac
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from .. import config
from ..backends.base import Backend, get_bounded
from ..backends.retrying import RetryingBackend
from ..backends.urls import open_backend
from . import keystore, localstate
from .cache import Cache
from .canonical import MAX_DOCUMENT
from .commits import ChainHead, ChainState, Commit, commit_name, seal_commit
from .credentials import FINGERPRINT_LEN, Credential, Passphrase, Pin
from .errors import AlreadyExists, AuthError, IntegrityError, NotFound, UsageError, VaultNotFound
from .history import History
from .keyring import Params
from .localstate import LocalState
from .objects import Sealer
from .secret import Secret
from .slots import INTERACTIVE, MINIMUM, STRONG, KdfProfile
from .store import ObjectStore
from .vault import Vault

PROFILES: dict[str, KdfProfile] = {"interactive": INTERACTIVE, "strong": STRONG, "minimum": MINIMUM}


def _profile(kdf: str) -> KdfProfile:
    if kdf not in PROFILES:
        raise UsageError(f"unknown KDF profile {kdf!r}: use interactive, strong or minimum")
    return PROFILES[kdf]


def _state_folder(backend: Backend) -> Path:
    """This device's local state for the vault, keyed by where its objects live."""
    return config.vault_state_dir(backend.description)


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


@contextlib.contextmanager
def _state_lock(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with builtins.open(folder / "lock", "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class _StateKeeper:
    """Moves the MAC'd local state forward, never back (several processes may share it)."""

    def __init__(self, folder: Path, unlocked: keystore.Unlocked, state: LocalState) -> None:
        self.folder = folder
        self.path = folder / "state.json"
        self._key = unlocked.local_state_key()
        self.state = state

    def save(self, state: LocalState) -> None:
        with _state_lock(self.folder):
            current = localstate.load(self.path, self._key) if self.path.exists() else None
            if current is not None and (current.max_gen or -1) > (state.max_gen or -1):
                state = replace(state, max_gen=current.max_gen, head_hash=current.head_hash)
            localstate.save(self.path, state, self._key)
            self.state = state

    def advance(self, head: ChainHead) -> None:
        if self.state.max_gen is None or head.gen > self.state.max_gen:
            self.save(replace(self.state, max_gen=head.gen, head_hash=head.hash))


async def _assemble(url: str, backend: Backend, unlocked: keystore.Unlocked, keeper: _StateKeeper,
                    tuning: config.Tuning) -> Vault:
    params = unlocked.params
    keys = {e.epoch: unlocked.epoch_keys(e.epoch) for e in unlocked.keyring.epochs if e.root_key is not None}
    sealers = {e: Sealer(k, params.chunk_size, params.pad_floor) for e, k in keys.items()}
    history = History(backend, sealers, unlocked.vault_id, unlocked.fingerprint, unlocked.generation,
                      keeper.state.client_id, keeper.advance)
    st = keeper.state
    since = ChainState(st.max_gen, st.head_hash) if st.max_gen is not None and st.head_hash is not None else None
    head = await history.find_head(since)
    store = ObjectStore(backend, keys, unlocked.current_epoch, params.chunk_size, params.pad_floor,
                        tuning.pack_cache)
    cache = Cache(keeper.folder / "cache.sqlite")
    vault = Vault(url=url, backend=backend, history=history, store=store, cache=cache, head=head,
                  inline_max=params.inline_max, tuning=tuning)
    return vault  # opening never walks the tree: a new or deleted dedup index refills on the first write


async def create(url: str | None = None, *, passphrase: str, kdf: str = "interactive",
                 chunk_size: int = 4 << 20, prf: str = "blake3-keyed-256",
                 tuning: config.Tuning | None = None, **backend_opts: Any) -> Vault:
    """Create a new vault at ``url`` and return it open; ``url=None`` creates the default vault
    (``$SIGMAVAULT_VAULT``, else ``default`` in the data folder), as :func:`open` opens it.

    Writes keystore generation 1 and the empty commit 0. Raises AlreadyExists if a vault is there,
    UsageError for bad parameters, BackendError for storage problems. The recovery code is
    available once as ``vault.recovery_code``.
    """
    url = url or config.default_vault_url()
    profile = _profile(kdf)
    params = Params(chunk_size=chunk_size, prf=prf)  # type: ignore[arg-type]
    if not params.valid():
        raise UsageError("chunk size must be a power of two from 1 MiB to 16 MiB; prf blake3-keyed-256 or hmac-sha256")
    backend = _connect(url, _create_opts(url, backend_opts))
    try:
        if [n async for n in backend.list("k/")]:
            raise AlreadyExists(f"a vault already exists at {url}")
        written, recovery = await asyncio.to_thread(keystore.create, Passphrase.of(passphrase),
                                                    profile=profile, params=params)
        u = written.vault
        if not await backend.put_if_absent(written.name, written.data):
            raise AlreadyExists(f"a vault already exists at {url}")
        keys = u.epoch_keys()
        sealer = Sealer(keys, params.chunk_size, params.pad_floor)
        state = LocalState.new(u.vault_id, u.fingerprint, u.generation, u.current_epoch)
        c0 = Commit(u.vault_id, 0, None, u.current_epoch, u.generation, (), state.client_id, int(time.time()))
        await backend.put_if_absent(commit_name(0), seal_commit(sealer, c0))
        keeper = _StateKeeper(_state_folder(backend), u, state)
        keeper.save(state)
        vault = await _assemble(url, backend, u, keeper, tuning or config.Tuning.from_env())
        vault.recovery_code = recovery.text().reveal().decode()
        return vault
    except BaseException:
        await backend.aclose()
        raise


def _connect(url: str, opts: dict[str, Any]) -> Backend:
    """The backend for ``url``, retrying transient failures with backoff (never auth errors or "no")."""
    return RetryingBackend(open_backend(url, **opts))


def _create_opts(url: str, opts: dict[str, Any]) -> dict[str, Any]:
    if "://" not in url or url.startswith("file://"):
        return {"create": True, **opts}
    return opts


async def open(url: str | None = None, *, passphrase: str | None = None,
               credential: Credential | None = None, fingerprint: str | None = None,
               tuning: config.Tuning | None = None, ksk: Secret | None = None, ksk_slot: bytes = b"",
               on_unlock: Callable[[keystore.Unlocked], None] | None = None, **backend_opts: Any) -> Vault:
    """Open and unlock the vault at ``url`` with a passphrase or another credential.

    ``url`` is a local path, ``file://``, ``s3://bucket/prefix`` or ``az://container/prefix``;
    ``None`` opens the default vault: ``$SIGMAVAULT_VAULT``, else ``~/.local/share/sigmavault/default``
    (``$SIGMAVAULT_HOME/data/default`` when that is set). Use the result with ``async with`` (commits what is
    pending on a normal exit, then closes) or call :meth:`Vault.aclose`.
    ``fingerprint`` (hex) pins a vault seen for the first time on this device. ``ksk`` (with the
    id of the slot it came from) opens the keystore with a key the unlock agent kept instead of a
    credential; it needs a pin. ``on_unlock`` sees the unlocked keystore (key management, the
    agent) before the history is checked. Raises VaultNotFound, AuthError, IntegrityError
    (tampered keystore or commits, pin mismatch), RollbackError, BackendError, UsageError.
    """
    url = url or config.default_vault_url()
    if credential is None and ksk is None:
        if passphrase is None:
            raise UsageError("a passphrase or another credential is needed to open the vault")
        credential = Passphrase.of(passphrase)
    backend = _connect(url, backend_opts)
    try:
        name, data = await _highest_keystore(backend, url)
        folder = _state_folder(backend)
        known = localstate.load_unverified(folder / "state.json") if (folder / "state.json").exists() else None
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
        if known is not None:
            state = localstate.load(folder / "state.json", u.local_state_key())
            if state is None or not hmac.compare_digest(state.vault_id, u.vault_id):
                raise IntegrityError(f"the local state for {url} does not match this vault")
            state = replace(state, keystore_gen=max(state.keystore_gen, u.generation))
        else:
            state = LocalState.new(u.vault_id, u.fingerprint, u.generation, u.current_epoch)
        keeper = _StateKeeper(folder, u, state)
        keeper.save(state)
        if on_unlock is not None:
            on_unlock(u)
        return await _assemble(url, backend, u, keeper, tuning or config.Tuning.from_env())
    except BaseException:
        await backend.aclose()
        raise


async def pinned(url: str | None = None, **backend_opts: Any) -> Pin | None:
    """The pin this device keeps for ``url`` (read unverified, before unlock), or None. No I/O on the vault."""
    url = url or config.default_vault_url()
    backend = open_backend(url, **backend_opts)
    try:
        path = _state_folder(backend) / "state.json"
    finally:
        await backend.aclose()
    known = localstate.load_unverified(path) if path.exists() else None
    return None if known is None else Pin(known.fingerprint, known.keystore_gen)
