"""A write-only client's session: files in, one signed drop out (issue 18, docs/format.md "Write-only clients").

:func:`open_writer` reads nothing of the vault but the writer's own ``d/<writer>/`` records (to
find its next seq and the hash of its last record, which it checks against its own verify key),
draws a fresh drop key sealed to the vault's drop public key of the credential's epoch, and gives
a :class:`DropWriter`: the same edits and the same write pipeline as a vault (:class:`~.edits.Edits`)
over an empty tree of its own, whose objects are sealed under that drop's keys and named under
``d/<writer>/o/``. :meth:`DropWriter.commit` stores the tree's pages and writes the signed record
``d/<writer>/<seq>`` create-only; the owner's next commit ingests it (:mod:`.ingest`).

It holds no key that opens anything but what it wrote in this run: not the vault's keys, not
earlier drops' keys (each drop key lives only in this session and sealed to the owner).
Dedup: ids are keyed per writer, so a blob seen in this run or in one of the writer's earlier
drops (this machine's index, in ``state``) is not stored again: its ref names the object and the
seq of the drop that holds it, and the owner opens it with that drop's key. Object names are keyed
per drop, so a name never collides across drops and an ``already exists`` is never taken for a hit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from ..backends.base import Backend, get_bounded
from . import locking
from .catalog.pagestore import Catalog
from .catalog.tree import Dir, File, Meta, Node, Tree, show, split_path
from .content.index import DropIndex
from .content.writer import ContentWriter
from .edits import Edits
from .errors import (
    BackendAuthError,
    ConcurrencyError,
    IntegrityError,
    NotFound,
    RollbackError,
    UsageError,
    VaultNotFound,
)
from .format import drops as records
from .keys import keystore, sign
from .keys.schedule import KIND_DATA_PACK, KIND_PAGE_PACK, EpochKeys, expand
from .keys.secret import Secret
from .keys.writers import WriterCredential
from .local.cache import Cache
from .local.settings import Tuning
from .opening import DEFAULT_TUNING, _connect, _highest_keystore
from .repo.dropleases import WriterLease, marked, record_seqs
from .repo.packs import PackWriter
from .repo.reader import BlobReader
from .repo.store import ObjectStore
from .view import Parts

MAX_RECORD = 1 << 20


class DropWriter(Edits):
    """One run of a write-only client (see the module doc). Use with ``async with``: a normal exit
    writes the drop if anything was written; an error leaves only unreferenced objects."""

    def __init__(self, *, url: str, backend: Backend, credential: WriterCredential, seq: int, prev: bytes,
                 keys: EpochKeys, enc: bytes, cache: Cache, tuning: Tuning, dest: list[bytes]) -> None:
        p = credential.params
        store = ObjectStore(backend, {keys.epoch: keys}, keys.epoch, p.chunk_size, p.pad_floor, tuning.pack_cache,
                            compression=p.compression)
        self._cache = cache
        self._index = DropIndex(cache, backend)  # the writer's own completed drops (kept on this machine)
        #: W1 of models/dropgc.py: held from before the first dedup decision until the record is written
        self._lease = WriterLease(backend, credential.signing, credential.vault_id, credential.writer_id)
        self._data_pack = PackWriter(store, KIND_DATA_PACK, self._seal, on_landed=self._index.stored)
        self._page_pack = PackWriter(store, KIND_PAGE_PACK, self._seal)
        reader = BlobReader(store, pending=self._data_pack.member_bytes)
        catalog = Catalog(store, self._page_pack, cache, tuning.page_target, reader=reader)
        content = ContentWriter(store, self._data_pack, self._index)
        super().__init__(Parts(url, backend, credential.fingerprint, store, cache, catalog, content, reader, tuning),
                         p.inline_max)
        now = time.time_ns()
        self._tree = Tree(Dir(Meta(0o755, 0, 0, now, now), [], {}), catalog.load)
        self._credential = credential
        self._keys = keys
        self._enc = enc
        self._prev = prev
        self._started = int(time.time())
        #: the seq of this run's drop record (``d/<writer>/<seq>``)
        self.seq = seq
        #: where the drop goes in the vault: everything this run writes must lie inside it
        self.dest = dest
        self.dropped = False

    def __repr__(self) -> str:
        return f"<DropWriter {self._credential.label!r} drop {self.seq}>"

    @property
    def cache(self) -> Cache:
        return self._cache

    @property
    def generation(self) -> int:
        return 0  # a writer sees no generation of the vault

    async def __aenter__(self) -> DropWriter:
        return self

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
                        ) -> None:
        try:
            if et is None and self._tree.root.dirty and not self.dropped:
                await self.commit()
        finally:
            await self.aclose()

    async def _begin_write(self, alone: bool = False) -> None:
        """W1, then the markers: what a pruner marked since is never reused (W2)."""
        if not self._lease.held:
            await self._lease.begin()
            self._index.gone = await marked(self._backend, self._credential.writer_id)

    async def _release(self) -> None:
        await self._lease.end()

    async def commit(self, meta: dict[str, Any] | None = None) -> int:
        """Store the tree and write this run's signed drop record; returns its seq. ConcurrencyError
        if another run of the same writer took the seq meanwhile (run again: nothing is lost)."""
        del meta  # a drop carries no commit meta: the owner records who dropped what
        self._check_open()
        if self.dropped:
            raise UsageError("this run's drop is written already: open the writer again for the next one")
        await self._begin_write()  # the pages below are uploaded under the lease too
        async with self._lock:
            node = await self._at_dest()
            files, size = await self._count(node)
            await self._content.flush()
            root = await self._catalog.save(self._tree)
            await self._page_pack.flush()
            body = records.DropBody(dest=b"/" + b"/".join(self.dest), root=tuple(root),
                                    files=files, bytes=size, started=self._started, finished=int(time.time()))
            c = self._credential
            if not self._lease.valid():  # a pruner may have taken it for expired and deleted what we reuse
                raise ConcurrencyError(f"writer {c.label!r} stalled past its lease (a prune may have collected "
                                       "what this run reused); run again (nothing was lost)")
            data = await asyncio.to_thread(records.seal_record, c.signing, self._keys, c.writer_id, self.seq,
                                           self._prev, self._enc, body)
            if not await self._store.put(records.record_name(c.writer_id, self.seq), data):
                raise ConcurrencyError(f"another run of writer {c.label!r} wrote drop {self.seq} at the same time; "
                                       "run again (nothing was lost)")
            self.dropped = True
            self._index.dropped(self.seq)
            await self._lease.end()  # W3: the record first, then the lease ends
            return self.seq

    async def _at_dest(self) -> Node:
        """The node at ``dest``, after checking that nothing was written beside the path to it."""
        node: Node = self._tree.root
        for i, name in enumerate(self.dest):
            if not isinstance(node, Dir):
                raise UsageError(f"{show(self.dest[:i])} is not a folder: there is no drop to make")
            kids = await self._tree.children(node)
            if not kids:
                raise UsageError(f"nothing was written to {show(self.dest)}: there is no drop to make")
            if set(kids) != {name}:
                raise UsageError(f"a writer may write only inside {show(self.dest)}: "
                                 f"found {show(self.dest[:i] + [next(iter(set(kids) - {name}), b'?')])}")
            node = kids[name]
        return node

    async def _count(self, top: Node) -> tuple[int, int]:
        files = size = 0
        stack = [top]
        while stack:
            n = stack.pop()
            if isinstance(n, File):
                files += 1
                size += n.size
            elif isinstance(n, Dir):
                stack.extend((await self._tree.children(n)).values())
        return files, size


async def _last_record(backend: Backend, cred: WriterCredential) -> tuple[int, bytes]:
    """(seq, hash) of this writer's newest record (0 and zeros for none), checked against its own
    verify key: a record it did not sign under its own name means the storage was tampered with."""
    for seq in reversed(await record_seqs(backend, cred.writer_id)):
        name = records.record_name(cred.writer_id, seq)
        try:
            data = await get_bounded(backend, name, MAX_RECORD)
        except NotFound:
            continue
        rec = records.parse_record(data, name)
        records.verify_record(rec, sign.verify_key(cred.signing))
        return seq, rec.hash
    return 0, bytes(32)


async def _same_vault(backend: Backend, url: str, cred: WriterCredential) -> None:
    """Refuse a credential of another vault when the keystore's public vault id can be read (a
    writer's storage credential may be limited to its own prefix: then there is nothing to compare)."""
    try:
        name, data = await _highest_keystore(backend, url)
        vault_id = keystore.parse(data, name).vault_id
    except (BackendAuthError, VaultNotFound, IntegrityError, UsageError):
        return
    if not hmac.compare_digest(vault_id, cred.vault_id):
        raise UsageError(f"this writer credential ({cred.label!r}) belongs to another vault than the one at {url}")


