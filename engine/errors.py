"""The one error tree of sigmavault (a leaf module: imports nothing of the project).

Every error a caller can see is a :class:`VaultError`. Each class carries the process exit
code the CLI uses for it and the errno the mount answers a FUSE request with, so both are
mapped in exactly one place (by class, never by message text)::

                                exit errno
    VaultError                  1  EIO        anything else that went wrong
    ├── UsageError              2  EINVAL     bad argument, invalid name, wrong kind of path
    │   ├── NotADirectory       2  ENOTDIR    a path component (or the target) is not a directory
    │   ├── IsADirectory        2  EISDIR     a file operation on a directory
    │   └── DirectoryNotEmpty   2  ENOTEMPTY  removing a directory that still has entries
    ├── AuthError               3  EACCES     wrong passphrase / no key slot opened / missing credential
    ├── NotFound                4  ENOENT     path, vault or object does not exist
    │   └── VaultNotFound       4  ENOENT
    ├── AlreadyExists           5  EEXIST     destination exists (and --force was not given)
    ├── IntegrityError          6  EIO        tampered, corrupt, truncated or substituted data
    │   ├── RollbackError       7  EIO        the provider served an older or forked history
    │   └── ObjectMissing       6  EIO        an object a reference needs is not in the storage
    ├── BackendError            8  EIO        the storage refused or failed a request
    │   ├── BackendUnavailable  9  EIO        unreachable / transient (retryable)
    │   │   └── EndpointUnreachable 9  EIO    nothing ever answered at the endpoint (not retried)
    │   ├── ObjectLocked        8  EPERM      a delete refused by the object's retention lock
    │   └── BackendAuthError   10  EACCES     credentials rejected by the storage provider
    ├── LocalIOError           11  EIO        local disk problem (permission denied, read-only disk)
    │   └── NoSpace            11  ENOSPC     the local disk (cache, spool, destination) is full
    ├── ConcurrencyError       12  EBUSY      another client won a race (internal; the engine retries)
    ├── LockedError            13  ENOKEY     the vault is locked / the unlock agent is unreachable
    └── Interrupted           130  EINTR      the user pressed Ctrl-C

An unreachable backend is EIO, not EAGAIN: programs treat EAGAIN on a blocking descriptor as
"would block" and spin or give up oddly; network file systems answer EIO too. ENOKEY for a
locked vault is what fscrypt answers for a locked directory.

:func:`first_error` is the one rule for reporting a failed task group: the first leaf, depth
first, that is not a cancellation; a group of nothing but cancellations gives the first of them.

Messages are written for the person at the terminal. They never contain key material,
passphrases or plaintext: constructors take only descriptive text. Crypto failures use one
uniform message (``IntegrityError.GENERIC``) so no error oracle distinguishes a bad tag from
bad padding or a bad length.
"""

from __future__ import annotations

import errno as _errno
import sys


class VaultError(Exception):
    """Base of every error sigmavault raises to its callers."""

    exit_code: int = 1
    #: what the mount answers a FUSE request that failed with this error
    errno: int = _errno.EIO
    default_message: str = "vault operation failed"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)

    @property
    def message(self) -> str:
        return str(self.args[0])


class UsageError(VaultError):
    exit_code = 2
    errno = _errno.EINVAL
    default_message = "invalid usage"


class NotADirectory(UsageError):
    """A path names a directory where there is something else (or leads through a non-directory)."""

    errno = _errno.ENOTDIR
    default_message = "not a directory"


class IsADirectory(UsageError):
    """A file operation (read, write, replace by a file) on a directory."""

    errno = _errno.EISDIR
    default_message = "is a directory"


class DirectoryNotEmpty(UsageError):
    """A directory that still has entries cannot be removed (or replaced) without ``recursive``."""

    errno = _errno.ENOTEMPTY
    default_message = "directory not empty"


class AuthError(VaultError):
    exit_code = 3
    errno = _errno.EACCES
    default_message = "could not unlock the vault: wrong passphrase or no matching key slot"


class NotFound(VaultError):
    exit_code = 4
    errno = _errno.ENOENT
    default_message = "not found"


class VaultNotFound(NotFound):
    default_message = "no vault at this location"


