"""The ``Backend`` protocol: what every object store must do (imports only leaf modules).

A backend stores opaque objects under the flat names of DESIGN.md §4 and nothing else: it never
sees plaintext, keys or file names. Contract, which the shared conformance suite
(``tests/backends/conformance.py``) checks on every implementation:

* ``put_if_absent(name, data)`` is atomic and create-only. It returns ``True`` if this call
  created the object and ``False`` if an object of that name already existed (whose content is
  left untouched — a content-addressed chunk found there is a dedup hit; a commit found there
  means another client won the race). It never overwrites. A transient failure raises
  :class:`BackendUnavailable`; the caller may retry, and a retry after a lost response may
  answer ``False`` for the object the first attempt created.
* ``get(name, start=0, end=None)`` returns the bytes ``[start, end)`` (``end=None``: to the end;
  a range past the end is clipped, as HTTP does). A missing object raises :class:`NotFound`.
  Read-after-write: a ``get`` after a successful ``put_if_absent`` sees the object.
  Readers never ask for an unbounded object they must hold in memory: :func:`get_bounded` asks
  for one byte more than the largest object they accept (a ranged GET), so an inflated object
  costs at most that much before it is refused.
* ``head(name)`` returns the object's size, or raises :class:`NotFound`.
* ``list(prefix)`` yields the names that start with ``prefix`` (e.g. ``"c/"``), in no promised
  order; callers sort. Listing is a hint only (CRYPTO.md §5.2).
* ``delete(name)`` removes an object; deleting a missing object is not an error.
* ``aclose()`` releases connections; idempotent.

Optional: a store with buckets (S3) or containers (Azure) has ``ensure_bucket()``, which creates
it if missing; :func:`ensure_bucket` calls it through any wrappers (``create --create-bucket``).
A store that can lock objects (S3 Object Lock, Azure immutability policies) is a
:class:`Lockable`: once :meth:`~Lockable.set_retention` is called every object it writes is kept
for that many days even from the vault's own credentials, and a delete it refuses raises
:class:`ObjectLocked`; :func:`lockable` finds it through any wrappers.

Names are validated by :func:`check_name` before any I/O, so no backend can be made to touch a
path outside its namespace. Provider errors are translated at the edge into the project's error
tree (``raise BackendUnavailable(...) from exc``) with a message that names the store and what
to check; no provider exception escapes a backend.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlsplit

from ..engine.errors import IntegrityError, UsageError

_NAME = re.compile(r"(?:[kc]/[0-9a-f]{16}|[os]/[0-9a-f]{64}|l/[0-9a-z-]{1,64}"
                   r"|d/[0-9a-f]{32}/(?:[0-9a-f]{16}|[og]/[0-9a-f]{64}|l/[0-9a-f]{16}-[0-9a-f]{8}))")
# d/: write-only clients' records, objects (o/), gone-markers (g/) and leases (l/)
PREFIXES = ("k/", "c/", "o/", "s/", "l/", "d/")


_URL_PREFIX = re.compile(r"[A-Za-z0-9._!~()=+-]+(?:/[A-Za-z0-9._!~()=+-]+)*")


def split_url(url: str, scheme: str, store: str, container: re.Pattern[str], shape: str
              ) -> tuple[str, str, dict[str, str]]:
    """Split ``scheme://container/prefix?opt=v`` (S3 and Azure URLs) into (container, prefix without
    slashes, options); ``container`` is the store's rule for its bucket or container names. The caller
    checks which options it knows. Raises UsageError naming ``store`` and the ``shape`` expected."""
    parts = urlsplit(url)
    if parts.scheme != scheme or parts.fragment or not container.fullmatch(parts.netloc):
        raise UsageError(f"invalid {store} URL {url!r}: expected {shape}")
    prefix = parts.path.strip("/")
    if prefix and (not _URL_PREFIX.fullmatch(prefix) or any(p in (".", "..") for p in prefix.split("/"))):
        raise UsageError(f"invalid prefix {prefix!r} in {store} URL {url!r}")
    try:
        options = dict(parse_qsl(parts.query, strict_parsing=bool(parts.query)))
    except ValueError:
        raise UsageError(f"invalid options in {store} URL {url!r}") from None
    return parts.netloc, prefix, options


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid object name, else raise UsageError (a programming error)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsageError(f"invalid object name {name!r}")
    return name


def is_valid_name(name: str) -> bool:
    """Whether ``name`` is a valid object name (for filtering what a listing finds)."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def check_prefix(prefix: str) -> str:
    if prefix != "" and not any(prefix.startswith(p) or p.startswith(prefix) for p in PREFIXES):
        raise UsageError(f"invalid object prefix {prefix!r}")
    if not re.fullmatch(r"[a-z0-9/-]*", prefix):
        raise UsageError(f"invalid object prefix {prefix!r}")
    return prefix


async def get_bounded(backend: Backend, name: str, limit: int) -> bytes:
    """Object ``name`` whole, if it holds at most ``limit`` bytes; else IntegrityError (inflated).

    One ranged GET of ``limit + 1`` bytes: a provider that inflates an object to gigabytes costs
    the reader ``limit + 1`` bytes of memory and transfer, never the whole object. NotFound passes.
    """
    data = await backend.get(name, 0, limit + 1)
    if len(data) > limit:
        raise IntegrityError(f"object {name} is larger than any valid object of its kind (inflated or replaced)")
    return data


