"""This device's state folder for one vault: where it is, its lock, moving it forward, setting it aside.

The folder is ``places.vault_state(location)`` (:class:`.settings.Places`, handed in by the front),
keyed by the backend's full location (its ``description``: the local path, or the bucket/container
and prefix *with the endpoint*, so two S3 services holding the same bucket name never share a
pin). It holds ``state.json`` (the MAC'd pin and high-water marks, :mod:`.localstate`),
``cache.sqlite`` (sealed, :mod:`.cache`) and ``lock`` (an empty file for ``flock``). Nothing in
it names a file or holds content in the clear.

State only moves forward: several processes may share it, so every save merges with what is on
disk under the lock (the higher commit generation and keystore generation win). A folder is set
aside (renamed, never silently reused) only when ``create`` finds no vault at its location; on
open a different fingerprint stays an IntegrityError. :func:`forget` drops it on the user's word.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from ...backends.base import Backend
from ..errors import LocalIOError
from ..format.commits import ChainHead
from ..keys.keystore import Unlocked
from . import localstate
from .localstate import LocalState
from .settings import Places

STATE_FILE = "state.json"
CACHE_FILE = "cache.sqlite"


def folder_for(places: Places, backend: Backend) -> Path:
    """This device's state folder for the vault whose objects ``backend`` reaches."""
    return places.vault_state(backend.description)


@contextlib.contextmanager
def lock(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with builtins.open(folder / "lock", "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _merge(current: LocalState | None, state: LocalState) -> LocalState:
    if current is None:
        return state
    if (current.max_gen or -1) > (state.max_gen or -1):
        state = replace(state, max_gen=current.max_gen, head_hash=current.head_hash)
    if current.keystore_gen > state.keystore_gen:
        state = replace(state, keystore_gen=current.keystore_gen)
    return state


class StateKeeper:
    """Moves the MAC'd local state forward, never back (several processes may share it)."""

    def __init__(self, folder: Path, unlocked: Unlocked, state: LocalState) -> None:
        self.folder = folder
        self.path = folder / STATE_FILE
        self._key = unlocked.local_state_key()
        self.state = state

    def save(self, state: LocalState) -> None:
        with lock(self.folder):
            current = localstate.load(self.path, self._key) if self.path.exists() else None
            state = _merge(current, state)
            localstate.save(self.path, state, self._key)
            self.state = state

    def advance(self, head: ChainHead) -> None:
        if self.state.max_gen is None or head.gen > self.state.max_gen:
            self.save(replace(self.state, max_gen=head.gen, head_hash=head.hash))

    def keystore_written(self, generation: int) -> None:
        """Record a keystore generation this device just wrote: older ones are a rollback from now on."""
        if generation > self.state.keystore_gen:
            self.save(replace(self.state, keystore_gen=generation))


def record_keystore(folder: Path, written: Unlocked) -> None:
    """After a key change's create-only put succeeded: pin its generation in this device's state.

    The new keystore has the same vault key (hence the same state MAC key) as the one it replaces.
    A device without state for this vault (impossible after an open) gets none written here.
    """
    path = folder / STATE_FILE
    key = written.local_state_key()
    with lock(folder):
        current = localstate.load(path, key) if path.exists() else None
        if current is not None and written.generation > current.keystore_gen:
            localstate.save(path, replace(current, keystore_gen=written.generation), key)


def holds_state(folder: Path) -> bool:
    return (folder / STATE_FILE).exists() or (folder / CACHE_FILE).exists()


def set_aside(folder: Path) -> Path | None:
    """Move an old state folder out of the way (``create`` found no vault there). Its new path, or None."""
    if not holds_state(folder):
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = folder.with_name(f"{folder.name}.replaced-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = folder.with_name(f"{folder.name}.replaced-{stamp}-{n}")
    try:
        folder.rename(target)
    except OSError as exc:
        raise LocalIOError(f"cannot move the old local state {folder} aside: {exc.strerror}") from exc
    return target


def restore(folder: Path, aside: Path) -> None:
    """Undo :func:`set_aside` (a ``create`` that failed): drop what it wrote, put the old folder back."""
    try:
        if folder.exists():
            shutil.rmtree(folder)
        aside.rename(folder)
    except OSError as exc:
        raise LocalIOError(f"cannot move the old local state {aside} back: {exc.strerror}") from exc


def forget(folder: Path) -> list[Path]:
    """Delete this device's state for a vault (pin, high-water marks, cache) and any copies set aside.

    Returns the folders removed (empty if there were none).
    """
    found = [folder] if folder.exists() else []
    found += sorted(folder.parent.glob(f"{folder.name}.replaced-*")) if folder.parent.exists() else []
    try:
        for path in found:
            with lock(path):  # not while another process of this vault is saving
                pass
            shutil.rmtree(path)
    except OSError as exc:
        raise LocalIOError(f"cannot remove the local state {exc.filename or folder}: {exc.strerror}") from exc
    return found
