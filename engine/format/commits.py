"""Commit records and hash-chain verification: CRYPTO.md §5.1 and §5.3 (pure, no backend I/O).

A commit is the object ``c/{gen:016x}`` of kind 0x03 (``KIND_COMMIT``), framed with a 1 KiB pad
floor and sealed by :class:`~sigmavault.engine.format.envelope.Sealer` under the epoch's ``commit-enc`` key;
the name is bound in the AEAD context, so a commit cannot be replayed under another name. Body,
canonical JSON (sorted keys, no whitespace, integers only, unpadded base64url)::

    {"client":b64u(16 B),"epoch":e,"gen":g,"keystore_gen":kg,
     "meta":{…} (v2 only: who, counts, forget; see :mod:`.meta`),
     "parent":b64u(SHA-256(exact object bytes of c/{g-1})) | null (only at g = 0),
     "root":[kind-2 blob refs of the root directory's pages],"time":unix seconds,"v":1 | 2,
     "vault_id":b64u(32 B)}

Readers accept v1 (no ``meta``) and v2 (``meta`` required); writers write v2.

Chain rule (§5.3): the client keeps a high-water mark ``(max_gen, head_hash)``. A head below
``max_gen``, a different ``c/{max_gen}``, a missing link, or a ``parent`` that is not the hash
of the commit before it is a rollback or fork: :class:`RollbackError`. A commit that fails to
open or parse is an :class:`IntegrityError`. An honest advance yields the new head.
Fetching is injected (``fetch(gen) -> bytes | None``, ``None`` = absent), so this module never
touches a backend. The keystore-generation check of §5.1 is the caller's: a commit naming a
newer keystore means "fetch the keystore first", not "reject".
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import IntegrityError, RollbackError
from ..keys.schedule import KIND_COMMIT, KIND_PAGE_PACK
from .canonical import array, b64u, dumps, fail, integer, loads, obj, unb64u
from .envelope import FORMAT, HDR, SUITE, Sealer
from .meta import Audit, audit_of
from .pages import BlobRef, ref_from_json, ref_to_json

COMMIT_PAD_FLOOR = 1024
MAX_GEN = (1 << 63) - 1
MAX_COMMIT = 1 << 20  # body size limit (canonical.MAX_DOCUMENT)
VAULT_ID_LEN = 32
CLIENT_ID_LEN = 16
HASH_LEN = 32
MAX_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z: `log` and `history` must be able to show any commit's time

def commit_name(gen: int) -> str:
    """The object name ``c/{gen:016x}``."""
    if type(gen) is not int or not 0 <= gen <= MAX_GEN:
        raise ValueError("generation out of range")
    return f"c/{gen:016x}"


def object_hash(data: bytes | bytearray | memoryview) -> bytes:
    """SHA-256 of a commit object's exact bytes: what the next commit's ``parent`` holds."""
    return hashlib.sha256(data).digest()


@dataclass(frozen=True, slots=True)
class Commit:
    """A decoded commit body (§5.1). ``parent`` is ``None`` exactly at generation 0."""

    vault_id: bytes
    gen: int
    parent: bytes | None
    epoch: int
    keystore_gen: int
    root: tuple[BlobRef, ...]
    client: bytes
    time: int
    #: the v2 ``meta`` object as decoded (unknown keys kept; do not mutate); None: a v1 record
    meta: dict[str, Any] | None = None
    #: the known keys of ``meta``, checked and typed (derived, not encoded)
    audit: Audit = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.vault_id, bytes) or len(self.vault_id) != VAULT_ID_LEN:
            raise ValueError("vault id must be 32 bytes")
        if not isinstance(self.client, bytes) or len(self.client) != CLIENT_ID_LEN:
            raise ValueError("client id must be 16 bytes")
        for value, hi in ((self.gen, MAX_GEN), (self.epoch, (1 << 32) - 1), (self.keystore_gen, MAX_GEN),
                          (self.time, MAX_TIME)):
            if type(value) is not int or not 0 <= value <= hi:
                raise ValueError("integer field out of range")
        if (self.gen == 0) != (self.parent is None):
            raise ValueError("parent is null exactly at generation 0")
        if self.parent is not None and (not isinstance(self.parent, bytes) or len(self.parent) != HASH_LEN):
            raise ValueError("parent must be a SHA-256 hash")
        if any(not isinstance(r, BlobRef) or r.kind != KIND_PAGE_PACK for r in self.root):
            raise ValueError("root lists kind-2 page refs")
        object.__setattr__(self, "audit", audit_of(self.meta, self.gen))  # IntegrityError if malformed


def encode_commit(c: Commit) -> bytes:
    """The canonical body bytes of ``c``."""
    body: dict[str, Any] = {
        "v": 1 if c.meta is None else 2, "vault_id": b64u(c.vault_id), "gen": c.gen,
        "parent": None if c.parent is None else b64u(c.parent),
        "epoch": c.epoch, "keystore_gen": c.keystore_gen, "root": [ref_to_json(r) for r in c.root],
        "client": b64u(c.client), "time": c.time,
    }
    if c.meta is not None:
        body["meta"] = c.meta
    return dumps(body)


_FIELDS = {"v", "vault_id", "gen", "parent", "epoch", "keystore_gen", "root", "client", "time"}


def decode_commit(data: bytes | bytearray | memoryview) -> Commit:
    """Parse untrusted canonical body bytes. Raises IntegrityError and nothing else."""
    raw = bytes(data)
    parsed = loads(raw, limit=MAX_COMMIT)
    version = parsed.get("v") if isinstance(parsed, dict) else None
    if type(version) is not int or version not in (1, 2):
        fail("commit version")
    f = obj(parsed, _FIELDS | {"meta"} if version == 2 else _FIELDS)
    try:
        c = Commit(
            vault_id=unb64u(f["vault_id"], VAULT_ID_LEN),
            gen=integer(f["gen"], 0, MAX_GEN),
            parent=None if f["parent"] is None else unb64u(f["parent"], HASH_LEN),
            epoch=integer(f["epoch"], 0, (1 << 32) - 1),
            keystore_gen=integer(f["keystore_gen"]),
            root=tuple(ref_from_json(r, (KIND_PAGE_PACK,)) for r in array(f["root"])),
            client=unb64u(f["client"], CLIENT_ID_LEN),
            time=integer(f["time"], 0, MAX_TIME),
            meta=f["meta"] if version == 2 else None,  # checked (bounds, known keys) by Commit itself
        )
    except ValueError:
        fail("commit")
    if encode_commit(c) != raw:
        fail("not canonical")
    return c


Fetch = Callable[[int], Awaitable[bytes | None]]
"""``fetch(gen)``: the exact bytes of ``c/{gen:016x}``, or ``None`` if the object does not exist."""
Opener = Callable[[int, bytes], Commit]
"""``opener(gen, data)``: open and check the commit object ``c/{gen}``; raises IntegrityError."""
EpochAllowed = Callable[[int, int], bool]
"""``allowed(epoch, gen)``: whether a commit of ``gen`` may use ``epoch`` (``retired_at_gen`` rule)."""


# --- sealing ----------------------------------------------------------------------------------


def seal_body(sealer: Sealer, gen: int, body: bytes, *, salt: bytes | None = None) -> bytes:
    """Seal raw body bytes as ``c/{gen}`` (kind 3, 1 KiB floor). ``salt`` is for known-answer tests only."""
    return sealer.seal(KIND_COMMIT, commit_name(gen), body, pad_floor=COMMIT_PAD_FLOOR, salt=salt)


def seal_commit(sealer: Sealer, c: Commit, *, salt: bytes | None = None) -> bytes:
    """The object bytes of commit ``c``; its vault and epoch must be the sealer's."""
    if not hmac.compare_digest(c.vault_id, sealer.keys.vault_id) or c.epoch != sealer.keys.epoch:
        raise ValueError("commit vault or epoch differs from the sealing keys")
    return seal_body(sealer, c.gen, encode_commit(c), salt=salt)