class AlreadyExists(VaultError):
    exit_code = 5
    errno = _errno.EEXIST
    default_message = "already exists"


class IntegrityError(VaultError):
    """Data failed authentication: tampered, truncated, substituted or malformed."""

    exit_code = 6
    GENERIC = "integrity check failed: data was tampered with, truncated or corrupted"
    default_message = GENERIC


class RollbackError(IntegrityError):
    exit_code = 7
    default_message = "rollback or fork detected: the storage served an older or diverging history"


class ObjectMissing(IntegrityError):
    """An object that an authenticated reference names is not in the storage (lost or withheld)."""

    default_message = "an object the vault needs is missing from the storage"


class BackendError(VaultError):
    exit_code = 8
    default_message = "the storage backend failed the request"


class BackendUnavailable(BackendError):
    """Transient or connectivity failure; safe to retry."""

    exit_code = 9
    default_message = "the storage backend is unreachable"


class EndpointUnreachable(BackendUnavailable):
    """Nothing has answered at the endpoint since the backend was opened: the connection was
    refused, the name did not resolve or the connection timed out on first contact.

    A wrong endpoint URL or a server that is not running does not fix itself within a retry
    schedule, so the retrying wrapper raises this at once. Once the endpoint has answered, a
    failed connection is an ordinary BackendUnavailable (a restarting server) and is retried.
    """

    default_message = "nothing answers at the storage endpoint"


class ObjectLocked(BackendError):
    """The store refused to delete or replace an object under a retention lock (``create --lock-days``)."""

    errno = _errno.EPERM
    default_message = "the object is under a retention lock and cannot be deleted yet"


class BackendAuthError(BackendError):
    exit_code = 10
    errno = _errno.EACCES
    default_message = "the storage backend rejected the credentials"


class LocalIOError(VaultError):
    exit_code = 11
    default_message = "local I/O error"


class NoSpace(LocalIOError):
    """The local disk is full (the cache, the mount's write-back spool, an export destination)."""

    errno = _errno.ENOSPC
    default_message = "the local disk is full"


class ConcurrencyError(VaultError):
    exit_code = 12
    errno = _errno.EBUSY
    default_message = "another client changed the vault at the same time"


class LockedError(VaultError):
    exit_code = 13
    errno = _errno.ENOKEY
    default_message = "the vault is locked"


class Interrupted(VaultError):
    exit_code = 130
    errno = _errno.EINTR
    default_message = "interrupted"


def _cancellation(exc: BaseException) -> bool:
    # this leaf module does not import asyncio: if nobody imported it, nothing is its cancellation
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and isinstance(exc, asyncio.CancelledError)


def first_error(exc: BaseException) -> BaseException:
    """The one error to report for ``exc``, which may be a (nested) exception group.

    The rule: the first leaf, depth first, that is not a cancellation (``asyncio.CancelledError``);
    if every leaf is a cancellation, the first one. Anything that is not a group is returned as
    it is. Used wherever a TaskGroup's failure is turned into a single error (pipeline stages,
    concurrent writers and exporters, the CLI)::

        try:
            async with asyncio.TaskGroup() as tg: ...
        except BaseExceptionGroup as eg:
            raise first_error(eg) from None
    """
    first_cancel: BaseException | None = None
    stack = [exc]
    while stack:  # iterative depth-first walk, children in order
        e = stack.pop()
        if isinstance(e, BaseExceptionGroup):
            stack.extend(reversed(e.exceptions))
        elif not _cancellation(e):
            return e
        elif first_cancel is None:
            first_cancel = e
    return first_cancel if first_cancel is not None else exc


__all__ = [
    "AlreadyExists",
    "AuthError",
    "BackendAuthError",
    "BackendError",
    "BackendUnavailable",
    "ConcurrencyError",
    "DirectoryNotEmpty",
    "EndpointUnreachable",
    "IntegrityError",
    "Interrupted",
    "IsADirectory",
    "LocalIOError",
    "LockedError",
    "NoSpace",
    "NotADirectory",
    "NotFound",
    "ObjectLocked",
    "RollbackError",
    "UsageError",
    "VaultError",
    "VaultNotFound",
    "first_error",
]
