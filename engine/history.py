"""The commit history of one vault as this client sees it: fetch, find the head, remember it.

Wraps the pure chain checks of :mod:`commits` with the backend (``c/{gen}`` objects) and the
local high-water mark: every head this client accepts or writes is reported through
``on_advance`` so the local state (CRYPTO.md §5.3) only ever moves forward.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..backends.base import Backend, get_bounded
from . import chunked
from .commits import MAX_COMMIT, ChainHead, ChainState, Commit, find_head, opener
from .commits import commit_name as _name
from .errors import NotFound, RollbackError
from .framing import FRAME_HEADER, padme
from .objects import HDR, Sealer

#: the largest valid ``c/`` object: a body at the commit size limit, framed, padded and sealed
MAX_COMMIT_OBJECT = HDR + chunked.sealed_len(padme(FRAME_HEADER + MAX_COMMIT))


@dataclass
class History:
    backend: Backend
    sealers: Mapping[int, Sealer]
    vault_id: bytes
    fingerprint: bytes
    keystore_gen: int
    client_id: bytes
    on_advance: Callable[[ChainHead], None]

    def __post_init__(self) -> None:
        self.open_commit = opener(self.sealers)

    async def fetch(self, gen: int) -> bytes | None:
        try:
            return await get_bounded(self.backend, _name(gen), MAX_COMMIT_OBJECT)
        except NotFound:
            return None

    async def find_head(self, since: ChainHead | ChainState | None) -> ChainHead:
        """The newest verified head at or after ``since``. Raises RollbackError, IntegrityError."""
        state = since.state if isinstance(since, ChainHead) else since
        head = await find_head(state, self.fetch, self.open_commit)
        if head is None:
            raise RollbackError("the vault has no commits: its history was deleted or withheld")
        self.on_advance(head)
        return head

    def advance(self, head: ChainHead) -> None:
        self.on_advance(head)

    async def commit_at(self, gen: int) -> Commit:
        data = await self.fetch(gen)
        if data is None:
            raise RollbackError(f"commit {gen} is missing from the storage")
        return self.open_commit(gen, data)