def peek_epoch(data: bytes | bytearray | memoryview) -> int:
    """The epoch in an object's clear header, to choose the opening keys (authenticated by the open)."""
    mv = memoryview(data).cast("B")
    if len(mv) < HDR or mv[0] != FORMAT or mv[1] != SUITE:
        fail("header")
    return int.from_bytes(mv[2:HDR], "big")


def open_commit(
    sealer: Sealer, gen: int, data: bytes | bytearray | memoryview, *, epoch_allowed: EpochAllowed | None = None
) -> Commit:
    """Open ``c/{gen}`` and check it: generation equals the name, vault id and epoch are the sealer's,
    and ``epoch_allowed(epoch, gen)`` if given. Raises IntegrityError on any failure.
    """
    body = sealer.open(KIND_COMMIT, commit_name(gen), data)
    c = decode_commit(body)
    keys = sealer.keys
    if c.gen != gen or not hmac.compare_digest(c.vault_id, keys.vault_id) or c.epoch != keys.epoch:
        fail("commit binding")
    if epoch_allowed is not None and not epoch_allowed(c.epoch, gen):
        fail("epoch not allowed")
    return c


def opener(sealers: Mapping[int, Sealer], epoch_allowed: EpochAllowed | None = None) -> Opener:
    """An :data:`Opener` that picks the sealer by the object's epoch among ``sealers`` (the keyring's)."""

    def open_at(gen: int, data: bytes) -> Commit:
        sealer = sealers.get(peek_epoch(data))
        if sealer is None:
            fail("unknown epoch")
        return open_commit(sealer, gen, data, epoch_allowed=epoch_allowed)

    return open_at


