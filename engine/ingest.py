"""Owner side of write-only clients: take pending drops into the next commit (models/drops.py).

Each commit's ``meta`` carries the watermark (:mod:`.format.dropmeta`): for every writer, the seq
and hash of its last ingested record and the generation that ingested it. :meth:`Ingester.plan`
reads the head's watermark and, for each writer the keyring knows, fetches only the record named
watermark + 1; it is taken only if it parses, its signature verifies under that writer's key, it
signs that seq and the watermark's hash as its previous, its epoch is one this vault may read, and
its drop (the tree at ``dest``, inside the writer's prefix) passes every check a co-writer's catalog
must pass and refers to nothing but that drop's own ``d/<writer>/o/`` objects. A record that fails
is refused: reported once in ``meta`` (``refused``), the watermark stays (a gap: later drops wait
behind it). A removed writer's records are refused. A plan is made against one head and thrown away
if that head loses the commit race: the committer plans again against the new head.

:meth:`Ingester.apply` merges each taken drop into the working tree: drop n replaces what drop
n − 1 left at ``dest`` (its merge base is the tree of the generation that ingested drop n − 1,
with drop n − 1's own tree at its place), so a daily backup replaces what it replaced; the owner's
own changes inside ``dest`` since then are kept unless the drop changed the same path, where the
drop wins and the owner's version becomes a conflict copy. Ingested file refs carry their drop
key; directory pages are rewritten as the vault's own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from ..backends.base import Backend, get_bounded
from .catalog.pagestore import Catalog
from .catalog.tree import Dir, File, Link, Meta, Node, Tree, merge, split_path
from .errors import IntegrityError, NotADirectory, NotFound, ObjectMissing, UsageError
from .format import drops as records
from .format.commits import ChainHead, Commit
from .format.dropmeta import Drops, Ingested, Mark, Refused
from .format.pages import BlobRef
from .format.refs import Blob
from .keys.schedule import KIND_PAGE_PACK, EpochKeys
from .keys.secret import Secret
from .keys.writers import Writer
from .local.cache import Cache
from .repo.dropleases import record_seqs
from .repo.packs import PackWriter
from .repo.reader import BlobReader
from .repo.store import ObjectStore
from .transfer.prune import Refs

MAX_RECORD = 1 << 20
MAX_PER_COMMIT = 16  # drops of one writer taken into one commit (the rest wait for the next)


@dataclass(slots=True)
class Taken:
    """A verified drop, its tree at ``dest`` made into the vault's own (dirty) nodes."""

    writer: Writer
    seq: int
    hash: bytes
    dest: list[bytes]
    node: Node
    files: int
    bytes: int


@dataclass(slots=True)
class Plan:
    head: ChainHead
    keystore_gen: int  # the keystore whose writers (active or removed) it was made with
    mark: dict[bytes, Mark]
    taken: list[Taken]
    refused: list[Refused]

    @property
    def empty(self) -> bool:
        return not self.taken and not self.refused


NOTHING = Mark(0, bytes(32), 0)  # a writer with nothing ingested: record 1 signs an all-zero previous hash


def watermark(c: Commit) -> dict[bytes, Mark]:
    drops = c.audit.drops
    return dict(drops.mark) if drops is not None else {}


