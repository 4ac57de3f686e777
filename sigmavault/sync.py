"""The blocking facade for scripts and notebooks: :func:`open` and :func:`create` return a :class:`SyncVault`.

::

    import sigmavault.sync

    with sigmavault.sync.open("/srv/vault", passphrase="…") as vault:
        vault.put("notes/today.txt", b"hello")
        for path, st in vault.walk("/"):
            print(path, st.size)
        with vault.open("notes/today.txt") as f:  # an io.RawIOBase: zipfile, shutil, BufferedReader
            print(f.read())
    # leaving ``with`` normally commits what is pending, then closes

Every method mirrors the one of the same name on the async :class:`~sigmavault.Vault` (its
docstring says which), with the same arguments, results and exceptions: the ``VaultError`` classes
come through as they are, never wrapped. Each ``SyncVault`` runs the engine on its own event loop
in a daemon thread (:mod:`sigmavault._syncloop`), so it works where the calling thread already runs
a loop (Jupyter, ``async def`` code); a call made from that private loop's thread raises UsageError
instead of deadlocking. ``close()`` (or leaving ``with``) stops the thread. Iterators (``walk``,
``open_read``, ``diff``) fetch one item per step, so memory stays bounded as in the async API.
Callbacks handed in (``on_notice``) run in the vault's thread. A ``SyncVault`` may be shared by
threads: the calls are serialized where the engine serializes them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Coroutine, Iterator, Sequence
from datetime import tzinfo
from types import TracebackType
from typing import Any, TypeVar

from . import front
from ._syncfile import SyncFile
from ._syncloop import LoopThread
from .engine.anomaly import GuardState
from .engine.catalog.diff import Change
from .engine.catalog.results import LogEntry, Stat, VerifyReport
from .engine.content.writer import Source
from .engine.format.dropmeta import Drops
from .engine.keys.credentials import Credential, Passphrase
from .engine.keys.keyring import Params
from .engine.keys.keystore import SlotInfo
from .engine.keys.secret import Secret
from .engine.keys.slots import INTERACTIVE, KdfProfile
from .engine.keys.writers import Writer, WriterCredential
from .engine.lifecycle import AuditEntry, ForgetReport
from .engine.local.settings import Places, Tuning
from .engine.metrics import VaultMetrics
from .engine.rekeying import Rekeyed
from .engine.repo.keymgmt import Changed, Keys
from .engine.retention import Rules
from .engine.transfer.prune import ProgressFn, PruneReport
from .engine.vault import Vault
from .engine.view import View

T = TypeVar("T")

__all__ = ["SyncFile", "SyncKeys", "SyncSnapshot", "SyncVault", "create", "open"]


def open(url: str | None = None, *, passphrase: str | None = None, credential: Credential | None = None,
         fingerprint: str | None = None, tuning: Tuning | None = None, places: Places | None = None,
         ksk: Secret | None = None, ksk_slot: bytes = b"", single_writer: bool = False,
         on_notice: Callable[[str], None] | None = None, **backend_opts: Any) -> SyncVault:
    """Blocking :func:`sigmavault.open`: the same arguments, errors and defaults; a :class:`SyncVault`."""
    return _start(lambda: front.open(url, passphrase=passphrase, credential=credential, fingerprint=fingerprint,
                                     tuning=tuning, places=places, ksk=ksk, ksk_slot=ksk_slot,
                                     single_writer=single_writer, on_notice=on_notice, **backend_opts))


def create(url: str | None = None, *, passphrase: str, kdf: str = "interactive", chunk_size: int = 4 << 20,
           prf: str = "blake3-keyed-256", tuning: Tuning | None = None, places: Places | None = None,
           create_bucket: bool = False, single_writer: bool = False,
           on_notice: Callable[[str], None] | None = None, **backend_opts: Any) -> SyncVault:
    """Blocking :func:`sigmavault.create`: the same arguments, errors and defaults; a :class:`SyncVault`
    (the recovery code is ``vault.recovery_code``, once)."""
    return _start(lambda: front.create(url, passphrase=passphrase, kdf=kdf, chunk_size=chunk_size, prf=prf,
                                       tuning=tuning, places=places, create_bucket=create_bucket,
                                       single_writer=single_writer, on_notice=on_notice, **backend_opts))


def _start(opening: Callable[[], Coroutine[Any, Any, Vault]]) -> SyncVault:
    lt = LoopThread()
    try:
        vault = lt.run(opening())
    except BaseException:
        lt.stop()  # a failed open leaves no thread behind
        raise
    lt.cleanup = vault.aclose
    return SyncVault(vault, lt)


class _SyncView:
    """The blocking reads over one tree, shared by :class:`SyncVault` and :class:`SyncSnapshot`
    (mirrors :class:`sigmavault.engine.view.View`)."""

    def __init__(self, view: View, loop: LoopThread) -> None:
        self._view = view
        self._lt = loop

    @property
    def url(self) -> str:
        """The vault's URL (as given; may carry credentials: do not log it)."""
        return self._view.url

    @property
    def generation(self) -> int:
        """The generation shown (see :attr:`sigmavault.Vault.generation`)."""
        return self._view.generation

    @property
    def fingerprint(self) -> str:
        """The vault's fingerprint in hex (see :attr:`sigmavault.Vault.fingerprint`)."""
        return self._view.fingerprint

    @property
    def chunk_size(self) -> int:
        """The vault's chunk size in bytes (see :attr:`sigmavault.Vault.chunk_size`)."""
        return self._view.chunk_size

    def stat(self, path: str | bytes) -> Stat:
        """Blocking :meth:`sigmavault.Vault.stat`: the metadata of a path. Raises NotFound."""
        return self._lt.run(self._view.stat(path))

    def ls(self, path: str | bytes = "/") -> list[Stat]:
        """Blocking :meth:`sigmavault.Vault.ls`: a directory's entries sorted by name. Raises NotFound."""
        return self._lt.run(self._view.ls(path))

    def file_paths(self, path: str | bytes = "/") -> list[bytes]:
        """Blocking :meth:`sigmavault.Vault.file_paths`: every file below ``path`` (joined parts, no stats)."""
        return self._lt.run(self._view.file_paths(path))

    def walk(self, path: str | bytes = "/") -> Iterator[tuple[str, Stat]]:
        """Blocking :meth:`sigmavault.Vault.walk`: every path below ``path`` with its stat, one step at a
        time (NotFound comes at the first ``next``)."""
        return self._lt.iterate(self._view.walk(path))

    def open_read(self, path: str | bytes, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Blocking :meth:`sigmavault.Vault.open_read`: the file's verified pieces (at most one chunk each)."""
        return self._lt.iterate(self._view.open_read(path, offset, length))

    def read_bytes(self, path: str | bytes, offset: int = 0, length: int | None = None) -> bytes:
        """Blocking :meth:`sigmavault.Vault.read_bytes`: a file's content in memory (prefer :meth:`open`
        for large files). Raises NotFound, UsageError, IntegrityError."""
        return self._lt.run(self._view.read_bytes(path, offset, length))

    def read_files(self, paths: Sequence[str | bytes]) -> list[bytes]:
        """Blocking :meth:`sigmavault.Vault.read_files`: many small files' contents at once."""
        return self._lt.run(self._view.read_files(paths))

    def get(self, path: str | bytes, dest: str | os.PathLike[str], *, overwrite: bool = False) -> int:
        """Blocking :meth:`sigmavault.Vault.get`: copy a file or tree out to ``dest``; the bytes written."""
        return self._lt.run(self._view.get(path, dest, overwrite=overwrite))

    def xattrs(self, path: str | bytes) -> dict[bytes, bytes]:
        """Blocking :meth:`sigmavault.Vault.xattrs`: a path's extended attributes. Raises NotFound."""
        return self._lt.run(self._view.xattrs(path))

    def open(self, path: str | bytes) -> SyncFile:
        """Blocking :meth:`sigmavault.Vault.open`: a seekable binary :class:`io.RawIOBase` (see
        :mod:`sigmavault._syncfile`). Raises NotFound, IsADirectory, UsageError (not a file)."""
        return SyncFile(self._lt, self._lt.run(self._view.open(path)))


class SyncSnapshot(_SyncView):
    """Blocking :class:`sigmavault.Snapshot`: the reads of one earlier generation (what
    :meth:`SyncVault.at` returns). Shares the vault's thread: it needs no closing and fails
    (UsageError) once the vault is closed."""

    def __repr__(self) -> str:
        return f"<SyncSnapshot at generation {self.generation}>"

    def close(self) -> None:
        """Nothing to release (as :meth:`sigmavault.Snapshot.aclose`)."""


class SyncVault(_SyncView):
    """An open vault with blocking methods (see the module doc). Create with :func:`open` or :func:`create`."""

    def __init__(self, vault: Vault, loop: LoopThread) -> None:
        super().__init__(vault, loop)
        self._vault = vault
        #: the vault's key slots with blocking methods (mirrors ``vault.keys``)
        self.keys = SyncKeys(vault.keys, loop)

    def __repr__(self) -> str:
        return f"<SyncVault at generation {self.generation}{'' if self._lt.running else ' closed'}>"  # no URL

    # --- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> SyncVault:
        return self

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        """As ``async with`` on :class:`sigmavault.Vault`: commits what is pending on a normal exit, then closes."""
        if not self._lt.running:
            return
        try:
            self._lt.run(self._vault.__aexit__(et, exc, tb))
        finally:
            self._lt.stop()

    def close(self) -> None:
        """Blocking :meth:`sigmavault.Vault.aclose` (no commit), then stop the vault's thread. Idempotent."""
        if not self._lt.running:
            return
        try:
            self._lt.run(self._vault.aclose())
        finally:
            self._lt.stop()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran (or ``with`` was left)."""
        return not self._lt.running

    @property
    def pending(self) -> bool:
        """True when there are edits not yet committed (see :attr:`sigmavault.Vault.pending`)."""
        return self._vault.pending

    @property
    def recovery_code(self) -> str | None:
        """Shown once after :func:`create` (a secret: print it for the user, never log it)."""
        return self._vault.recovery_code

    @property
    def refresh_interval(self) -> float | None:
        """Seconds between adopting other clients' commits before a read (None: only :meth:`refresh`;
        see :attr:`sigmavault.Vault.refresh_interval`)."""
        return self._vault.refresh_interval

    @refresh_interval.setter
    def refresh_interval(self, seconds: float | None) -> None:
        self._vault.refresh_interval = seconds

    @property
    def audit_host(self) -> bool:
        """Whether commits record this machine's host name (see :attr:`sigmavault.Vault.audit_host`)."""
        return self._vault.audit_host

    @audit_host.setter
    def audit_host(self, allow: bool) -> None:
        self._vault.audit_host = allow

    def metrics(self) -> VaultMetrics:
        """:meth:`sigmavault.Vault.metrics`: a snapshot of the vault's counters (safe from any thread)."""
        return self._vault.metrics()

    # --- edits -----------------------------------------------------------------------------

    def put(self, path: str | bytes, source: Source, *, mode: int | None = None, mtime_ns: int | None = None
            ) -> Stat:
        """Blocking :meth:`sigmavault.Vault.put`: store a local path, bytes or binary file object at ``path``."""
        return self._lt.run(self._vault.put(path, source, mode=mode, mtime_ns=mtime_ns))

    def mkdir(self, path: str | bytes, *, parents: bool = False, exist_ok: bool = False, mode: int = 0o755) -> None:
        """Blocking :meth:`sigmavault.Vault.mkdir`. Raises AlreadyExists, NotFound, UsageError."""
        self._lt.run(self._vault.mkdir(path, parents=parents, exist_ok=exist_ok, mode=mode))

    def symlink(self, path: str | bytes, target: str | bytes, *, replace: bool = False,
                mtime_ns: int | None = None) -> None:
        """Blocking :meth:`sigmavault.Vault.symlink`: a symlink at ``path`` to ``target`` (never followed)."""
        self._lt.run(self._vault.symlink(path, target, replace=replace, mtime_ns=mtime_ns))

    def set_meta(self, path: str | bytes, *, mode: int | None = None, mtime_ns: int | None = None,
                 uid: int | None = None, gid: int | None = None) -> None:
        """Blocking :meth:`sigmavault.Vault.set_meta`: permission bits, mtime, owner ids. Raises NotFound."""
        self._lt.run(self._vault.set_meta(path, mode=mode, mtime_ns=mtime_ns, uid=uid, gid=gid))

    def set_xattr(self, path: str | bytes, name: bytes, value: bytes | None) -> None:
        """Blocking :meth:`sigmavault.Vault.set_xattr`: set (``None``: remove) one extended attribute."""
        self._lt.run(self._vault.set_xattr(path, name, value))

    def rm(self, path: str | bytes, *, recursive: bool = False) -> None:
        """Blocking :meth:`sigmavault.Vault.rm`. Raises NotFound, UsageError."""
        self._lt.run(self._vault.rm(path, recursive=recursive))

    def mv(self, src: str | bytes, dst: str | bytes, *, replace: bool = True) -> None:
        """Blocking :meth:`sigmavault.Vault.mv`. Raises NotFound, AlreadyExists, UsageError."""
        self._lt.run(self._vault.mv(src, dst, replace=replace))

    # --- commits and history ---------------------------------------------------------------

    def commit(self, meta: dict[str, Any] | None = None) -> int:
        """Blocking :meth:`sigmavault.Vault.commit`: make the edits visible; the new generation."""
        return self._lt.run(self._vault.commit(meta))

    def refresh(self) -> int:
        """Blocking :meth:`sigmavault.Vault.refresh`: adopt other clients' commits now; the generation."""
        return self._lt.run(self._vault.refresh())

    def rebuild_index(self) -> int:
        """Blocking :meth:`sigmavault.Vault.rebuild_index`: refill the local dedup index; the refs added."""
        return self._lt.run(self._vault.rebuild_index())

    def at(self, generation: int, *, own: bool = False) -> SyncSnapshot:
        """Blocking :meth:`sigmavault.Vault.at`: a read-only view of ``generation`` (``own``: its commit's
        own tree, not a rewrite map's). Raises NotFound."""
        return SyncSnapshot(self._lt.run(self._vault.at(generation, own=own)), self._lt)

    def diff(self, old: int, new: int | None = None) -> Iterator[Change]:
        """Blocking :meth:`sigmavault.Vault.diff`: the changes from ``old`` to ``new`` (default: now), one by one."""
        return self._lt.iterate(self._vault.diff(old, new))

    def log(self, limit: int | None = None, *, changes: bool = False) -> list[LogEntry]:
        """Blocking :meth:`sigmavault.Vault.log`: the generations, newest first."""
        return self._lt.run(self._vault.log(limit, changes=changes))

    def kept_generations(self) -> frozenset[int]:
        """Blocking :meth:`sigmavault.Vault.kept_generations`: the generations no forget has forgotten."""
        return self._lt.run(self._vault.kept_generations())

    def forget(self, rules: Rules, *, dry_run: bool = False, tz: tzinfo | None = None,
               force: bool = False) -> ForgetReport:
        """Blocking :meth:`sigmavault.Vault.forget`: apply keep rules and record the decision. UsageError."""
        return self._lt.run(self._vault.forget(rules, dry_run=dry_run, tz=tz, force=force))

    def guard_state(self, *, scoring: bool = False) -> GuardState:
        """Blocking :meth:`sigmavault.Vault.guard_state`: the guard's marks, baseline and thresholds."""
        return self._lt.run(self._vault.guard_state(scoring=scoring))

    def head_drops(self) -> Drops | None:
        """:meth:`sigmavault.Vault.head_drops`: write-only clients' watermark and the head's ingest."""
        return self._vault.head_drops()

    def guard_record(self, meta: dict[str, Any]) -> int:
        """Blocking :meth:`sigmavault.Vault.guard_record`: write a guard record (clear, tune); its generation."""
        return self._lt.run(self._vault.guard_record(meta))

    def audit(self, since: int | None = None) -> list[AuditEntry]:
        """Blocking :meth:`sigmavault.Vault.audit`: every commit record with who and when, oldest first."""
        return self._lt.run(self._vault.audit(since))

    def verify(self, full: bool = False) -> VerifyReport:
        """Blocking :meth:`sigmavault.Vault.verify`: check every generation and object."""
        return self._lt.run(self._vault.verify(full))

    def prune(self, *, max_unused: float = 0.05, dry_run: bool = False,
              progress: ProgressFn | None = None) -> PruneReport:
        """Blocking :meth:`sigmavault.Vault.prune`: delete what no kept generation references, after
        repacking the packs over ``max_unused`` unused (``progress`` is called on the vault's loop thread)."""
        return self._lt.run(self._vault.prune(max_unused=max_unused, dry_run=dry_run, progress=progress))

    def rekey(self, credential: Credential | str | None = None, *, remove: bytes | None = None,
              drop_passphrase_slots: bool = False) -> Rekeyed:
        """Blocking :meth:`sigmavault.Vault.rekey`: a new key epoch under a new KSK (revoking slot
        ``remove`` in the same step), or finish a rekey that was killed."""
        return self._lt.run(self._vault.rekey(credential, remove=remove, drop_passphrase_slots=drop_passphrase_slots))

    def finish_rekey(self) -> None:
        """Blocking :meth:`sigmavault.Vault.finish_rekey`: finish a rekey killed after R1 or R3 (best effort)."""
        self._lt.run(self._vault.finish_rekey())