# --- chain verification (§5.3) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainState:
    """The local high-water mark: the highest generation seen and the hash of its object."""

    max_gen: int
    head_hash: bytes


@dataclass(frozen=True, slots=True)
class ChainHead:
    """A verified head: its generation, object hash and decoded commit."""

    gen: int
    hash: bytes
    commit: Commit

    @property
    def state(self) -> ChainState:
        return ChainState(self.gen, self.hash)


async def _fetch_pinned(state: ChainState, fetch: Fetch, open_at: Opener) -> ChainHead:
    data = await fetch(state.max_gen)
    if data is None:
        raise RollbackError()  # the pinned head disappeared: rolled back (commits are never deleted)
    digest = object_hash(data)
    if not hmac.compare_digest(digest, state.head_hash):
        raise RollbackError()  # same generation, different bytes: a fork
    return ChainHead(state.max_gen, digest, open_at(state.max_gen, data))


def _link(prev: ChainHead | None, gen: int, data: bytes, open_at: Opener) -> ChainHead:
    c = open_at(gen, data)
    if prev is None:
        if c.parent is not None:
            raise RollbackError()
    elif c.parent is None or not hmac.compare_digest(c.parent, prev.hash):
        raise RollbackError()  # does not extend the history we hold: a fork
    else:
        check_epoch_order(prev.commit, c)
    return ChainHead(gen, object_hash(data), c)


def check_epoch_order(parent: Commit, child: Commit) -> None:
    """A commit's key epoch is at least its parent's: the chain never goes back to an older epoch
    (docs/format.md, "Rekey beside writers"). IntegrityError otherwise."""
    if child.epoch < parent.epoch:
        raise IntegrityError(f"commit {child.gen} goes back to key epoch {child.epoch} after epoch {parent.epoch} "
                             "(a commit by someone who holds only old keys): refused")


async def verify_chain(state: ChainState | None, head: int, fetch: Fetch, open_at: Opener) -> ChainHead:
    """Verify every parent link from the high-water mark (or generation 0 when ``state`` is None)
    up to the observed ``head``, and return the verified head.

    Raises RollbackError for a head below ``max_gen``, a changed ``c/{max_gen}``, a missing commit or
    a broken link; IntegrityError for a commit that fails to open. Fetch errors propagate.
    Cancellation leaves nothing behind (no state is written here).
    """
    if state is not None and head < state.max_gen:
        raise RollbackError()
    current = None if state is None else await _fetch_pinned(state, fetch, open_at)
    start = 0 if current is None else current.gen + 1
    for gen in range(start, head + 1):
        data = await fetch(gen)
        if data is None:
            raise RollbackError()  # a withheld link
        current = _link(current, gen, data, open_at)
    if current is None:
        raise RollbackError()  # no commit at all where one was expected
    return current


async def find_head(
    state: ChainState | None, fetch: Fetch, open_at: Opener, *, limit: int | None = None
) -> ChainHead | None:
    """Probe ``c/{max_gen+1}``, ``c/{max_gen+2}``, … until one is absent, verifying each link (§5.2).

    Returns the verified head, or ``None`` for an empty vault when ``state`` is None. ``limit``
    bounds how many new commits one call walks; the head reached so far is returned and the
    caller may call again from it. Raises as :func:`verify_chain`.
    """
    current = None if state is None else await _fetch_pinned(state, fetch, open_at)
    gen = 0 if current is None else current.gen + 1
    taken = 0
    while gen <= MAX_GEN and (limit is None or taken < limit):
        data = await fetch(gen)
        if data is None:
            break
        current = _link(current, gen, data, open_at)
        gen += 1
        taken += 1
    return current


def verify_successor(prev: ChainHead, gen: int, data: bytes, open_at: Opener) -> ChainHead:
    """Check one new commit against the verified ``prev`` (e.g. after winning ``put_if_absent``)."""
    if gen != prev.gen + 1:
        raise RollbackError()
    return _link(prev, gen, data, open_at)


__all__ = [
    "COMMIT_PAD_FLOOR",
    "ChainHead",
    "ChainState",
    "Commit",
    "EpochAllowed",
    "Fetch",
    "Opener",
    "check_epoch_order",
    "commit_name",
    "decode_commit",
    "encode_commit",
    "find_head",
    "object_hash",
    "open_commit",
    "opener",
    "peek_epoch",
    "seal_body",
    "seal_commit",
    "verify_chain",
    "verify_successor",
]
