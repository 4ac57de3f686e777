"""Checking a vault (``sigmavault verify [--full]``): every generation, every object, the store.

Both modes walk every generation from the head down, each commit checked against the hash chain
(:meth:`History.commit_at`); a directory whose pages were already checked in a newer generation is
not walked again (same page ids: same subtree), so old generations cost only what they changed.

- plain: every object a kept generation needs is present, with the length its ref says;
- ``full``: nothing is taken from a cache. The commit chain is downloaded and verified from
  generation 0, every catalog page is downloaded and authenticated (not read from the local
  SQLite cache), every data object is downloaded and opened and every blob checked against its
  keyed id, and the keystore held is downloaded and authenticated with the held key.

Then the store is listed: an object no kept generation references is reported as unreferenced
(a note: interrupted imports leave such objects), and with ``full`` it is opened under every kind
and epoch; one that opens under none is damaged (a problem). With ``full``, every rewrite map is
compared with the own trees of the generations it remaps while those are stored (:mod:`.mapcheck`,
the check prune runs before their objects go): a map that shows one differently is a problem.
Temporary files a crashed writer left in a local vault are reported as notes. Problems are
collected, each naming the vault path (and generation, if not the head) it affects, so a user sees
everything a damaged vault has lost.
"""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass, field
from functools import partial

from ...backends.base import Backend, get_bounded, layers
from ..catalog.pagestore import Catalog
from ..catalog.results import VerifyReport
from ..catalog.tree import Dir, File, Loader, show
from ..errors import AuthError, IntegrityError, NotFound, VaultError
from ..format.canonical import MAX_DOCUMENT
from ..format.commits import ChainHead, verify_chain
from ..format.envelope import object_len
from ..format.framing import FRAME_HEADER
from ..format.pages import BlobRef
from ..keys.keystore import keystore_name, parse
from ..keys.schedule import KIND_CHUNK, KIND_DATA_PACK, KIND_PAGE_PACK
from ..repo.history import History, keystore_generation
from ..repo.reader import BlobReader
from .mapcheck import MapChecker

_KIND_NAMES = {KIND_CHUNK: "chunk", KIND_DATA_PACK: "data pack", KIND_PAGE_PACK: "page pack"}


@dataclass(frozen=True, slots=True)
class Subject:
    """What verify checks, as the front hands it: the vault's history, store and catalog, the head it shows."""

    history: History
    backend: Backend
    reader: BlobReader
    catalog: Catalog
    head: ChainHead


