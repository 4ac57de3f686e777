"""The front of the library: :func:`open` and :func:`create` (re-exported as ``sigmavault.open``/``create``).

They fill in what the caller left out from :mod:`sigmavault.config` (the default vault, this
device's folders, the tuning read from the environment) and hand it to the engine, which never
looks a setting up itself. They live here rather than in ``sigmavault/__init__.py`` so that
modules built on them (:mod:`sigmavault.sync`) can import them without importing the package
that lazily exports those modules (no import cycle).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, overload

from .config import places as default_places
from .config import tuning as default_tuning
from .engine import opening
from .engine.dropwriter import DropWriter, open_writer
from .engine.errors import AuthError, IntegrityError, UsageError
from .engine.keys.credentials import Credential
from .engine.keys.secret import Secret
from .engine.keys.writers import WriterCredential
from .engine.local.settings import Places, Tuning
from .engine.repo.keymgmt import load_device_key
from .engine.vault import Vault
from .named import default_vault_url

WriterSource = WriterCredential | str | os.PathLike[str]


def load_writer_credential(source: WriterSource) -> WriterCredential:
    """A writer credential, or the one in the file ``source`` (``key add --writer --out``)."""
    if isinstance(source, WriterCredential):
        return source
    path = Path(source)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such writer credential file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the writer credential ({exc.strerror})") from None
    try:
        return WriterCredential.from_bytes(data)
    except IntegrityError:
        raise UsageError(f"{path}: not a valid sigmavault writer credential (damaged, or another file)") from None


@overload
async def open(url: str | Sequence[str] | None = None, *, writer_credential: WriterSource,
               dest: str | bytes | None = None, tuning: Tuning | None = None, places: Places | None = None,
               **backend_opts: Any) -> DropWriter: ...


@overload
async def open(url: str | Sequence[str] | None = None, *, passphrase: str | None = None,
               credential: Credential | None = None, fingerprint: str | None = None, tuning: Tuning | None = None,
               places: Places | None = None,
               ksk: Secret | None = None, ksk_slot: bytes = b"", single_writer: bool = False,
               on_notice: Callable[[str], None] | None = None, write_quorum: int | None = None,
               device: bool = False, **backend_opts: Any) -> Vault: ...


async def open(url: str | Sequence[str] | None = None, *, passphrase: str | None = None,
               credential: Credential | None = None, fingerprint: str | None = None, tuning: Tuning | None = None,
               places: Places | None = None,
               ksk: Secret | None = None, ksk_slot: bytes = b"", single_writer: bool = False,
               on_notice: Callable[[str], None] | None = None, write_quorum: int | None = None,
               device: bool = False, writer_credential: WriterSource | None = None, dest: str | bytes | None = None,
               **backend_opts: Any) -> Vault | DropWriter:
    """Open and unlock the vault at ``url`` with a passphrase or another credential; ``device=True``:
    with this device's key (its device slot, ``vault.keys.add_device``; needs a pin or ``fingerprint``).

    ``writer_credential`` (a :class:`WriterCredential` or the path of its file) opens a write-only
    session instead (:class:`DropWriter`): it writes one drop inside ``dest`` (default: the
    credential's folder) and can read nothing of the vault; it never takes a passphrase.

    ``url`` is a local path, ``file://``, ``s3://bucket/prefix`` or ``az://container/prefix``;
    ``None`` opens the default vault: ``$SIGMAVAULT_VAULT``, else ``~/.local/share/sigmavault/default``
    (``$SIGMAVAULT_HOME/data/default`` when that is set). ``tuning`` and ``places`` default to
    :func:`config.tuning` and :func:`config.places` (read from the environment at each call).
    Use the result with ``async with`` (commits what is pending on a normal exit, then closes) or
    call :meth:`Vault.aclose`. The rest is
    :func:`sigmavault.engine.opening.open` (what it raises, pins, the unlock agent's key).
    A list of URLs opens a dispersed vault over those places, named in any order.
    """
    if writer_credential is not None:
        if isinstance(url, list | tuple):
            raise UsageError("write-only clients are not supported on dispersed vaults yet")
        cred = load_writer_credential(writer_credential)
        state = (places or default_places()).state / "writers" / cred.writer_id.hex()
        return await open_writer(str(url or default_vault_url()), cred, dest=dest, tuning=tuning or default_tuning(),
                                 state=state, **backend_opts)
    places = places or default_places()
    if device:
        credential = load_device_key(places.device_key)
        if credential is None:
            raise AuthError(f"this device has no device key at {places.device_key}")
    return await opening.open(url or default_vault_url(), places=places,
                              passphrase=passphrase, credential=credential, fingerprint=fingerprint,
                              tuning=tuning or default_tuning(), ksk=ksk, ksk_slot=ksk_slot,
                              single_writer=single_writer, on_notice=on_notice, write_quorum=write_quorum,
                              **backend_opts)


async def create(url: str | Sequence[str] | None = None, *, passphrase: str, kdf: str = "interactive",
                 chunk_size: int = 4 << 20, prf: str = "blake3-keyed-256", tuning: Tuning | None = None,
                 places: Places | Sequence[str] | None = None, needed: int | None = None,
                 write_quorum: int | None = None, folders: Places | None = None, create_bucket: bool = False,
                 single_writer: bool = False, on_notice: Callable[[str], None] | None = None,
                 lock_days: int | None = None, lock_mode: str = "governance", compression: str = "off",
                 **backend_opts: Any) -> Vault:
    """Create a new vault at ``url`` and return it open; ``url=None`` creates the default vault
    (``$SIGMAVAULT_VAULT``, else ``default`` in the data folder), as :func:`open` opens it. The
    recovery code is available once as ``vault.recovery_code``. The rest is
    :func:`sigmavault.engine.opening.create`.

    ``places=[url, …]`` (or a list as ``url``) creates a dispersed vault: any ``needed`` of the
    places (default all but one) rebuild it, and it may lose min(n−needed, ⌈n/2⌉−1) of them (0 is
    refused with a UsageError). ``places`` may also be this device's folders (a
    :class:`Places`, as ``folders``). ``lock_days``: every object is written under a retention
    lock (S3 Object Lock, Azure immutability; ``lock_mode`` governance or compliance).
    ``compression``: ``off`` (the library's default), ``auto`` (the command line's default) or
    ``max``: zstd per chunk, fixed for the vault's life (README, "Threat model", for what it leaks).
    """
    if places is not None and not isinstance(places, Places):
        if url is not None:
            raise UsageError("give the vault's places either as url or as places, not both")
        url, places = list(places), None
    folders = folders or places
    return await opening.create(url or default_vault_url(), places=folders or default_places(),
                                needed=needed, write_quorum=write_quorum,
                                passphrase=passphrase, kdf=kdf, chunk_size=chunk_size, prf=prf,
                                tuning=tuning or default_tuning(), create_bucket=create_bucket,
                                single_writer=single_writer, on_notice=on_notice, lock_days=lock_days,
                                lock_mode=lock_mode, compression=compression, **backend_opts)
