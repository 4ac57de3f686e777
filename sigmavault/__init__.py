"""sigmavault: an encrypted, metadata-hiding file vault on asyncio.

The public API is curated here; everything else lives in private modules of the subpackages
``engine`` (core), ``actors`` (pipeline stages), ``backends`` (object stores) and ``mount`` (FUSE).
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
    "NotFound",
    "RollbackError",
    "UsageError",
    "VaultError",
    "VaultNotFound",
    "__version__",
]