@dataclass(frozen=True, slots=True)
class Properties:
    """What a backend can do, declared instead of type-checked (restic's ``Properties``)."""

    #: a good number of requests in flight at once
    concurrency: int = 8
    #: create-only writes are atomic (required for more than one writer)
    atomic_create: bool = True
    #: True if objects survive the process (not the memory backend)
    persistent: bool = True


class Wrapper:
    """Base of the backend wrappers (retrying, limited, faulty, the create-only probe): they add
    behaviour around ``inner``; whatever a wrapper does not override passes straight through."""

    __slots__ = ("inner",)

    def __init__(self, inner: Backend) -> None:
        self.inner = inner

    @property
    def description(self) -> str:
        return self.inner.description

    @property
    def properties(self) -> Properties:
        return self.inner.properties

    async def put_if_absent(self, name: str, data: bytes | bytearray | memoryview) -> bool:
        return await self.inner.put_if_absent(name, data)

    async def get(self, name: str, start: int = 0, end: int | None = None) -> bytes:
        return await self.inner.get(name, start, end)

    async def head(self, name: str) -> int:
        return await self.inner.head(name)

    def list(self, prefix: str = "") -> AsyncIterator[str]:
        return self.inner.list(prefix)

    async def delete(self, name: str) -> None:
        await self.inner.delete(name)

    async def aclose(self) -> None:
        await self.inner.aclose()


@runtime_checkable
class Backend(Protocol):
    """An async object store. See the module docstring for the contract of each method."""

    @property
    def description(self) -> str:
        """Where the objects live, for messages (e.g. ``local:/srv/vault``, ``s3://bucket/prefix``)."""
        ...

    @property
    def properties(self) -> Properties: ...

    async def put_if_absent(self, name: str, data: bytes | bytearray | memoryview) -> bool: ...

    async def get(self, name: str, start: int = 0, end: int | None = None) -> bytes: ...

    async def head(self, name: str) -> int: ...

    def list(self, prefix: str = "") -> AsyncIterator[str]: ...

    async def delete(self, name: str) -> None: ...

    async def aclose(self) -> None: ...


def layers(backend: Backend) -> Iterator[Backend]:
    """``backend`` and every backend it wraps, outermost first; the last is the store itself."""
    yield backend
    while isinstance(backend, Wrapper):
        backend = backend.inner
        yield backend


RetentionMode = Literal["governance", "compliance"]


@dataclass(frozen=True, slots=True)
class Retention:
    """Every object written is locked for ``days`` days: ``governance`` (S3 GOVERNANCE, Azure
    unlocked policy: an administrator with the bypass right can lift it) or ``compliance`` (S3
    COMPLIANCE, Azure locked policy: nobody can, the account owner included)."""

    days: int
    mode: RetentionMode = "governance"

    def __post_init__(self) -> None:
        if not 1 <= self.days <= 36500:
            raise UsageError("the lock must last from 1 to 36500 days")
        if self.mode not in ("governance", "compliance"):
            raise UsageError("the lock mode is governance or compliance")

    def until(self) -> datetime.datetime:
        """When an object written now may be deleted again (UTC, to the second)."""
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        return now + datetime.timedelta(days=self.days)


@runtime_checkable
class Lockable(Protocol):
    """A store that can lock what it writes (see the module doc)."""

    def set_retention(self, retention: Retention) -> None: ...

    async def check_retention(self) -> None:
        """Raise a BackendError naming what to do if the bucket or container cannot lock objects."""


class LockingStore:
    """What S3 and Azure share of :class:`Lockable`: the retention set, and the extra arguments of
    a locked put (``{}`` while none is set), which each store spells in :meth:`_locked_put`."""

    __slots__ = ()
    _retention: Retention | None

    def set_retention(self, retention: Retention) -> None:
        self._retention = retention  # type: ignore[misc]  # the slot is the store's own

    def _lock_args(self, name: str) -> dict[str, Any]:
        """The extra arguments of a put of ``name``. Leases and prune records (``l/``) and a
        write-only client's lease beats and gone-markers (``d/<writer>/l/``, ``…/g/``) are never
        locked: they are bookkeeping that must go away when its run or writer ends."""
        if self._retention is None or name.startswith("l/") or name[34:37] in ("/l/", "/g/"):
            return {}
        return self._locked_put(self._retention)

    def _locked_put(self, retention: Retention) -> dict[str, Any]:
        raise NotImplementedError


def lockable(backend: Backend) -> Lockable | None:
    """The store below ``backend``'s wrappers if it can lock objects, else None."""
    *_, store = layers(backend)
    return store if isinstance(store, Lockable) else None


async def ensure_bucket(backend: Backend) -> bool:
    """Create the bucket or container ``backend`` stores into if it is missing; True if created.

    Looks through wrappers to the store itself. A store without buckets (a local folder, which
    ``create`` makes anyway; memory) has nothing to create: False.
    """
    *_, store = layers(backend)
    make = getattr(store, "ensure_bucket", None)
    if make is None:
        return False
    created: bool = await make()
    return created
