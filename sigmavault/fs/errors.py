"""Vault errors as the Python errors fsspec users expect (``FileNotFoundError`` and its kin).

A path that is missing, exists, is a directory or is not one becomes the built-in ``OSError``
subclass with the vault's message and errno; a non-empty directory an ``OSError(ENOTEMPTY)``.
Every other :class:`~sigmavault.VaultError` (integrity, storage, usage, …) is raised as it is.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

from .. import AlreadyExists, DirectoryNotEmpty, IsADirectory, NotADirectory, NotFound, VaultError

_BUILTIN: list[tuple[type[VaultError], type[OSError], int]] = [
    (NotFound, FileNotFoundError, errno.ENOENT),
    (AlreadyExists, FileExistsError, errno.EEXIST),
    (IsADirectory, IsADirectoryError, errno.EISDIR),
    (NotADirectory, NotADirectoryError, errno.ENOTDIR),
    (DirectoryNotEmpty, OSError, errno.ENOTEMPTY),
]


def as_os_error(exc: VaultError) -> BaseException:
    """The built-in error for ``exc`` (the vault error itself if none fits)."""
    for vault_cls, os_cls, code in _BUILTIN:
        if isinstance(exc, vault_cls):
            err = os_cls(code, exc.message)
            err.__cause__ = exc
            return err
    return exc


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Raise vault errors of the block as the built-in errors fsspec callers catch."""
    try:
        yield
    except VaultError as exc:
        mapped = as_os_error(exc)
        if mapped is exc:
            raise
        raise mapped from exc
