"""The one error tree of sigmavault (a leaf module: imports nothing of the project).

Every error a caller can see is a :class:`VaultError`. Each class carries the process exit
code the CLI uses for it, so exit codes are mapped in exactly one place::

    VaultError                  1  anything else that went wrong
    ├── UsageError              2  bad argument, invalid name, wrong kind of path
    ├── AuthError               3  wrong passphrase / no key slot opened / missing credential
    ├── NotFound                4  path, vault or object does not exist
    │   └── VaultNotFound       4
    ├── AlreadyExists           5  destination exists (and --force was not given)
    ├── IntegrityError          6  tampered, corrupt, truncated or substituted data
    │   └── RollbackError       7  the provider served an older or forked history
    ├── BackendError            8  the storage refused or failed a request
    │   ├── BackendUnavailable  9  unreachable / transient (retryable)
    │   │   └── EndpointUnreachable 9  nothing ever answered at the endpoint (not retried)
    │   └── BackendAuthError   10  credentials rejected by the storage provider
    ├── LocalIOError           11  local disk problem (disk full, permission denied)
    ├── ConcurrencyError       12  another client won a race (internal; the engine retries)
    ├── LockedError            13  the vault is locked / the unlock agent is unreachable
    └── Interrupted           130  the user pressed Ctrl-C

Messages are written for the person at the terminal. They never contain key material,
passphrases or plaintext: constructors take only descriptive text. Crypto failures use one
uniform message (``IntegrityError.GENERIC``) so no error oracle distinguishes a bad tag from
bad padding or a bad length.
"""

from __future__ import annotations


class VaultError(Exception):
    """Base of every error sigmavault raises to its callers."""

    exit_code: int = 1
    default_message: str = "vault operation failed"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)

    @property
    def message(self) -> str:
        return str(self.args[0])


class UsageError(VaultError):
    exit_code = 2
    default_message = "invalid usage"


class AuthError(VaultError):
    exit_code = 3
    default_message = "could not unlock the vault: wrong passphrase or no matching key slot"


class NotFound(VaultError):
    exit_code = 4
    default_message = "not found"


class VaultNotFound(NotFound):
    default_message = "no vault at this location"


class AlreadyExists(VaultError):
    exit_code = 5
    default_message = "already exists"


class IntegrityError(VaultError):
    """Data failed authentication: tampered, truncated, substituted or malformed."""

    exit_code = 6
    GENERIC = "integrity check failed: data was tampered with, truncated or corrupted"
    default_message = GENERIC


class RollbackError(IntegrityError):
    exit_code = 7
    default_message = "rollback or fork detected: the storage served an older or diverging history"


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


class BackendAuthError(BackendError):
    exit_code = 10
    default_message = "the storage backend rejected the credentials"


class LocalIOError(VaultError):
    exit_code = 11
    default_message = "local I/O error"


class ConcurrencyError(VaultError):
    exit_code = 12
    default_message = "another client changed the vault at the same time"


class LockedError(VaultError):
    exit_code = 13
    default_message = "the vault is locked"


class Interrupted(VaultError):
    exit_code = 130
    default_message = "interrupted"


__all__ = [
    "AlreadyExists",
    "AuthError",
    "BackendAuthError",
    "BackendError",
    "BackendUnavailable",
    "ConcurrencyError",
    "EndpointUnreachable",
    "IntegrityError",
    "Interrupted",
    "LocalIOError",
    "LockedError",
    "NotFound",
    "RollbackError",
    "UsageError",
    "VaultError",
    "VaultNotFound",
]
