"""Check that the store honours create-only puts before this device writes to a vault (issue 10 item 15).

Two writers are safe only because ``c/{gen}`` is created with ``If-None-Match: *`` (or ``link``):
a store that ignores the condition lets the second commit overwrite the first, silently losing
it. So before the first write to a location from this device (at ``create``, and on the first
write after an open), sigmavault writes a probe object ``l/probe-<random>`` twice with
``put_if_absent`` and expects "created", then "exists", with the first bytes still there; then
it deletes the probe. The probe lives under ``l/`` (leases and other short-lived objects), never
under ``o/``, ``c/`` or ``k/``. A passed probe is remembered by an empty file ``probed`` in this
device's state folder for the vault, so it runs once per location and device.

A store that fails the probe is refused (:class:`UnsafeStore`, a BackendError) unless the caller
opted into single-writer use, which is then only noted: nothing protects concurrent writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from pathlib import Path

from ...backends.base import Backend, Wrapper
from ..errors import BackendError, LocalIOError

MARK = "probed"


class UnsafeStore(BackendError):
    """The store overwrote an object that a create-only put should have left alone."""


def _refusal(where: str) -> str:
    return (f"the storage at {where} ignores create-only writes (a second conditional put overwrote the first), "
            "so two writers could silently lose a commit; use a store with conditional writes, or pass "
            "--single-writer if only this device ever writes to this vault")


async def check(backend: Backend) -> bool:
    """Whether ``backend`` honours create-only puts (created, then exists, first bytes kept). Cleans up.

    A first put that answers "exists" for a fresh random name can be a retried put whose first
    response was lost (see backends/base.py), so that one case is tried once more.
    """
    for _ in range(2):
        outcome = await _once(backend)
        if outcome is not None:
            return outcome
    return False


async def _once(backend: Backend) -> bool | None:
    name = f"l/probe-{secrets.token_hex(8)}"
    first, second = b"probe-1-" + secrets.token_bytes(8), b"probe-2-" + secrets.token_bytes(8)
    try:
        if not await backend.put_if_absent(name, first):
            return None
        again = await backend.put_if_absent(name, second)
        kept = await backend.get(name, 0, len(first) + 1) == first  # never more than the probe's own bytes
        return not again and kept
    finally:
        with contextlib.suppress(BackendError):
            await backend.delete(name)


def passed(folder: Path) -> bool:
    return (folder / MARK).exists()


def remember(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        (folder / MARK).touch(mode=0o600)
    except OSError as exc:
        raise LocalIOError(f"cannot write {folder / MARK}: {exc.strerror}") from exc


async def require(backend: Backend, folder: Path, *, single_writer: bool = False,
                  on_notice: Callable[[str], None] | None = None) -> None:
    """Probe once per location and device. UnsafeStore if the store fails (unless ``single_writer``)."""
    if passed(folder):
        return
    if await check(backend):
        await asyncio.to_thread(remember, folder)
        return
    unsafe(backend, single_writer=single_writer, on_notice=on_notice)


def unsafe(backend: Backend, *, single_writer: bool, on_notice: Callable[[str], None] | None) -> None:
    """The probe failed: raise UnsafeStore, or (``single_writer``) only say so."""
    if not single_writer:
        raise UnsafeStore(_refusal(backend.description))
    if on_notice is not None:
        on_notice(f"the storage at {backend.description} ignores create-only writes: "
                  "single-writer use only (no other device or process may write to this vault)")


class ProbedBackend(Wrapper):
    """Passes everything through; the first write waits for :func:`require` (once, for all callers)."""

    __slots__ = ("_done", "_folder", "_lock", "_notice", "_single")

    def __init__(self, inner: Backend, folder: Path, *, single_writer: bool = False,
                 on_notice: Callable[[str], None] | None = None) -> None:
        super().__init__(inner)
        self._folder = folder
        self._single = single_writer
        self._notice = on_notice
        self._done = passed(folder)
        self._lock = asyncio.Lock()

    async def _ensure(self) -> None:
        async with self._lock:
            if not self._done:
                await require(self.inner, self._folder, single_writer=self._single, on_notice=self._notice)
                self._done = True

    async def put_if_absent(self, name: str, data: bytes | bytearray | memoryview) -> bool:
        if not self._done:
            await self._ensure()
        return await self.inner.put_if_absent(name, data)
