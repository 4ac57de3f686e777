"""Rekey beside writers (docs/format.md, "Rekey beside writers"; modelled in ``models/rekey.py``).

:class:`Epochs` is one vault's part of the protocol; change it together with the model:

- the rekeyer (:meth:`Epochs.rekey`): (R1) keystore kg+1 under a new KSK whose current epoch is
  e+1, e still active (:meth:`..repo.keymgmt.Keys.rekey`); (R2, R3) the rekey record ``c/{g+1}``
  under e+1 through the committer's record path (a lost race merges and tries the next
  generation); (R4) keystore kg+2 with ``retired_at_gen(e)`` = the generation before the first
  commit of a newer epoch (:meth:`Epochs.finish`). Run again after a kill, it resumes at R2.
- the finisher: any client that finds a commit of a newer epoch while its keystore leaves an older
  one active finishes R4 (after each of its commits, and when it opens the vault).
- writers (W1, W2): a newer keystore read from the storage is adopted (:meth:`Epochs.read`: its
  epochs' keys, the held KSK); before a commit, and when a write starts with no other under way,
  :meth:`Epochs.reload` stores what is open under the old epoch and seals under the new one from
  then on, and :meth:`Epochs.reseal` re-seals what the commit would newly refer to of an older
  epoch (:mod:`.reseal`; ingested drops of an older epoch too). The committer calls both on every
  attempt; the vault calls ``reload`` as a write starts alone (``Vault._begin_write``).
- readers: a commit's epoch is at least its parent's (:func:`.format.commits.check_epoch_order`),
  and a retired epoch's commits lie at or below ``retired_at_gen`` (``History.epoch_allowed``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .catalog.tree import Tree
from .content.writer import ContentWriter
from .errors import ConcurrencyError, UsageError
from .format.canonical import b64u
from .format.commits import ChainHead
from .format.refs import Blob
from .keys.credentials import Credential
from .keys.keystore import SlotInfo, Unlocked
from .repo.history import History
from .repo.keymgmt import Keys
from .repo.packs import PackWriter
from .repo.reader import BlobReader
from .repo.store import ObjectStore
from .reseal import reseal


@dataclass(frozen=True, slots=True)
class Rekeyed:
    """What a rekey did (no secrets)."""

    epoch: int  # the current epoch now
    record: int | None  # the generation of the rekey record (None: a resumed rekey found one)
    retired: dict[int, int]  # old epoch -> its retired_at_gen
    keystore_generation: int
    removed: SlotInfo | None  # the revoked slot
    dropped: tuple[SlotInfo, ...]  # passphrase slots that could not be re-wrapped
    stale: int  # older keystore copies that could not be deleted
    resumed: bool  # an earlier, killed rekey was finished

    @property
    def exposed_through(self) -> int | None:
        """The newest generation readable with the old epochs' keys: a revoked party that copied
        the storage may hold everything up to it (and nothing written after it)."""
        return max(self.retired.values()) if self.retired else None


class Epochs:
    """One vault's side of the rekey protocol (see the module doc)."""

    def __init__(self, *, store: ObjectStore, history: History, keys: Keys, head: Callable[[], ChainHead],
                 content: ContentWriter, reader: BlobReader, page_pack: PackWriter,
                 new_mixer: Callable[[], Awaitable[None]], record: Callable[[dict[str, Any]], Awaitable[int]]) -> None:
        self._store, self._history, self._keys, self._head = store, history, keys, head
        self._content, self._reader, self._page_pack = content, reader, page_pack
        self._new_mixer, self._record = new_mixer, record

    async def _copy(self, b: Blob) -> Blob:
        return await self._content.reseal(await self._reader.read(b))

    def read(self, u: Unlocked) -> None:
        """A newer keystore (read from the storage or written here): hold it, read its epochs."""
        self._keys.adopt(u)
        self._history.adopt_keystore(u)
        for e in u.keyring.epochs:
            if e.root_key is not None and e.epoch not in self._history.sealers:
                self._history.sealers[e.epoch] = self._store.add_epoch(u.epoch_keys(e.epoch))

    async def reload(self) -> bool:
        """W2: when the keystore held names a newer current epoch than new objects are sealed under,
        store what is open under the old epoch and seal under the new one from now on."""
        if self._keys.epoch == self._store.epoch:
            return False
        await self._content.flush()  # what is open is sealed under the old epoch, as its refs say
        await self._page_pack.flush()
        if self._keys.epoch == self._store.epoch:
            return False  # switched meanwhile (a commit and a write starting): the new mixer may be in use
        self._store.use_epoch(self._keys.epoch)
        await self._new_mixer()
        return True

    async def reseal(self, tree: Tree, base: Tree) -> int:
        """W2: re-seal what ``tree`` would newly refer to of an older epoch than the current one."""
        if len(self._history.sealers) < 2:
            return 0  # one epoch: nothing can be older
        return await reseal(tree, base, self._store.epoch, self._copy)

    async def finish(self) -> dict[int, int]:
        """R4 (the rekeyer's, or any client's as the finisher): retire every older active epoch at
        the generation before the first commit of a newer one, if such a commit exists. Returns
        the epochs retired here and their ``retired_at_gen``."""
        pending = self._keys.unfinished()
        head = self._head()
        if not pending or head.commit.epoch <= min(pending):
            return {}
        first: dict[int, int] = {}
        gen = head.gen
        while gen >= 0:
            c = head.commit if gen == head.gen else await self._history.commit_at(gen)
            if c.epoch <= min(pending):
                break
            first.update({e: gen for e in pending if e < c.epoch})
            gen -= 1
        change = await self._keys.retire(first)
        if change is None:
            return {}
        self.read(change.vault)
        return {e: g - 1 for e, g in first.items()}

    async def rekey(self, credential: Credential | None, *, remove: bytes | None = None,
                    drop_passphrase_slots: bool = False, rewrite: bool = False) -> Rekeyed:
        """Start epoch e+1 (R1–R4), revoking slot ``remove`` in the same keystore; or, when an
        earlier rekey was killed, finish that one. ``rewrite``: the record says a rewrite follows
        (:mod:`.rewriting`). UsageError, ConcurrencyError, BackendError."""
        resumed = bool(self._keys.unfinished())
        if resumed and remove is not None:
            raise UsageError("an earlier rekey is not finished: run `sigmavault rekey` to finish it first")
        removed: SlotInfo | None = None
        dropped: tuple[SlotInfo, ...] = ()
        stale = 0
        if not resumed:
            change, rotated = await self._keys.rekey(credential, remove=remove,
                                                     drop_passphrase_slots=drop_passphrase_slots)
            self.read(change.vault)
            removed, dropped, stale = rotated.removed, rotated.dropped, change.stale
        epoch = self._keys.epoch
        record = None
        if not resumed or self._head().commit.epoch < epoch:
            meta: dict[str, Any] = {"rekey": {"epoch": epoch, "rewrite": True} if rewrite else {"epoch": epoch}}
            if removed is not None:
                meta["keys"] = [{"op": "remove", "slot": b64u(removed.id), "type": removed.type,
                                 "label": removed.label[:256]}]
            record = await self._record(meta)  # R2, R3 (the record path reloads: it lands under e+1)
        pending = self._keys.unfinished()
        try:
            await self.finish()
        except ConcurrencyError:  # another client wrote a keystore first (a finisher, maybe): read it, go on
            await self._history.reread_keystore()
            await self.finish()
        retired = {e.epoch: e.retired_at_gen for e in self._history.epochs or ()
                   if e.epoch in pending and e.retired_at_gen is not None}
        return Rekeyed(epoch, record, retired, self._keys.generation, removed, dropped, stale, resumed)