class Ingester:
    """Plans and applies the ingest of pending drops for one owner vault (see the module doc)."""

    def __init__(self, *, backend: Backend, store: ObjectStore, writers: Callable[[], Sequence[Writer]],
                 drop_seed: Callable[[int], Secret | None], epoch_ok: Callable[[int], bool],
                 tree_at: Callable[[int], Awaitable[Tree | None]], client_id: bytes) -> None:
        self._backend = backend
        self._store = store
        self._writers = writers
        self._drop_seed = drop_seed
        self._epoch_ok = epoch_ok
        self._tree_at = tree_at
        self._client_id = client_id

    def any_writers(self) -> bool:
        return bool(self._writers())

    async def plan(self, head: ChainHead, keystore_gen: int) -> Plan:
        """What the next commit on ``head`` ingests and refuses (nothing is changed yet)."""
        mark = watermark(head.commit)
        plan = Plan(head, keystore_gen, mark, [], [])
        for w in self._writers():
            for _ in range(MAX_PER_COMMIT):
                if not await self._next(plan, w):
                    break
        return plan

    async def _next(self, plan: Plan, w: Writer) -> bool:
        """Look at the record after ``w``'s watermark; True if it was taken (look at the next one)."""
        last = plan.mark.get(w.id, NOTHING)
        seq = last.seq + 1
        name = records.record_name(w.id, seq)
        try:
            data = await get_bounded(self._backend, name, MAX_RECORD)
        except NotFound:
            return False
        digest = records.record_hash(data)
        if last.skip == digest:
            return False  # refused before: said once
        try:
            taken = await self._check(w, seq, name, data, last)
        except ObjectMissing:
            return False  # not there (yet, or withheld): the drop waits; verify says it waits
        except (IntegrityError, NotFound, NotADirectory, UsageError) as exc:  # not a BackendError: that one waits
            plan.refused.append(Refused(w.id, seq, "writer removed" if w.state != "active" else exc.message))
            plan.mark[w.id] = dataclasses.replace(last, skip=digest)  # the watermark stays: a gap
            return False
        plan.taken.append(taken)
        plan.mark[w.id] = Mark(seq, digest, plan.head.gen + 1)
        return True

    async def _check(self, w: Writer, seq: int, name: str, data: bytes, last: Mark) -> Taken:
        if w.state != "active":
            raise IntegrityError("writer removed")
        rec = records.parse_record(data, name)
        records.verify_record(rec, w.verify_key)
        if rec.seq != seq or not hmac.compare_digest(rec.prev, last.hash):
            raise IntegrityError("out of order or replayed")
        return await self._open(w, rec)

    def _unseal(self, w: Writer, rec: records.DropRecord) -> tuple[EpochKeys, records.DropBody, Secret]:
        """The keys, body and drop key of a parsed, verified record."""
        if rec.vault_id != self._store.keys.vault_id or not self._epoch_ok(rec.epoch):
            raise IntegrityError("another vault or epoch")
        seed = self._drop_seed(rec.epoch)
        if seed is None:
            raise IntegrityError("sealed to an epoch this vault cannot open")
        dk = records.open_drop_key(rec, seed)
        own = self._store.keys
        keys = EpochKeys.for_drop(own.vault_id, rec.epoch, own.prf_name, w.id, w.key, dk)
        return keys, records.open_body(rec, keys), dk

    async def _open(self, w: Writer, rec: records.DropRecord) -> Taken:
        """The drop of a parsed, verified record: its key, its body, its tree at ``dest``."""
        keys, body, dk = self._unseal(w, rec)
        dest = split_path(body.dest)
        prefix = split_path(w.prefix)
        if dest[: len(prefix)] != prefix:
            raise IntegrityError("outside the writer's folder")
        node, files, size = await self._load(keys, body.root, dest, _Keys(self, w, rec.seq, dk))
        return Taken(w, rec.seq, rec.hash, dest, node, files, size)

    async def drop_key(self, w: Writer, seq: int) -> bytes:
        """The key of ``w``'s drop ``seq`` (an earlier drop a later one deduplicates against): its
        record must parse under its name and verify under the writer's key."""
        name = records.record_name(w.id, seq)
        try:
            data = await get_bounded(self._backend, name, MAX_RECORD)
        except NotFound:
            raise IntegrityError(f"it reuses objects of drop {seq}, whose record is gone") from None
        rec = records.parse_record(data, name)
        records.verify_record(rec, w.verify_key)
        seed = self._drop_seed(rec.epoch) if self._epoch_ok(rec.epoch) else None
        if seed is None:
            raise IntegrityError("sealed to an epoch this vault cannot open")
        return records.open_drop_key(rec, seed).reveal()

    async def _base(self, plan: Plan, w: Writer) -> Tree:
        """The merge base of ``w``'s next drop: the tree of the generation that ingested its last
        drop, with that drop's own tree at its place (what the writer last said, not what the owner
        has done there since; for a drop sealed to an older epoch, which its ingest re-sealed, that
        generation's tree as it is); the head's tree for a first drop, or when that drop no longer loads
        (its objects pruned, its generation forgotten): the new drop then replaces its destination."""
        last = watermark(plan.head.commit).get(w.id, NOTHING)
        if last.seq:
            then = await self._tree_at(last.gen)
            name = records.record_name(w.id, last.seq)
            try:
                data = await get_bounded(self._backend, name, MAX_RECORD)
                if then is not None and hmac.compare_digest(records.record_hash(data), last.hash):
                    rec = records.parse_record(data, name)
                    if rec.epoch < self._store.epoch:
                        return then  # sealed to an older epoch: that generation holds it re-sealed (reseal.py)
                    prev = await self._open(w, rec)
                    return await _with(then, prev.dest, prev.node)
            except (IntegrityError, NotFound, NotADirectory, UsageError):
                pass
        head = await self._tree_at(plan.head.gen)
        if head is None:
            raise IntegrityError("the head's catalog does not load")
        return head

    @contextlib.asynccontextmanager
    async def _catalog_of(self, keys: EpochKeys) -> AsyncIterator[tuple[Catalog, BlobReader]]:
        """A catalog and a reader over a store that opens only this drop's objects."""
        store = ObjectStore(self._backend, {keys.epoch: keys}, keys.epoch, self._store.chunk_size,
                            self._store.sealer.pad_floor)
        reader = BlobReader(store)
        cache = await Cache.open(None)
        try:
            yield Catalog(store, PackWriter(store, KIND_PAGE_PACK, _no_seal), cache, 1 << 18, reader=reader), reader
        finally:
            await cache.aclose()

    async def held(self, head: ChainHead) -> tuple[set[str], set[str]]:
        """What prune must keep of the writers' objects at ``head`` (models/dropgc.py, P1 and P5):
        every object an active writer's pending drops and last ingested drop refer to (pages and
        blobs; the last one is the next drop's merge base), and the writers (hex) one of whose
        pending drops does not load whole (a drop that waits for its objects): all theirs stay.
        A drop that will be refused keeps nothing."""
        names: set[str] = set()
        unsure: set[str] = set()
        mark = watermark(head.commit)
        for w in self._writers():
            if not w.active:
                continue  # a removed writer's drops are all refused
            last = mark.get(w.id, NOTHING)
            for seq in (s for s in await record_seqs(self._backend, w.id) if s >= max(1, last.seq)):
                try:
                    names |= await self._objects(w, seq, last)
                except ObjectMissing:
                    if seq > last.seq:
                        unsure.add(w.id.hex())  # a drop that waits for its objects
                except (IntegrityError, NotFound, NotADirectory, UsageError):
                    pass  # refused at ingest (the last one: no longer a merge base): it keeps nothing
        return names, unsure

    async def _objects(self, w: Writer, seq: int, last: Mark) -> set[str]:
        """Every object drop ``seq`` of ``w`` refers to; an empty set for a record refused before."""
        name = records.record_name(w.id, seq)
        data = await get_bounded(self._backend, name, MAX_RECORD)
        if seq == last.seq + 1 and last.skip == records.record_hash(data):
            return set()
        rec = records.parse_record(data, name)
        records.verify_record(rec, w.verify_key)
        keys, body, _ = self._unseal(w, rec)
        async with self._catalog_of(keys) as (catalog, _):
            refs = Refs(catalog)  # prune's own walk: every page and blob the drop's tree refers to
            await refs.walk(Dir(Meta(0o755, 0, 0, 0, 0), list(body.root)))
        return refs.names

    async def _load(self, keys: EpochKeys, root: Sequence[BlobRef], dest: list[bytes], refkeys: _Keys
                    ) -> tuple[Node, int, int]:
        """The drop's node at ``dest``, loaded whole through a store that opens only this drop's
        objects, checked like a co-writer's catalog, and rebuilt as dirty vault nodes."""
        async with self._catalog_of(keys) as (catalog, reader):
            drop = Tree(Dir(Meta(0o755, 0, 0, 0, 0), list(root)), lambda d: catalog.load(d, reader=reader))
            try:
                top = await drop.lookup(dest)
            except NotFound:
                raise IntegrityError("the drop holds nothing at its destination") from None
            files = size = 0
            rebuilt: dict[int, Dir] = {}
            out = await refkeys.copy(top, rebuilt)
            stack: list[tuple[Node, list[bytes]]] = [(top, dest)]
            while stack:
                node, where = stack.pop()
                if isinstance(node, File):
                    files += 1
                    size += node.size
                elif isinstance(node, Dir):
                    kids = await drop.children(node, where)
                    copy = rebuilt[id(node)]
                    copy.children = {name: await refkeys.copy(kid, rebuilt) for name, kid in kids.items()}
                    stack.extend((kid, where + [name]) for name, kid in kids.items())
            return out, files, size

    async def apply(self, plan: Plan, tree: Tree) -> tuple[Tree, Drops]:
        """``tree`` with every taken drop merged in (see the module doc), and the commit's ``drops``."""
        bases: dict[bytes, Tree] = {}
        for t in plan.taken:
            base = bases.get(t.writer.id) or await self._base(plan, t.writer)
            ours = await _with(base, t.dest, t.node)
            tree = await merge(base, ours, tree, self._client_id, ours_wins=True)
            bases[t.writer.id] = ours
        ingested = tuple(Ingested(t.writer.id, t.seq, b"/" + b"/".join(t.dest), t.files, t.bytes) for t in plan.taken)
        return tree, Drops(plan.mark, ingested, tuple(plan.refused))