class SyncKeys:
    """Blocking :class:`sigmavault.Keys` (``SyncVault.keys``): the vault's key slots. Never shows a secret."""

    def __init__(self, keys: Keys, loop: LoopThread) -> None:
        self._keys = keys
        self._lt = loop

    def __repr__(self) -> str:
        return f"<SyncKeys {self._keys!r}>"

    @property
    def generation(self) -> int:
        """The keystore generation (see :attr:`sigmavault.Keys.generation`)."""
        return self._keys.generation

    @property
    def fingerprint(self) -> bytes:
        """The vault's fingerprint (raw bytes; see :attr:`sigmavault.Keys.fingerprint`)."""
        return self._keys.fingerprint

    @property
    def epoch(self) -> int:
        """The key epoch new objects are sealed under."""
        return self._keys.epoch

    @property
    def params(self) -> Params:
        """The vault's fixed parameters (see :attr:`sigmavault.Keys.params`)."""
        return self._keys.params

    @property
    def opened_slot(self) -> bytes:
        """The id of the slot that unlocked the vault (empty when the unlock agent's key did)."""
        return self._keys.opened_slot

    def slots(self) -> list[SlotInfo]:
        """As :meth:`sigmavault.Keys.slots`: the key slots, without secrets."""
        return self._keys.slots()

    def writers(self) -> tuple[Writer, ...]:
        """As :meth:`sigmavault.Keys.writers`: the write-only clients, removed ones included (no keys shown)."""
        return self._keys.writers()

    def find(self, text: str) -> bytes:
        """As :meth:`sigmavault.Keys.find`: the slot id with this hex prefix. Raises UsageError, NotFound."""
        return self._keys.find(text)

    def agent_key(self) -> tuple[bytes, Secret, bytes]:
        """As :meth:`sigmavault.Keys.agent_key`: (fingerprint, KSK, slot id), a secret never to be logged."""
        return self._keys.agent_key()

    def change_passphrase(self, new: Passphrase | str, *, slot_id: bytes | None = None,
                          profile: KdfProfile | str | None = None) -> Changed:
        """Blocking :meth:`sigmavault.Keys.change_passphrase`: re-wrap a passphrase slot under ``new``."""
        return self._lt.run(self._keys.change_passphrase(new, slot_id=slot_id, profile=profile))

    def add_passphrase(self, passphrase: Passphrase | str, label: str,
                       profile: KdfProfile | str = INTERACTIVE) -> Changed:
        """Blocking :meth:`sigmavault.Keys.add_passphrase`: add a passphrase slot."""
        return self._lt.run(self._keys.add_passphrase(passphrase, label, profile))

    def add_two_factor(self, passphrase: Passphrase | str, label: str,
                       profile: KdfProfile | str = INTERACTIVE) -> Changed:
        """Blocking :meth:`sigmavault.Keys.add_two_factor`: a slot that also needs this device's secret."""
        return self._lt.run(self._keys.add_two_factor(passphrase, label, profile))

    def add_recipient(self, recipient: str, label: str) -> Changed:
        """Blocking :meth:`sigmavault.Keys.add_recipient`: give an ``age1pq1…`` identity access."""
        return self._lt.run(self._keys.add_recipient(recipient, label))

    def device_recipient(self) -> str:
        """Blocking :meth:`sigmavault.Keys.device_recipient`: this device's ``age1pq1…`` key for the vault."""
        return self._lt.run(self._keys.device_recipient())

    def add_device(self, label: str, recipient: str | None = None) -> Changed:
        """Blocking :meth:`sigmavault.Keys.add_device`: enrol this device (or another by its key)."""
        return self._lt.run(self._keys.add_device(label, recipient))

    def add_writer(self, label: str, prefix: str) -> WriterCredential:
        """Blocking :meth:`sigmavault.Keys.add_writer`: a write-only client under ``prefix``; its credential."""
        return self._lt.run(self._keys.add_writer(label, prefix))

    def remove(self, slot_id: bytes) -> Changed:
        """Blocking :meth:`sigmavault.Keys.remove`: remove a slot. Raises UsageError, ConcurrencyError."""
        return self._lt.run(self._keys.remove(slot_id))