async def open_writer(url: str, credential: WriterCredential, *, dest: str | bytes | None = None,
                      tuning: Tuning = DEFAULT_TUNING, state: Path | None = None, **backend_opts: Any) -> DropWriter:
    """A write-only session on the vault at ``url`` with ``credential`` (see the module doc).

    ``dest`` (default: the credential's folder) is where this run's tree goes; it must lie inside
    the credential's folder. ``state``: this machine's folder for the writer's dedup index (sealed
    under a key of the credential); None: no dedup against earlier drops. Raises UsageError (dest
    outside, another vault's credential), IntegrityError (a record under this writer's name it did
    not sign), RollbackError (this machine's last drop is gone from the storage), BackendError.
    """
    prefix = split_path(credential.prefix)
    where = prefix if dest is None else split_path(dest)
    if where[: len(prefix)] != prefix:
        raise UsageError(f"this writer may write only inside {credential.prefix}, not {show(where)}")
    async with contextlib.AsyncExitStack() as undo:  # on any failure: what was opened is closed again
        backend = _connect(url, dict(backend_opts))
        undo.push_async_callback(_close_quietly, backend)
        await _same_vault(backend, url, credential)
        locking.apply(backend, credential.params.lock, None)
        try:
            seq, prev = await _last_record(backend, credential)
        except IntegrityError as exc:
            raise IntegrityError(f"a drop record under this writer's name was not written by it ({exc.message}): "
                                 "the storage was tampered with") from None
        cache = await Cache.open(None if state is None else state / "cache.sqlite",
                                 Secret(expand(credential.key.reveal(), "writer/local-cache"), "writer cache key"))
        undo.push_async_callback(cache.aclose)
        if (last := await cache.get_meta("last_seq", 0)) > seq:
            raise RollbackError(f"this writer's drop {last} is gone from the storage (it shows {seq or 'none'}): "
                                "the storage lost or hides it; nothing was written")
        drop_key, enc = records.new_drop_key(credential.drop_pk, credential.vault_id, credential.writer_id,
                                             seq + 1, credential.epoch)
        keys = EpochKeys.for_drop(credential.vault_id, credential.epoch, credential.params.prf,
                                  credential.writer_id, credential.key, drop_key)
        writer = DropWriter(url=url, backend=backend, credential=credential, seq=seq + 1, prev=prev, keys=keys,
                            enc=enc, cache=cache, tuning=tuning, dest=where)
        undo.pop_all()  # the writer owns them now
        return writer


async def _close_quietly(backend: Backend) -> None:
    with contextlib.suppress(Exception):
        await backend.aclose()
