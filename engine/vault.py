"""The vault: the asyncio library API over one unlocked vault (DESIGN.md §3–§7), a thin front.

A :class:`Vault` is the working tree of one vault, readable (:class:`~.view.View`) and writable
(:class:`~.edits.Edits`), plus what makes it a front: its lifecycle (``async with``, ``aclose``),
commits and refreshes (delegated to its :class:`~.committer.Committer`), history (``at``,
``diff``, ``log``, ``verify``; ``forget``, ``audit`` from :mod:`.lifecycle`), its counters
(``metrics``) and its key slots (``vault.keys``, a :class:`~.repo.keymgmt.Keys`).
It owns the object store, the two open packs, the mixer and the local cache, and shares them with
the snapshots it hands out. ``put`` uploads a file's chunks before it returns; other clients see
the change at :meth:`Vault.commit`. Every method raises only :class:`VaultError` subclasses.

Opening and creating (keystore, pin, local state) are :mod:`.opening`; the front that reads the
environment is :func:`sigmavault.open`.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import tzinfo
from types import TracebackType
from typing import Any

from ..backends.base import Backend
from .anomaly import GuardState, refuse
from .anomaly import state as guard_state
from .catalog.diff import Change, diff_trees, summarize
from .catalog.pagestore import Catalog
from .catalog.results import LogEntry, VerifyReport
from .catalog.tree import Tree
from .committer import Committer
from .content.index import BlobIndex
from .content.writer import ContentWriter
from .edits import Edits
from .errors import BackendError, ConcurrencyError, IntegrityError, NotFound, UsageError
from .format.canonical import b64u
from .format.commits import ChainHead
from .format.dropmeta import Drops
from .format.meta import MAX_HOST, MAX_LABEL
from .guard import WriteGuard
from .ingest import Ingester
from .keys.credentials import Credential, Passphrase
from .keys.keystore import Unlocked
from .keys.schedule import KIND_DATA_PACK, KIND_PAGE_PACK
from .lifecycle import AuditEntry, ForgetReport, audit, decide, next_chunk, report
from .local.cache import Cache
from .local.settings import Tuning
from .metrics import CacheCounts, VaultMetrics, snapshot
from .rekeying import Epochs, Rekeyed
from .repo.history import History
from .repo.keymgmt import Keys
from .repo.packs import PackWriter
from .repo.reader import BlobReader
from .repo.store import ObjectStore
from .retention import Rules
from .rewriting import Rewriter
from .transfer.dropgc import DropSource
from .transfer.prune import ProgressFn, Pruner, PruneReport
from .transfer.verify import Subject, verify_vault
from .view import Parts, Snapshot


class Vault(Edits):
    """An open, unlocked vault. Create with :func:`sigmavault.create` or :func:`sigmavault.open`."""

    def __init__(self, *, url: str, backend: Backend, history: History, store: ObjectStore, cache: Cache,
                 head: ChainHead, inline_max: int, tuning: Tuning, keys: Keys) -> None:
        self._cache = cache
        self._index = BlobIndex(cache, backend, lambda: (self._head.gen, self._catalog.tree(self._head.commit)))
        self._cache_meters: dict[str, Callable[[], CacheCounts]] = {}  # caches kept above the vault
        self._data_pack = PackWriter(store, KIND_DATA_PACK, self._seal, on_landed=self._index.stored)
        self._page_pack = PackWriter(store, KIND_PAGE_PACK, self._seal)
        #: the one read route for blobs: opened off the event loop, verified once, open pack from memory
        # an inline mixer would open on the event loop: then every read opens in worker threads instead
        off_loop = tuning.mixer != "inline"
        reader = BlobReader(store, mixer=self.mixer if off_loop else None,
                            running=(lambda: self._mixer) if off_loop else None, pending=self._data_pack.member_bytes)
        catalog = Catalog(store, self._page_pack, cache, tuning.page_target, reader=reader)
        content = ContentWriter(store, self._data_pack, self._index)
        super().__init__(Parts(url, backend, history.fingerprint, store, cache, catalog, content, reader, tuning),
                         inline_max)
        self._history = history
        #: write-only clients' drops, taken into each commit
        self._ingester = Ingester(backend=backend, store=store, writers=lambda: history.writers,
                                  drop_seed=lambda e: store.sealer_for(e).keys.drop_kem,
                                  epoch_ok=lambda e: e in history.sealers,  # an old epoch's: re-sealed
                                  tree_at=self._tree_of, client_id=history.client_id)
        #: prune beside writers: this vault's lease and the W3 check before each commit
        self._guard = WriteGuard(store, self._index)
        #: rekey beside writers (models/rekey.py): new epochs' keys, W2's reload and re-seal, R1–R4
        self._epochs = Epochs(store=store, history=history, keys=keys, head=lambda: self._commits.head,
                              content=content, reader=reader, page_pack=self._page_pack,
                              new_mixer=self._drop_mixer, record=self._record)
        history.on_keystore = self._epochs.read
        self._commits = Committer(history=history, store=store, catalog=catalog, page_pack=self._page_pack,
                                  index=self._index, head=head, lock=self._lock, flush_content=content.flush,
                                  refresh_interval=tuning.refresh_interval, guard=self._guard,
                                  ingester=self._ingester, epochs=self._epochs)
        #: the vault's key slots (list, add, remove, change a passphrase): the ``key …`` commands
        self.keys = keys
        keys.on_change = self._keys_changed
        #: key slot changes made here and not yet recorded in the chain (``meta.keys``)
        self._key_changes: list[dict[str, str]] = []
        #: shown once after ``create``: the recovery code (a secret; print it for the user, never log it)
        self.recovery_code: str | None = None
        self._audit_host = False
        self._commits.audit = self._who
        catalog.roots = history.effective_root  # a rewrite's map: readers of an old generation use it
        self.rewriter = Rewriter(history=history, catalog=catalog, commits=self._commits, guard=self._guard,
                                 index=self._index, content=content, reader=reader, store=store, pages=self._page_pack)

    @property
    def audit_host(self) -> bool:
        """Whether commits record this machine's host name in their ``meta`` (default off: the
        slot and client are always recorded, the host only if the user allows it)."""
        return self._audit_host

    @audit_host.setter
    def audit_host(self, allow: bool) -> None:
        self._audit_host = bool(allow)

    def _who(self) -> dict[str, Any]:
        """The writer's ``meta`` keys: the slot that unlocked this vault, its label, the host if allowed."""
        meta: dict[str, Any] = {}
        slot = self.keys.opened_slot
        if slot:
            meta["slot"] = b64u(slot)
            label = next((s.label for s in self.keys.slots() if s.id == slot), None)
            if label is not None:
                meta["slot_label"] = label[:MAX_LABEL]
        if self._audit_host:
            meta["host"] = socket.gethostname()[:MAX_HOST]
        return meta

    def __repr__(self) -> str:
        return f"<Vault at generation {self.generation}>"  # no URL: it may carry credentials

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Vault:
        return self

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
                        ) -> None:
        try:
            if et is None and self.pending:
                await self.commit()
        finally:
            await self.aclose()

    async def _release(self) -> None:
        await self._guard.end()  # abort or close: the lease ends (uncommitted uploads become garbage)

    # --- state (the committer's) ------------------------------------------------------------

    @property
    def generation(self) -> int:
        """The generation this vault shows (the head it opened, committed or last refreshed to)."""
        return self._commits.head.gen

    @property
    def pending(self) -> bool:
        """True when there are edits not yet committed."""
        return self._commits.pending

    @property
    def refresh_interval(self) -> float | None:
        """Seconds between adopting other clients' commits before a read (None: only :meth:`refresh`)."""
        return self._commits.refresh_interval

    @refresh_interval.setter
    def refresh_interval(self, seconds: float | None) -> None:
        self._commits.refresh_interval = seconds

    def metrics(self) -> VaultMetrics:
        """A read-only snapshot of this vault's counters: backend requests, retries, pipeline stages,
        cache hits (see :mod:`.metrics`). Cheap and safe to call from any thread, even when closed."""
        return snapshot(generation=self.generation, pending=self.pending, backend=self._backend,
                        ledger=self._ledger, reader=self._reader, catalog=self._catalog, index=self._index,
                        commit_races=self._commits.lost_races, more_caches=self._cache_meters)

    def meter_cache(self, name: str, read: Callable[[], CacheCounts]) -> None:
        """Report a cache kept above the vault (the mount's chunk cache) in :meth:`metrics` as
        ``caches[name]``: ``read`` is called on every snapshot, maybe from another thread."""
        self._cache_meters[name] = read

    @property
    def cache(self) -> Cache:
        """This device's sealed local cache of the vault (dedup index, the import's file stats)."""
        return self._cache

    async def _begin_write(self, alone: bool = False) -> None:
        await self._guard.begin()
        if alone:  # W2 once a newer epoch is known, not only at the commit: nothing new goes out under a retired key
            await self._epochs.reload()

    @property
    def _tree(self) -> Tree:
        return self._commits.tree

    @_tree.setter
    def _tree(self, tree: Tree) -> None:
        self._commits.tree = tree

    @property
    def _head(self) -> ChainHead:
        return self._commits.head

    async def _adopt_newer(self, *, only_if_due: bool) -> bool:
        return await self._commits.adopt_newer(only_if_due=only_if_due)

    def head_drops(self) -> Drops | None:
        """Write-only clients' watermark as of the head, and what the head's commit ingested or refused."""
        return self._head.commit.audit.drops

    async def _tree_of(self, gen: int) -> Tree | None:
        """The catalog tree of generation ``gen``, or None if it is forgotten or does not open."""
        try:
            return self._catalog.tree(await self._history.visible(gen))
        except (NotFound, IntegrityError):
            return None

    async def rebuild_index(self) -> int:
        """Refill the local dedup index from the catalog of the head now; returns the refs added.

        Not needed after a deleted cache: the first write refills it (damaged subtrees skipped).
        """
        return await self._index.fill(force=True)

    # --- commits ----------------------------------------------------------------------------

    async def commit(self, meta: dict[str, Any] | None = None) -> int:
        """Make all edits visible as the next generation; returns it (the current one if nothing changed).
        ``meta``: more keys for the commit record's authenticated ``meta`` (e.g. the guard's score).

        On a lost race with another client: reload, three-way merge (conflicts kept as conflict
        copies), retry; see :class:`~.committer.Committer`. Raises BackendError, IntegrityError,
        RollbackError.
        """
        self._check_writable()
        changes = list(self._key_changes)
        before = self.generation
        gen = await self._commits.commit({**(meta or {}), "keys": changes} if changes else meta)
        if gen != before:  # recorded (a commit of nothing leaves them for the next one)
            del self._key_changes[: len(changes)]
            await self.finish_rekey()
        return gen

    async def rekey(self, credential: Credential | str | None = None, *, remove: bytes | None = None,
                    drop_passphrase_slots: bool = False, rewrite: bool = False) -> Rekeyed:
        """Start a new key epoch under a new KSK (revoking slot ``remove``), beside other writers, or finish
        a killed rekey; ``rewrite``: its record says a rewrite follows (:attr:`rewriter`). ``credential``:
        the one that unlocked this vault (its passphrase slot is re-wrapped). See :mod:`.rekeying`.
        UsageError (edits pending, slots that cannot be re-wrapped), ConcurrencyError, BackendError."""
        self._check_writable()
        if self.pending:
            raise UsageError("commit the pending changes before a rekey")
        return await self._epochs.rekey(Passphrase.of(credential) if isinstance(credential, str) else credential,
                                        remove=remove, drop_passphrase_slots=drop_passphrase_slots, rewrite=rewrite)

    async def finish_rekey(self) -> None:
        """The finisher: R4 of a rekey killed after R1 or R3, once a commit of the new epoch exists.
        Best effort (another client may finish it first; a read-only storage credential cannot)."""
        if self.keys.unfinished():
            with contextlib.suppress(ConcurrencyError, BackendError):
                await self._epochs.finish()

    async def _keys_changed(self, u: Unlocked, what: dict[str, str]) -> None:
        """The keys facet wrote keystore ``u``: adopt it, and record what changed in the chain (a
        record of its own, or with the commit of the pending edits), so ``audit`` names it."""
        self._history.adopt_keystore(u)
        self._key_changes.append(what)
        if self.pending:
            return
        changes = list(self._key_changes)
        await self._record({"keys": changes})
        del self._key_changes[: len(changes)]

    async def refresh(self) -> int:
        """Adopt commits made by other clients now; returns the generation.

        With edits pending, they are merged onto the newer head (as :meth:`commit` does). Reads
        also refresh by themselves every ``refresh_interval`` seconds and when a path is not found,
        but only while nothing is pending. Raises RollbackError, IntegrityError, BackendError.
        """
        self._check_open()
        return await self._commits.refresh()

    # --- history ----------------------------------------------------------------------------

    async def at(self, generation: int, *, own: bool = False) -> Snapshot:
        """A read-only view of an earlier generation: ls, stat, walk, open_read, open, get. ``own``: its
        commit's own tree, not the one a rewrite's map gives it (while a prune has kept its objects).
        Raises NotFound for a generation that does not exist yet. The snapshot shares this vault's
        connections; it needs no closing, and it fails once this vault is closed."""
        self._check_open()
        if not 0 <= generation <= self.generation:
            raise NotFound(f"generation {generation} does not exist (the newest is {self.generation})")
        return Snapshot(self, generation, self._catalog.tree(await self._history.visible(generation), own=own))

    async def diff(self, old: int, new: int | None = None) -> AsyncIterator[Change]:
        """Changes from generation ``old`` to ``new`` (default: the current tree, edits included)."""
        a = (await self.at(old))._tree
        b = self._tree if new is None else (await self.at(new))._tree
        async for change in diff_trees(a, b):
            yield change

    async def log(self, limit: int | None = None, *, changes: bool = False) -> list[LogEntry]:
        """The generations still kept (not forgotten), newest first (the newest ``limit`` of them),
        with who wrote each (v2 commits). ``changes``: also what each changed against the kept one
        before it (unchanged subtrees are not read)."""
        self._check_open()
        shown: list[int] = []
        gen = self.generation
        while gen >= 0 and (limit is None or len(shown) < limit + changes):  # one more: the base of the last
            await self._history.commit_at(gen)  # walking down: every commit above ``gen`` is verified
            if self._history.forgotten_by(gen) is None:
                shown.append(gen)
            gen -= 1
        out = []
        for i, g in enumerate(shown[:limit]):
            c = await self._history.commit_at(g)
            a = c.audit
            entry = LogEntry(g, c.time, c.client.hex()[:8], slot=None if a.slot is None else a.slot.hex(),
                             slot_label=a.slot_label, host=a.host, counts=None if a.counts is None else dict(a.counts),
                             forgot=None if a.forget is None else tuple(a.forget.generations()),
                             drops=self._drop_lines(a.drops))
            if changes:
                base = await self._history.commit_at(shown[i + 1]) if i + 1 < len(shown) else replace(c, root=())
                s = await summarize(self._catalog.tree(base), self._catalog.tree(c))  # () is the empty start
                entry = replace(entry, added=s.added, modified=s.modified, removed=s.removed, bytes=s.bytes)
            out.append(entry)
        if any(c.audit.guard is not None and c.audit.guard.suspect
               for c in [await self._history.commit_at(e.generation) for e in out]):
            marks = (await guard_state(self._history)).marks
            out = [replace(e, suspect=True, reasons=marks[e.generation]) if e.generation in marks else e for e in out]
        return out

    def _drop_lines(self, drops: Drops | None) -> tuple[str, ...]:
        if drops is None:
            return ()
        labels = {w.id: w.label for w in self._history.writers}

        def who(writer: bytes) -> str:
            return f"writer {writer.hex()[:8]}" + (f" {labels[writer]!r}" if writer in labels else "")

        return (*(f"drop {i.seq} of {who(i.writer)} → {os.fsdecode(i.dest)}: {i.files} files, {i.bytes} bytes"
                  for i in drops.ingested),
                *(f"refused drop {r.seq} of {who(r.writer)}: {r.why}" for r in drops.refused))

    async def kept_generations(self) -> frozenset[int]:
        """Every generation up to the head that no forget recorded in the chain has forgotten."""
        self._check_open()
        return await self._history.kept_generations()

    async def forget(self, rules: Rules, *, dry_run: bool = False, tz: tzinfo | None = None,
                     force: bool = False) -> ForgetReport:
        """Forget the generations ``rules`` do not keep (restic's semantics, see :mod:`.retention`;
        ``tz``: the zone of the time buckets, default local) and record the decision in the chain.

        Commits pending edits first. ``dry_run`` decides and changes nothing. Forgotten generations
        no longer show in :meth:`log` nor open with :meth:`at`; their data stays until a prune.
        The newest clean generation older than a suspect one (:mod:`.anomaly`) is never forgotten
        without ``force``: GuardRefusal (a UsageError), nothing forgotten.
        Raises UsageError for empty rules, BackendError, IntegrityError, RollbackError.
        """
        if not dry_run:
            await self.commit()
        self._check_open()
        d, records = await decide(self._history, rules, tz)
        if not force:
            st = await guard_state(self._history)
            refuse(st, d.forget)
        if dry_run or not d.forget:
            return report(d, rules, dry_run)
        chunk = next_chunk(self._history, {*d.forget, *records}, rules)
        written = []
        while (gen := await self._commits.record(chunk)) is not None:
            written.append(gen)
        return report(d, rules, dry_run, tuple(written))

    async def guard_state(self, *, scoring: bool = False) -> GuardState:
        """The guard's marks, baseline and thresholds as the chain records them (see :mod:`.anomaly`;
        ``scoring``: only the baseline and thresholds, reading the last few dozen commits)."""
        self._check_open()
        return await guard_state(self._history, scoring=scoring)

    async def guard_record(self, meta: dict[str, Any]) -> int:
        """Write a record (a commit of the head's own root) whose ``meta`` adds ``meta``: a guard clear
        or tune, or the score of a run that changed nothing. Commits pending edits first."""
        await self.commit()
        return await self._record(meta)

    async def audit(self, since: int | None = None) -> list[AuditEntry]:
        """Every commit record of the chain, oldest first, forgotten ones included: who (slot, client,
        host if recorded), when, what it changed or forgot, and where the keystore generation moved.
        ``since``: only events at or after this unix time."""
        self._check_open()
        return await audit(self._history, since)

    async def verify(self, full: bool = False) -> VerifyReport:
        """Check every generation and every object (``full``: download and authenticate everything,
        trusting no cache); see :mod:`sigmavault.engine.transfer.verify`."""
        self._check_open()
        return await verify_vault(Subject(self._history, self._backend, self._reader, self._catalog, self._head), full)

    # --- retention --------------------------------------------------------------------------

    async def prune(self, *, max_unused: float = 0.05, dry_run: bool = False,
                    progress: ProgressFn | None = None) -> PruneReport:
        """Delete every object no kept generation references, safely beside writers on other
        machines (docs/format.md, "Prune beside writers"); ``dry_run``: only report what would go.
        ``progress(stage, done, total)``. Packs whose unused share exceeds ``max_unused`` are repacked
        first (:meth:`.rewriting.Rewriter.repack`; a dry run counts them). Raises IntegrityError (a directory
        or a rewrite map that does not match: nothing is deleted), BackendError."""
        if dry_run:
            self._check_open()
        else:
            self._check_writable()
            if self.pending:  # our own uploads would be candidates, and our lease would make us wait for ourselves
                raise UsageError("commit the pending changes before pruning")
            await self._guard.end()  # nothing pending: what this vault uploaded since its last commit is garbage
        report = await self._pruner(max_unused=max_unused, dry_run=dry_run, progress=progress).run()
        if not dry_run:  # the run, in the chain: audit lists who pruned, when, and what went
            await self._record({"prune": {"deleted": report.deleted, "bytes": report.deleted_bytes,
                                          "candidates": report.candidates, "repacked": report.repacked}})
        return report

    async def _record(self, meta: dict[str, Any]) -> int:
        """Write a record: a commit of the head's own tree whose ``meta`` adds ``meta`` (a key change,
        a prune or repair run, a guard clear or tune). UsageError with edits pending."""
        self._check_writable()

        async def same(_head: ChainHead) -> dict[str, Any]:
            return meta

        gen = await self._commits.record(same)
        assert gen is not None
        return gen

    def _pruner(self, **options: Any) -> Pruner:
        """A pruner over this vault (tests pass ``ttl``, ``clock``, ``poll`` and a step ``hook``)."""
        h = self._history
        drops = None if not h.writers else DropSource(
            self._store.keys.vault_id, lambda: {w.id.hex(): w.verify_key for w in h.writers}, self._ingester.held)
        return Pruner(history=h, catalog=self._catalog, records=self._guard.records, head=self._head,
                      drops=drops, reader=self._reader, repack=self.rewriter.repack, **options)
