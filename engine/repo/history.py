"""The commit history of one vault as this client sees it: fetch, find the head, remember it.

Wraps the pure chain checks of :mod:`commits` with the backend (``c/{gen}`` objects) and the
local high-water mark: every head this client accepts or writes is reported through
``on_advance`` so the local state (CRYPTO.md §5.3) only ever moves forward.

Every commit it hands out is checked against the hash chain from the verified head: an older
generation is accepted only if the SHA-256 of its exact bytes is the ``parent`` of the verified
commit above it (walking down from the head and remembering each verified hash), so a forked or
replaced ``c/{g}`` under an honest head is a RollbackError, never a snapshot to restore.

The reader rules of CRYPTO.md §5.1 are applied to every commit opened: the epoch must be active, or
retired with ``gen ≤ retired_at_gen``, and at least its parent's (docs/format.md, "Rekey beside
writers"); ``keystore_gen`` must not exceed the keystore held (a higher one, or a commit sealed
under an epoch this client has no key for, makes it re-read ``k/`` once; if no newer keystore
authenticates, the commit names a keystore that is withheld: IntegrityError).

Forgetting (v2 commits whose ``meta`` carries ``forget``) hides generations: a forget names only
generations older than itself, so whether ``g`` is forgotten depends on the commits above ``g``
alone, which reading ``g`` through the chain verifies anyway. :meth:`visible` is :meth:`commit_at`
for what a user may see (NotFound for a forgotten generation); :meth:`kept_generations` is the
set a garbage collector must keep.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field

from ...backends.base import Backend, get_bounded
from ..errors import AuthError, IntegrityError, NotFound, RollbackError
from ..format import aead as chunked
from ..format.canonical import MAX_DOCUMENT
from ..format.commits import (
    MAX_COMMIT,
    ChainHead,
    ChainState,
    Commit,
    check_epoch_order,
    find_head,
    object_hash,
    opener,
    peek_epoch,
)
from ..format.commits import commit_name as _name
from ..format.envelope import HDR, Sealer
from ..format.framing import FRAME_HEADER, padme
from ..format.meta import Forget
from ..format.pages import BlobRef
from ..format.rewritemap import RewriteMap
from ..keys.keyring import Epoch
from ..keys.keystore import Unlocked
from ..keys.writers import Writer

#: the largest valid ``c/`` object: a body at the commit size limit, framed, padded and sealed
MAX_COMMIT_OBJECT = HDR + chunked.sealed_len(padme(FRAME_HEADER + MAX_COMMIT))

_BATCH = 32  # commits fetched at once when walking down the chain to an old generation

Reauth = Callable[[str, bytes], Unlocked]
"""Authenticate keystore object ``(name, bytes)`` with the held KSK (or the credential that opened the
vault, after a rekey elsewhere drew a new KSK) and the pin; AuthError if neither fits. Blocking."""


def keystore_generation(name: str) -> int | None:
    """The generation in a ``k/{gen:016x}`` name, or None for any other name."""
    tail = name[2:]
    if not name.startswith("k/") or len(tail) != 16 or tail.strip("0123456789abcdef"):
        return None
    return int(tail, 16)


@dataclass
class History:
    backend: Backend
    sealers: dict[int, Sealer]
    vault_id: bytes
    fingerprint: bytes
    keystore_gen: int
    client_id: bytes
    on_advance: Callable[[ChainHead], None]
    #: the keyring's epochs (state, ``retired_at_gen``); None: no epoch rule (bare engine tests)
    epochs: tuple[Epoch, ...] | None = None
    #: re-reads a newer keystore with the held key (None: never re-read)
    reauth: Reauth | None = field(default=None, repr=False)
    #: the keyring's write-only clients (tombstones included), as of the keystore read last
    writers: tuple[Writer, ...] = ()
    #: told of each newer keystore read from the storage (the vault adds its epochs' keys)
    on_keystore: Callable[[Unlocked], None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.open_commit = opener(self.sealers, self.epoch_allowed)
        self._verified: dict[int, tuple[bytes, Commit]] = {}  # gen -> (object hash, commit), chain-checked
        self._top = -1
        self._forgets: dict[int, Forget] = {}  # gen of a verified forget record -> what it forgot
        self._maps: dict[int, RewriteMap] = {}  # gen of a verified rewrite's completing commit -> its map

    def epoch_allowed(self, epoch: int, gen: int) -> bool:
        if self.epochs is None:
            return True
        for e in self.epochs:
            if e.epoch == epoch:
                if e.state == "active":
                    return True
                return e.state == "retired" and e.retired_at_gen is not None and gen <= e.retired_at_gen
        return False

    async def fetch(self, gen: int) -> bytes | None:
        try:
            data = await get_bounded(self.backend, _name(gen), MAX_COMMIT_OBJECT)
        except NotFound:
            return None
        try:
            epoch = peek_epoch(data)
        except IntegrityError:
            return data  # opening it says so
        if epoch not in self.sealers:
            await self.reread_keystore()  # W1: a commit of a newer epoch (a rekey elsewhere): its keys
        return data

    async def find_head(self, since: ChainHead | ChainState | None) -> ChainHead:
        """The newest verified head at or after ``since``. Raises RollbackError, IntegrityError."""
        state = since.state if isinstance(since, ChainHead) else since
        head = await find_head(state, self.fetch, self.open_commit)
        if head is None:
            raise RollbackError("the vault has no commits: its history was deleted or withheld")
        await self._check_keystore_gen(head.commit)
        self.advance(head)
        return head

    def advance(self, head: ChainHead) -> None:
        if head.gen > self._top:
            self._top = head.gen
        self._remember(head.gen, head.hash, head.commit)
        self.on_advance(head)

    def _remember(self, gen: int, digest: bytes, c: Commit) -> None:
        self._verified[gen] = (digest, c)
        if c.audit.forget is not None:
            self._forgets[gen] = c.audit.forget
        if c.audit.rewrite is not None:
            self._maps[gen] = c.audit.rewrite

    def effective_root(self, c: Commit) -> tuple[BlobRef, ...]:
        """The root every reader of generation ``c.gen`` uses: the one the newest verified rewrite map
        gives it (docs/format.md, "Rewriting under the new epoch"), else its own. Only complete once
        every commit above it is verified (:meth:`visible`, :meth:`kept_generations` see to it)."""
        maps = self.maps_of(c.gen)
        return maps[-1][1] if maps else c.root

    def maps_of(self, gen: int) -> list[tuple[int, tuple[BlobRef, ...]]]:
        """Every verified map that names ``gen``, oldest first: its commit's generation and the root it
        gives (the last is the effective one; prune checks it against the earlier roots still stored)."""
        out = []
        for by in sorted(self._maps):
            root = self._maps[by].root(gen) if by > gen else None
            if root is not None:
                out.append((by, root))
        return out

    @property
    def top(self) -> int:
        """The highest verified generation (the head this client last accepted or wrote)."""
        return self._top

    async def _read_above(self, gen: int) -> None:
        """Verify every commit from the head down to ``gen`` (fills the holes a head probe leaves)."""
        for g in range(self._top, gen - 1, -1):
            if g not in self._verified:
                await self.commit_at(g)  # walks down from the nearest verified commit above ``g``

    def forgotten_by(self, gen: int) -> int | None:
        """The generation of the forget record that forgot ``gen``, or None. Only meaningful once
        every commit above ``gen`` is verified (:meth:`visible`, :meth:`kept_generations` see to it)."""
        for by, f in self._forgets.items():
            if by > gen and gen in f:
                return by
        return None

    async def visible(self, gen: int) -> Commit:
        """:meth:`commit_at` for a generation a user may see: NotFound if a later commit forgot it."""
        c = await self.commit_at(gen)
        await self._read_above(gen)
        by = self.forgotten_by(gen)
        if by is not None:
            raise NotFound(f"generation {gen} was forgotten (by generation {by}); see `sigmavault log`")
        return c

    async def kept_generations(self) -> frozenset[int]:
        """Every generation up to the head minus every one forgotten along the chain from the head:
        what ``log``/``at`` may still show and what a garbage collector must keep the data of."""
        if self._top < 0:
            return frozenset()
        await self._read_above(0)
        gone: set[int] = set()
        for f in self._forgets.values():
            gone.update(f.generations())
        return frozenset(set(range(self._top + 1)) - gone)

    async def commit_at(self, gen: int) -> Commit:
        """Commit ``gen``, verified against the parent-hash chain from the verified head.

        Raises NotFound (beyond the head), RollbackError (missing, forked or replaced commit),
        IntegrityError (fails to open, or breaks a reader rule).
        """
        if not 0 <= gen <= self._top:
            raise NotFound(f"generation {gen} does not exist (the newest is {self._top})")
        above = gen
        while above not in self._verified:
            above += 1  # the head is always verified, so this stops
        fetched: dict[int, bytes | None] = {}
        for g in range(above - 1, gen - 1, -1):
            if g not in fetched:  # fetch the next batch of links concurrently; check them in order
                batch = range(g, max(gen, g - _BATCH) - 1, -1)
                fetched = dict(zip(batch, await asyncio.gather(*(self.fetch(x) for x in batch)), strict=True))
            parent = self._verified[g + 1][1].parent
            data = fetched[g]
            if data is None:
                raise RollbackError(f"commit {g} is missing from the storage (withheld or deleted)")
            digest = object_hash(data)
            if parent is None or not hmac.compare_digest(digest, parent):
                raise RollbackError(f"commit {g} does not belong to the verified history "
                                    "(a forked or replaced commit)")
            c = self.open_commit(g, data)
            check_epoch_order(c, self._verified[g + 1][1])
            await self._check_keystore_gen(c)
            self._remember(g, digest, c)
        return self._verified[gen][1]

    def verified_hash(self, gen: int) -> bytes | None:
        """The SHA-256 of ``c/{gen}`` as verified by the chain (None if not read yet)."""
        hit = self._verified.get(gen)
        return None if hit is None else hit[0]

    async def _check_keystore_gen(self, c: Commit) -> None:
        if c.keystore_gen <= self.keystore_gen:
            return
        await self.reread_keystore()
        if c.keystore_gen > self.keystore_gen:
            raise IntegrityError(f"commit {c.gen} names keystore generation {c.keystore_gen}, but the newest "
                                 f"keystore is generation {self.keystore_gen}: a keystore is withheld")

    def adopt_keystore(self, u: Unlocked) -> None:
        """A newer keystore this client read or wrote: its generation, epochs and writers from now on."""
        if u.generation > self.keystore_gen:
            self.keystore_gen = u.generation
            self.epochs = u.keyring.epochs
            self.writers = u.keyring.writers

    async def reread_keystore(self) -> None:
        """Adopt a newer keystore generation from the storage if the held key authenticates it.

        A newer keystore that neither the held key nor the credential that opened the vault opens
        (a revocation elsewhere) raises AuthError: the vault must be opened again with a credential
        before this client may commit. A newer epoch is adopted (W2 of a rekey: the committer
        re-seals what it uploaded under an older one).
        """
        if self.reauth is None:
            return
        newer = sorted(g for g in [keystore_generation(n) async for n in self.backend.list("k/")]
                       if g is not None and g > self.keystore_gen)
        for gen in reversed(newer):
            name = f"k/{gen:016x}"
            try:
                data = await get_bounded(self.backend, name, MAX_DOCUMENT)
            except NotFound:
                continue  # deleted while we looked: an older one may still be there
            try:
                u = await asyncio.to_thread(self.reauth, name, data)
            except AuthError:
                raise AuthError(f"the vault's keys were changed on another device (keystore generation {gen}): "
                                "open the vault again with your credential") from None
            self.adopt_keystore(u)
            if self.on_keystore is not None:
                self.on_keystore(u)
            return