class _Keys:
    """The drop keys one drop's refs need: its own, and those of the writer's earlier drops it reuses."""

    def __init__(self, ingester: Ingester, writer: Writer, seq: int, own: Secret) -> None:
        self._ingester, self._writer, self._seq = ingester, writer, seq
        self._keys: dict[int, bytes] = {seq: own.reveal()}

    async def key(self, ref: BlobRef) -> bytes:
        """The drop key for ``ref`` (this drop's objects, or an earlier drop's by its ``ds``)."""
        if ref.writer != self._writer.id or ref.drop_key is not None:
            raise IntegrityError("a drop refers to an object that is not its own")
        seq = self._seq if ref.drop_seq is None else ref.drop_seq
        if not 1 <= seq <= self._seq:
            raise IntegrityError("a drop refers to a later drop's object")
        if seq not in self._keys:
            self._keys[seq] = await self._ingester.drop_key(self._writer, seq)
        return self._keys[seq]

    async def copy(self, node: Node, rebuilt: dict[int, Dir]) -> Node:
        """One drop node as the vault's own: files' refs carry their drop key, directories become
        dirty and empty (filled by the caller), links stay as they are."""
        meta = dataclasses.replace(node.meta, xattrs=dict(node.meta.xattrs))
        if isinstance(node, File):
            blobs: list[Blob] = []
            for b in node.blobs:
                if not isinstance(b, BlobRef):
                    raise IntegrityError("a drop refers to an object that is not stored")
                blobs.append(dataclasses.replace(b, drop_key=await self.key(b), drop_seq=None))
            return File(meta, node.size, blobs, node.inline)
        if isinstance(node, Dir):
            copy = Dir(meta, [], {}, dirty=True)
            rebuilt[id(node)] = copy
            return copy
        return Link(meta, node.target)


async def _with(base: Tree, dest: list[bytes], node: Node) -> Tree:
    """``base`` with ``node`` at ``dest``: the directories on the way there are copied (made where
    missing), everything else is shared with ``base``, which stays as it was."""

    async def clone(d: Dir, where: list[bytes]) -> Dir:
        return Dir(d.meta, list(d.pages), dict(await base.children(d, where)), dirty=True)

    root = parent = await clone(base.root, [])
    for i, name in enumerate(dest[:-1]):
        kids = parent.children
        assert kids is not None
        kid = kids.get(name)
        if isinstance(kid, Dir):
            kid = await clone(kid, dest[: i + 1])
        else:  # missing (or a file in the way, which the merge keeps as a conflict copy)
            now = time.time_ns()
            kid = Dir(Meta(0o755, 0, 0, now, now), [], {}, dirty=True)
        kids[name] = kid
        parent = kid
    assert parent.children is not None and dest
    parent.children[dest[-1]] = node
    return Tree(root, base.loader)


async def _no_seal(kind: int, name: str, stored: bytes, pad_floor: int | None) -> bytes:
    raise RuntimeError("an ingest reads a drop; it never writes into it")
