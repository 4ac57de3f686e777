"""The in-memory backend: a dict of name → bytes, for tests and ``mem://name`` vaults (leaf imports only).

Objects live as long as the :class:`MemoryStores` that holds them (``persistent=False``). Two
backends opened on the same name share one store, so ``mem://demo`` opened twice in one process
is one vault, as two clients of the same bucket would be. :data:`STORES` is the process-wide
default; it is an empty dict until a ``mem://`` URL is first opened, and tests that want
isolation make their own :class:`MemoryStores`.

Every operation yields to the event loop once before it acts, so concurrent callers interleave
as they would against a real store; the act itself is a single dict operation, and the
create-only put's check-and-set holds a lock, so it stays atomic even across threads and event
loops. Stored bytes are copied on the way in: callers may reuse their buffers.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

from ..engine.errors import NotFound, UsageError
from .base import Properties, check_name, check_prefix

_Store = dict[str, bytes]
_LOCK = threading.Lock()


class MemoryStores:
    """Named stores, created on first use. Not a registry filled at import: it starts empty."""

    __slots__ = ("_stores",)

    def __init__(self) -> None:
        self._stores: dict[str, _Store] = {}

    def open(self, name: str) -> MemoryBackend:
        """A backend on the store called ``name`` (created empty if new). Raises UsageError if unnamed."""
        if not name:
            raise UsageError("a mem:// vault needs a name, e.g. mem://demo")
        return MemoryBackend(self._stores.setdefault(name, {}), label=name)

    def drop(self, name: str) -> None:
        """Forget the store called ``name`` and its objects (missing: no error)."""
        self._stores.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._stores)


#: the process-wide stores behind ``mem://name`` URLs
STORES = MemoryStores()


class MemoryBackend:
    """A :class:`Backend` over a dict. ``MemoryBackend()`` alone is a fresh private store."""

    __slots__ = ("_label", "_objects")

    def __init__(self, objects: dict[str, bytes] | None = None, *, label: str = "") -> None:
        self._objects: _Store = {} if objects is None else objects
        self._label = label

    @property
    def description(self) -> str:
        return f"mem://{self._label}" if self._label else "memory"

    @property
    def properties(self) -> Properties:
        return Properties(concurrency=64, atomic_create=True, persistent=False)

    async def put_if_absent(self, name: str, data: bytes | bytearray | memoryview) -> bool:
        check_name(name)
        blob = bytes(data)
        await asyncio.sleep(0)
        with _LOCK:  # check-and-set as one step, even for stores shared across threads
            if name in self._objects:
                return False
            self._objects[name] = blob
            return True

    async def get(self, name: str, start: int = 0, end: int | None = None) -> bytes:
        check_name(name)
        await asyncio.sleep(0)
        try:
            blob = self._objects[name]
        except KeyError:
            raise NotFound(f"object {name} not found in {self.description}") from None
        return blob[max(start, 0) : end]

    async def head(self, name: str) -> int:
        check_name(name)
        await asyncio.sleep(0)
        try:
            return len(self._objects[name])
        except KeyError:
            raise NotFound(f"object {name} not found in {self.description}") from None

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        check_prefix(prefix)
        await asyncio.sleep(0)
        for name in [n for n in tuple(self._objects) if n.startswith(prefix)]:
            yield name

    async def delete(self, name: str) -> None:
        check_name(name)
        await asyncio.sleep(0)
        self._objects.pop(name, None)

    async def aclose(self) -> None:
        return None  # the objects stay in their store: reopening the name finds them
