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
Every error raised to callers is a :class:`VaultError`.
"""

from __future__ import annotations

from .engine.errors import (
    AlreadyExists,
    AuthError,
    BackendAuthError,
    BackendError,
    BackendUnavailable,
    IntegrityError,
    Interrupted,
    LocalIOError,
    NotFound,
    RollbackError,
    UsageError,
    VaultError,
    VaultNotFound,
)
from .engine.results import LogEntry, Stat, VerifyReport
from .engine.session import create, open
from .engine.vault import Vault

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "AuthError",
    "BackendAuthError",
    "BackendError",
    "BackendUnavailable",
    "IntegrityError",
    "Interrupted",
    "LocalIOError",
    "LogEntry",
    "NotFound",
    "RollbackError",
    "Stat",
    "UsageError",
    "Vault",
    "VaultError",
    "VaultNotFound",
    "VerifyReport",
    "__version__",
    "create",
    "open",
]
