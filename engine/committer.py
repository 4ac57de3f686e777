"""The commit protocol of one vault front: the next generation, lost answers, other clients' commits.

A :class:`Committer` owns the head a vault shows, its working tree and the commit records whose
answer was lost (``unsure``). :meth:`commit` flushes the content, writes the changed catalog pages
and then ``c/{head+1}`` with a create-only put (DESIGN.md §6, CRYPTO.md §5.2). Losing that race
reloads the new head, merges three ways and tries the next generation; a commit of ours whose
answer was lost is recognised by its bytes and is never merged as a rival's. :meth:`refresh`
adopts other clients' commits. Modelled in ``models/commit.py`` (``commit``, ``_holds``,
``_catch_up``, ``refresh`` are the model's writer steps): change both together.

Every record it writes is v2: ``meta`` carries who wrote it (``audit()``: the slot, its label, the
host if allowed) and, for a commit of edits, the files it added, changed and removed. :meth:`record`
writes a commit of the head's own root whose ``meta`` says something about the history (a forget).

Cancellation: a cancelled commit leaves the vault at its last commit; a commit record that may
have landed is remembered as unsure.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from .catalog.diff import file_counts
from .catalog.pagestore import Catalog
from .catalog.tree import Tree, merge
from .content.index import BlobIndex
from .errors import UsageError, VaultError
from .format.commits import ChainHead, Commit, commit_name, seal_commit, verify_successor
from .format.dropmeta import Drops
from .format.pages import BlobRef
from .guard import WriteGuard
from .ingest import Ingester, Plan
from .rekeying import Epochs
from .repo.history import History
from .repo.packs import PackWriter
from .repo.store import ObjectStore


def backoff(lost: int) -> float:
    """Seconds to wait after the ``lost``-th lost race in a row (0-based): full jitter, uniform in
    [0, 5 ms × 2^lost], capped at 1 s."""
    return secrets.randbelow(min(1000, 5 << min(lost, 8)) + 1) / 1000


RACE_BUDGET = 600.0  # seconds a commit keeps merging and retrying lost races before it gives up


def attempts(budget: float = RACE_BUDGET) -> Iterator[int]:
    """Attempt numbers for a commit racing other writers: at least 64, and on for ``budget``
    seconds (a busy machine with many writers loses many races; a count alone would give up)."""
    deadline = time.monotonic() + budget
    n = 0
    while n < 64 or time.monotonic() < deadline:
        yield n
        n += 1


class Committer:
    """Writes the next generation of one vault and adopts other clients' (see the module doc)."""

    def __init__(self, *, history: History, store: ObjectStore, catalog: Catalog, page_pack: PackWriter,
                 index: BlobIndex, head: ChainHead, lock: asyncio.Lock,
                 flush_content: Callable[[], Awaitable[None]], refresh_interval: float | None,
                 guard: WriteGuard | None = None, ingester: Ingester | None = None,
                 epochs: Epochs | None = None) -> None:
        self._history = history
        self._store = store
        self._catalog = catalog
        self._page_pack = page_pack
        self._index = index
        self._flush_content = flush_content
        self._guard = guard  # prune beside writers: the lease and the W3 check (models/prune.py)
        self._ingester = ingester  # write-only clients' drops, taken into each commit (models/drops.py)
        self._epochs = epochs  # a rekey beside writers: W2's reload and re-seal (models/rekey.py)
        self.head = head
        self.tree = catalog.tree(head.commit)
        self.lock = lock  # the vault's edit lock: a commit sees no half-made edit
        #: commit records sent whose answer was lost, by generation: if one landed it is ours
        self._unsure: dict[int, bytes] = {}
        #: seconds between adopting other clients' commits before a read (None: only :meth:`refresh`)
        self.refresh_interval = refresh_interval
        self._refreshed = time.monotonic()
        #: commit attempts lost to another client's commit (each one merged and retried)
        self.lost_races = 0
        #: who writes (``meta`` keys: slot, slot_label, host), asked at each commit
        self.audit: Callable[[], dict[str, Any]] = dict
        #: the commit time (unix seconds); tests inject one to build histories without waiting
        self.clock: Callable[[], float] = time.time

    @property
    def pending(self) -> bool:
        """True when the working tree has edits not yet committed."""
        return self.tree.root.dirty

    def _tree_at(self, c: Commit) -> Tree:
        return self._catalog.tree(c, own=True)  # the working tree's own base (a rewrite maps it elsewhere)

    async def commit(self, meta: dict[str, Any] | None = None) -> int:
        """Make all edits visible as the next generation; returns it (the current one if nothing changed).
        ``meta``: more keys for this commit's ``meta`` (the guard's score of the run).

        On a lost race with another client: reload, three-way merge (conflicts kept as conflict
        copies), retry. Raises BackendError, IntegrityError, RollbackError.
        """
        async with self.lock:
            plan = await self._plan()
            if not self.pending and (plan is None or plan.empty):
                return self.head.gen
            base = self._tree_at(self.head.commit)
            if self._guard is not None:
                await self._guard.begin()  # W1: a metadata-only commit uploads page packs too
            for _attempt in attempts():
                # a keystore rewritten elsewhere must be seen before we commit under it (CRYPTO.md §5.2 step 3)
                await self._history.reread_keystore()
                if self._epochs is not None:
                    await self._epochs.reload()  # W2: a newer epoch's keys seal from now on
                if plan is not None and (plan.head is not self.head or plan.keystore_gen != self._history.keystore_gen):
                    plan = await self._plan()  # a lost race or new keys: plan again from the head's watermark
                tree, extra = self.tree, dict[str, Any]()
                if plan is not None and not plan.empty:
                    assert self._ingester is not None
                    tree, drops = await self._ingester.apply(plan, self.tree)
                    extra = {"drops": drops.to_json()}
                if self._epochs is not None:
                    await self._epochs.reseal(tree, base)  # W2: nothing newly referred to of an older epoch
                counts = await file_counts(base, tree)  # ``base`` is the head's tree here
                await self._flush_content()
                root = await self._catalog.save(tree)
                await self._page_pack.flush()
                if self._guard is not None:
                    await self._guard.before_commit(tree)  # W3: rescue marked refs, or copy and restore
                if await self._land(root, {**self.audit(), "counts": counts, **(meta or {}), **extra}):
                    self.tree = tree
                    self.tree.mark_clean()
                    self._index.committed(self.head.gen)
                    if self._guard is not None:
                        await self._guard.end()  # W4: committed, the lease ends
                    return self.head.gen
                # another client won generation ``gen``: merge onto the new head and try the next one,
                # after a random pause that grows with each loss (many writers must not livelock)
                self.lost_races += 1
                base = await self._catch_up(base)
                await asyncio.sleep(backoff(_attempt))
            raise VaultError("could not commit: the vault keeps changing under us; try again")

    async def _plan(self) -> Plan | None:
        """The drops the next commit on the head takes (None: the vault has no write-only clients),
        with the keystore held now; each attempt rereads the keystore first and plans again when it
        is newer (a writer removed on another device is refused from then on)."""
        if self._ingester is None or not self._ingester.any_writers():
            return None
        return await self._ingester.plan(self.head, self._history.keystore_gen)

    async def _land(self, root: Sequence[BlobRef], meta: dict[str, Any]) -> bool:
        """Write ``c/{head+1}`` (v2, ``meta``) create-only; True if it is ours (then it is the head)."""
        gen = self.head.gen + 1
        carried = self.head.commit.audit.drops
        if "drops" not in meta and carried is not None:  # every commit carries the drops' watermark forward
            meta = {**meta, "drops": Drops(carried.mark).to_json()}
        c = Commit(self._history.vault_id, gen, self.head.hash, self._store.epoch, self._history.keystore_gen,
                   tuple(root), self._history.client_id, int(self.clock()), meta)
        data = seal_commit(self._store.sealer, c)
        try:
            created = await self._store.put(commit_name(gen), data)
        except BaseException:
            self._unsure[gen] = data  # it may have landed though we saw an error
            raise
        # a retried put whose first answer was lost finds our own bytes there: we won
        if not created and not await self._holds(gen, data):
            return False
        self.head = verify_successor(self.head, gen, data, self._history.open_commit)
        self._history.advance(self.head)
        self._unsure.clear()
        return True

    async def record(self, decide: Callable[[ChainHead], Awaitable[dict[str, Any] | None]], *,
                     root: Callable[[ChainHead], Sequence[BlobRef]] | None = None) -> int | None:
        """Write a commit of the head's own root whose ``meta`` adds ``decide(head)`` (asked again
        against the new head after a lost race); None if ``decide`` finds nothing to record.
        ``root``: the root to commit instead, asked after ``decide`` (a rewrite's completing commit:
        the head's tree rewritten). UsageError with edits pending (commit them first)."""
        async with self.lock:
            if self.pending:
                raise UsageError("commit the pending edits first")
            for _attempt in attempts():
                await self._history.reread_keystore()
                if self._epochs is not None:
                    await self._epochs.reload()
                extra = await decide(self.head)
                if extra is None:
                    return None
                if await self._land(self.head.commit.root if root is None else root(self.head),
                                    {**self.audit(), **extra}):
                    if root is not None:
                        self.tree = self._tree_at(self.head.commit)
                        self._index.committed(self.head.gen)
                    return self.head.gen
                self.lost_races += 1
                await self._catch_up(self._tree_at(self.head.commit))
                await asyncio.sleep(backoff(_attempt))
            raise VaultError("could not commit: the vault keeps changing under us; try again")

    async def _holds(self, gen: int, data: bytes) -> bool:
        """Whether ``c/{gen}`` holds exactly ``data`` (sealing is randomised: equal bytes are ours)."""
        found = await self._history.fetch(gen)
        return found is not None and hmac.compare_digest(found, data)

    async def _catch_up(self, base: Tree) -> Tree:
        """Move to the newest head, merging the pending edits onto it; returns the new merge base.

        A commit of ours whose answer was lost (``_unsure``) is our base, not theirs: merging it
        as theirs would turn our own edits that others have since replaced into conflict copies.
        """
        nxt = self.head.gen + 1
        sent = self._unsure.pop(nxt, None)
        if sent is not None and await self._holds(nxt, sent):
            self.head = verify_successor(self.head, nxt, sent, self._history.open_commit)
            self._history.advance(self.head)
            base = self._tree_at(self.head.commit)
        new_head = await self._history.find_head(self.head)
        if new_head.gen != self.head.gen:
            theirs = self._tree_at(new_head.commit)
            # a rewrite since (its map is verified now) changed the refs of every file of our base:
            # judge their changes against our base rewritten, ours against the base itself
            rebased = self._catalog.tree(self.head.commit)
            same = [p.id for p in rebased.root.pages] == [p.id for p in base.root.pages]
            self.tree = await merge(base, self.tree, theirs, self._history.client_id,
                                    theirs_base=None if same else rebased)
            base = theirs
            self.head = new_head
        return base

    async def refresh(self) -> int:
        """Adopt commits made by other clients now; returns the generation.

        With edits pending, they are merged onto the newer head (as :meth:`commit` does).
        Raises RollbackError, IntegrityError, BackendError.
        """
        self._refreshed = time.monotonic()
        async with self.lock:
            if self.pending:
                await self._catch_up(self._tree_at(self.head.commit))
                return self.head.gen
            new_head = await self._history.find_head(self.head)
            if new_head.gen != self.head.gen:
                self.tree = self._tree_at(new_head.commit)
                self.head = new_head
            return self.head.gen

    async def adopt_newer(self, *, only_if_due: bool) -> bool:
        """Adopt other clients' commits (never over pending edits, never with refreshing off);
        ``only_if_due``: only once ``refresh_interval`` has passed. True if newer."""
        if self.refresh_interval is None or self.pending:
            return False
        if only_if_due and time.monotonic() - self._refreshed < self.refresh_interval:
            return False
        before = self.head.gen
        return await self.refresh() != before