@dataclass
class _Need:
    """One object the kept generations reference: its refs and the vault paths that need it."""

    length: int | None
    refs: list[tuple[BlobRef, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    bare: set[str] = field(default_factory=set)  # the paths without their generation label


class _Verifier:
    def __init__(self, subject: Subject, full: bool) -> None:
        self.head = subject.head
        self.catalog = subject.catalog
        self.full = full
        self.history = subject.history
        self.backend = subject.backend
        self.store = subject.reader.fresh() if full else subject.reader  # full: trusts no cache
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.needs: dict[str, _Need] = {}
        self.seen_dirs: set[tuple[tuple[str, int], ...]] = set()  # page places of dirs walked already
        self.files = self.dirs = self.blobs = self.nbytes = self.objects = 0
        self.generations = 0
        self.listed: set[str] = set()  # ``full``: the ``o/`` objects stored (a map is checked while its own trees are)

    def need(self, ref: BlobRef, path: str, label: str, page: bool) -> None:
        n = self.needs.get(ref.object_name)
        if n is None:
            n = self.needs[ref.object_name] = _Need(ref.object_len)
        if path in n.bare:
            return  # the same path needs it in a newer generation: named once, by its newest label
        n.bare.add(path)
        if not page:
            n.refs.append((ref, path + label))
        n.paths.append(path + label)

    # --- generations and trees --------------------------------------------------------------

    async def walk_history(self) -> None:
        head = self.head.gen
        if self.full:
            try:  # every commit downloaded again and linked from generation 0 up to the head
                top = await verify_chain(None, head, self.history.fetch, self.history.open_commit)
                if not hmac.compare_digest(top.hash, self.head.hash):
                    self.problems.append(f"/: commit {head} changed since the vault was opened")
            except VaultError as exc:
                self.problems.append(f"/: the commit history does not verify: {exc.message}")
        for gen in range(head, -1, -1):
            try:
                commit = await self.history.commit_at(gen)
            except VaultError as exc:
                self.problems.append(f"/ (generation {gen} and older): {exc.message}")
                return
            drops = commit.audit.drops
            for r in drops.refused if drops is not None else ():  # a refusal is a record, not damage
                self.notes.append(f"generation {gen} refused drop {r.seq} of write-only client {r.writer.hex()[:8]}: "
                                  f"{r.why!r}")
            if self.history.forgotten_by(gen) is not None:
                continue  # forgotten: its data may be pruned (every commit above it was read just now)
            self.generations += 1
            label = "" if gen == head else f" (generation {gen})"
            loader = partial(self.catalog.load, reader=self.store) if self.full else None
            await self.walk_tree(self.catalog.tree(commit, loader).root, label, loader)

    async def walk_tree(self, root: Dir, label: str, loader: Loader | None) -> None:
        """Walk one generation; a directory whose pages a newer generation had is skipped."""
        load = loader or self.catalog.load
        stack: list[tuple[list[bytes], Dir]] = [([], root)]
        here: set[tuple[tuple[str, int], ...]] = set()
        while stack:
            parts, d = stack.pop()
            where = show(parts) + label
            key = tuple((p.object_name, p.off) for p in d.pages)
            if key in here and key:
                self.problems.append(f"{where}: a catalog page is referenced twice in one generation "
                                     "(a hostile or damaged catalog)")
                continue  # walking it again could repeat without end
            if key in self.seen_dirs:
                continue  # the same pages were checked in a newer generation: the same subtree
            here.add(key)
            self.dirs += 1 if parts else 0
            for ref in d.pages:
                self.need(ref, show(parts), label, page=True)
            try:
                kids = await load(d)
            except VaultError as exc:
                self.problems.append(f"{where}: directory unreadable: {exc.message}")
                continue
            for name in sorted(kids, reverse=True):
                node = kids[name]
                if isinstance(node, Dir):
                    stack.append((parts + [name], node))
                elif isinstance(node, File):
                    self.files += 1
                    for b in node.blobs:
                        if isinstance(b, BlobRef):
                            self.blobs += 1
                            self.need(b, show(parts + [name]), label, page=False)
        self.seen_dirs |= here

    # --- referenced objects -----------------------------------------------------------------

    async def check_needs(self) -> None:
        todo = iter(list(self.needs.items()))

        async def worker() -> None:  # a few workers, not one task per object: vaults hold millions
            for name, n in todo:
                err = await (self.open_data(n) if self.full and n.refs else self.present(name, n))
                self.objects += 1
                if err:
                    self.problems.extend(f"{p}: {err}" for p in n.paths)

        async with asyncio.TaskGroup() as tg:
            for _ in range(max(1, min(4, self.backend.properties.concurrency))):
                tg.create_task(worker())

    async def present(self, name: str, n: _Need) -> str | None:
        if self.full:
            return None  # a page pack: downloaded and authenticated by the walk
        try:
            size = await self.backend.head(name)
        except NotFound:
            return f"object {name} is missing"
        if n.length is not None and size != n.length:
            return f"object {name} has the wrong length ({size} bytes, the catalog says {n.length})"
        return None

    async def open_data(self, n: _Need) -> str | None:
        first = n.refs[0][0]
        chunk = first.kind == KIND_CHUNK
        try:
            if chunk:  # reading a chunk authenticates the object and checks its id: one download
                await self.store.read(first)
            else:  # a pack: opened once, kept for its blobs' reads below
                await self.store.open_object(first)
        except VaultError as exc:
            return exc.message
        for ref, path in n.refs:  # one object, many blobs: each checked against its own keyed id
            if chunk and (ref.id, ref.length) == (first.id, first.length):
                self.nbytes += ref.length  # that very chunk, read above
                continue
            try:
                size = len(await self.store.read(ref))  # awaited first: `+=` across an await loses updates
                self.nbytes += size
            except VaultError as exc:
                self.problems.append(f"{path}: {exc.message}")
        return None

    # --- everything else in the store -------------------------------------------------------

    async def check_listing(self) -> None:
        chunk = self.store.chunk_size
        biggest = max(object_len(chunk, chunk, 4096), object_len(chunk, chunk, FRAME_HEADER + chunk))
        async for name in self.backend.list("o/"):
            if self.full:
                self.listed.add(name)
            if name in self.needs:
                continue
            if not self.full:
                self.notes.append(f"object {name} is not referenced by any generation")
                continue
            self.objects += 1
            kind = await self.identify(name, biggest)
            if kind is None:
                self.problems.append(f"object {name} (referenced by no generation) is damaged: "
                                     "it opens as no kind of object")
            else:
                self.notes.append(f"object {name} ({kind}) is not referenced by any generation")
        head = self.head.gen
        async for name in self.backend.list("c/"):
            gen = int(name[2:], 16)
            if gen > head:
                self.notes.append(f"commit {name} is newer than the checked head (generation {head})")
        await self.check_drops()
        await self.check_keystores()
        await self.check_temporaries()

    async def check_maps(self) -> None:
        """Every rewrite map against the generations' own trees still stored (prune's check)."""
        try:
            await MapChecker(self.history, self.catalog, self.store).check(
                self.head, await self.history.kept_generations(), self.listed.__contains__)
        except VaultError as exc:
            self.problems.append(f"/: {exc.message}")

    async def identify(self, name: str, biggest: int) -> str | None:
        try:
            if await self.backend.head(name) > biggest:
                return None
            data = await get_bounded(self.backend, name, biggest)  # a listing's length proves nothing
        except NotFound:
            return "deleted while checked"
        except IntegrityError:
            return None
        for epoch in sorted(self.history.sealers):
            sealer = self.history.sealers[epoch]
            for kind in (KIND_CHUNK, KIND_DATA_PACK, KIND_PAGE_PACK):
                try:
                    await asyncio.to_thread(sealer.open, kind, name, data)  # never on the loop
                    return _KIND_NAMES[kind]
                except VaultError:
                    continue
        return None

    async def check_drops(self) -> None:
        """Write-only clients' records against the head's watermark: drops waiting to be taken in,
        a gap (a record missing below stored ones: withheld or lost), a writer the keyring does not know."""
        drops = self.head.commit.audit.drops
        mark = drops.mark if drops is not None else {}
        known = {w.id: w for w in self.history.writers}
        seqs: dict[str, list[int]] = {}
        async for name in self.backend.list("d/"):
            writer, _, rest = name[2:].partition("/")
            if len(rest) == 16:  # a record (the rest: objects, gone-markers, lease beats)
                seqs.setdefault(writer, []).append(int(rest, 16))
            else:
                seqs.setdefault(writer, [])
        for writer, stored in sorted(seqs.items()):
            w = known.get(bytes.fromhex(writer))
            if w is None:
                self.notes.append(f"d/{writer}/ holds the drops of a write-only client this vault does not know "
                                  "(removed long ago, or planted): nothing of it is taken in")
                continue
            last = mark[w.id].seq if w.id in mark else 0
            waiting = sorted(q for q in stored if q > last)
            if not waiting:
                continue
            who = f"write-only client {writer[:8]} {w.label!r}"
            if w.id in mark and mark[w.id].skip is not None and waiting[0] == last + 1:
                self.notes.append(f"{who}: drop {last + 1} was refused (see `sigmavault audit`); "
                                  f"{len(waiting) - 1} later drop(s) wait behind it")
            elif waiting[0] != last + 1:
                self.notes.append(f"{who}: drop {last + 1} is missing but drops {waiting[0]}… are stored (a gap: "
                                  "withheld or lost by the storage); they wait behind it")
            elif w.state == "active":
                self.notes.append(f"{who}: {len(waiting)} drop(s) from {waiting[0]} wait to be taken in "
                                  "(`sigmavault ingest`)")

    async def check_keystores(self) -> None:
        held = self.history.keystore_gen
        names = {keystore_generation(n): n async for n in self.backend.list("k/")}
        if held not in names:
            self.problems.append(f"/: the keystore {keystore_name(held)} this device opened is missing")
        for gen, name in sorted((g, n) for g, n in names.items() if g is not None):
            self.objects += 1
            state = await self.keystore_state(name) if self.full else None
            if state is not None and gen == held:
                self.problems.append(f"/: the keystore {name} {state}")
            elif gen < held:
                self.notes.append(f"keystore {name} is an older generation still stored (its old passphrases "
                                  f"still open it){'; it ' + state if state else ''}")
            elif gen > held:
                self.notes.append(f"keystore {name} is newer than the one this device opened"
                                  f"{'; it ' + state if state else ''}")

    async def keystore_state(self, name: str) -> str | None:
        """None if the keystore authenticates with the held key; else what is wrong with it."""
        try:
            data = await get_bounded(self.backend, name, MAX_DOCUMENT)
        except NotFound:
            return "was deleted while checked"
        except IntegrityError as exc:
            return exc.message
        try:
            if self.history.reauth is None:
                parse(data, name)
            else:
                self.history.reauth(name, data)
        except AuthError:
            return "does not authenticate with this device's key (rewritten with other keys, or damaged)"
        except VaultError as exc:
            return f"is damaged: {exc.message}"
        return None

    async def check_temporaries(self) -> None:
        *_, store = layers(self.backend)
        leftovers = getattr(store, "leftover_temporaries", None)
        if leftovers is None:
            return
        for path, owner in await leftovers():
            self.notes.append(f"temporary file {path} left by an interrupted write ({owner}); "
                              "the next write removes it once its writer is gone")


async def verify_vault(subject: Subject, full: bool) -> VerifyReport:
    """Check every generation up to ``subject.head`` and the whole store (see the module doc)."""
    v = _Verifier(subject, full)
    await v.walk_history()
    await v.check_needs()
    await v.check_listing()
    if full:
        await v.check_maps()
    return VerifyReport(subject.head.gen, v.files, v.dirs, v.blobs, v.nbytes, tuple(v.problems),
                        notes=tuple(v.notes), generations=v.generations, objects_checked=v.objects)
