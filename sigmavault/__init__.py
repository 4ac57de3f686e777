"""sigmavault: an encrypted, metadata-hiding file vault on asyncio.

::

    import sigmavault

    async with await sigmavault.open("/srv/vault", passphrase="…") as vault:
        await vault.put("photos/cat.jpg", "/home/me/cat.jpg")
        async for piece in vault.open_read("photos/cat.jpg"):
            ...
    # leaving ``async with`` normally commits what is pending

The public API is curated here; everything else lives in private modules of the subpackages
``engine`` (core), ``actors`` (pipeline stages), ``backends`` (object stores) and ``mount`` (FUSE).
Every error raised to callers is a :class:`VaultError`. :func:`open` and :func:`create` are the
front (:mod:`sigmavault.front`): they fill in what the caller left out from :mod:`sigmavault.config`
(the default vault, this device's folders, the tuning read from the environment) and hand it to
the engine, which never looks a setting up itself. ``sigmavault.sync`` (loaded on first use) is the
blocking facade for scripts and notebooks: ``sigmavault.sync.open(...)`` returns a ``SyncVault``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .engine.catalog.results import LogEntry, Stat, VerifyReport
from .engine.dropwriter import DropWriter
from .engine.errors import (
    AlreadyExists,
    AuthError,
    BackendAuthError,
    BackendError,
    BackendUnavailable,
    DirectoryNotEmpty,
    IntegrityError,
    Interrupted,
    IsADirectory,
    LocalIOError,
    NoSpace,
    NotADirectory,
    NotFound,
    ObjectLocked,
    RollbackError,
    UsageError,
    VaultError,
    VaultNotFound,
)
from .engine.keys.writers import WriterCredential
from .engine.lifecycle import AuditEntry, ForgetReport
from .engine.local.settings import Places, Tuning
from .engine.rekeying import Rekeyed
from .engine.repo.keymgmt import Keys
from .engine.retention import Rules
from .engine.transfer.prune import PruneReport
from .engine.vault import Vault
from .engine.view import Snapshot
from .front import create, open

__version__ = "0.1.0"

if TYPE_CHECKING:
    from . import sync as sync
else:
    def __getattr__(name: str) -> object:
        """``sigmavault.sync`` on first use: a plain ``import sigmavault`` starts no thread machinery."""
        if name == "sync":
            import sigmavault.sync as sync  # sets the attribute: this hook is not called again

            return sync
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AlreadyExists",
    "AuditEntry",
    "AuthError",
    "BackendAuthError",
    "BackendError",
    "BackendUnavailable",
    "DirectoryNotEmpty",
    "DropWriter",
    "ForgetReport",
    "IntegrityError",
    "Interrupted",
    "IsADirectory",
    "Keys",
    "LocalIOError",
    "LogEntry",
    "NoSpace",
    "NotADirectory",
    "NotFound",
    "ObjectLocked",
    "Places",
    "PruneReport",
    "Rekeyed",
    "RollbackError",
    "Rules",
    "Snapshot",
    "Stat",
    "Tuning",
    "UsageError",
    "Vault",
    "VaultError",
    "VaultNotFound",
    "VerifyReport",
    "WriterCredential",
    "__version__",
    "create",
    "open",
    "sync",
]
