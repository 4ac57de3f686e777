"""Prune's side of collecting write-only clients' objects (models/dropgc.py, docs/format.md).

A writer deduplicates against its own earlier drops and cannot read the vault's deletion records,
so its objects go by a protocol it can follow in its own prefix: the pruner's candidates among
``d/<writer>/o/`` are those no kept generation refers to and no drop still to be ingested (nor the
last one ingested, the next drop's merge base) refers to (P1); it writes a gone-marker for each
(P2), lists the writers' leases (P3) and waits until each has ended or expired (P4), looks at the
drops again (P5) and deletes the rest (P6), then the markers whose objects are gone and the beats
of ended or expired leases. The candidates also go into the deletion record, like the vault's own,
for the owner's clients that refer to a drop's object from an older tree.

Only writers the keyring knows are collected; a writer one of whose pending drops waits for its
objects keeps everything until that drop is in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from ...backends.base import Backend, get_bounded
from ..errors import VaultError
from ..format.commits import ChainHead
from ..repo.dropleases import (
    END,
    MAX_LEASE,
    beat_ttl,
    delete_quietly,
    lease_name,
    marked_object,
    marker_name,
    parse_lease_name,
)
from ..repo.leases import DEFAULT_TTL

#: (names the writers' pending and last ingested drops refer to, writers (hex) to leave alone)
Held = tuple[set[str], set[str]]


@dataclass(frozen=True)
class DropSource:
    """What the owner knows of its writers (the vault front passes it in)."""

    vault_id: bytes
    verify_keys: Callable[[], Mapping[str, bytes]]  # writer hex -> verify key, active and removed
    held: Callable[[ChainHead], Awaitable[Held]]


@dataclass
class Listing:
    """One LIST of ``d/``: the writers' objects and gone-markers."""

    objects: set[str] = field(default_factory=set)
    markers: set[str] = field(default_factory=set)  # marker names

    @classmethod
    async def read(cls, backend: Backend) -> Listing:
        out = cls()
        async for name in backend.list("d/"):
            kind = name[35:37]
            if kind == "o/":
                out.objects.add(name)
            elif kind == "g/":
                out.markers.add(name)
        return out


def candidates(listing: Listing, referenced: set[str], source: DropSource, held: Held) -> set[str]:
    """P1: the writers' objects nothing kept or pending refers to (known writers, not left alone)."""
    known = set(source.verify_keys())
    names, unsure = held
    return {n for n in listing.objects
            if n[2:34] in known and n[2:34] not in unsure and n not in referenced and n not in names}


async def mark(backend: Backend, doomed: set[str]) -> None:
    """P2: a gone-marker for each candidate (create-only: one already there stays)."""
    for name in sorted(doomed):
        await backend.put_if_absent(marker_name(name), b"gone")


class WriterLeases:
    """The writers' leases as the pruner's lease watch sees them (``_Leases`` in prune.py): a lease
    id is ``writer hex/lease id``; an ended lease is not listed (its beats go in :meth:`clear`)."""

    def __init__(self, backend: Backend, source: DropSource) -> None:
        self.backend = backend
        self.source = source
        self._beats: dict[tuple[str, str], list[int]] = {}  # (writer hex, lease id) -> seqs, as last listed
        self._ended: set[tuple[str, str]] = set()

    async def newest(self) -> dict[str, int]:
        """One LIST of each known writer's ``l/`` folder (only known writers' objects are collected)."""
        beats: dict[tuple[str, str], list[int]] = {}
        for w in sorted(self.source.verify_keys()):
            async for name in self.backend.list(f"d/{w}/l/"):
                if (lease := parse_lease_name(name)) is not None:
                    beats.setdefault(lease[:2], []).append(lease[2])
        self._beats = beats
        out = {}
        for (w, lid), seqs in beats.items():
            if END in seqs:
                self._ended.add((w, lid))
            else:
                out[f"{w}/{lid}"] = max(seqs)
        return out

    async def ttl(self, key: str, seq: int) -> float:
        """The TTL the beat states; a beat that does not verify (planted, damaged, an unknown
        writer's) is waited for as long as a default lease."""
        w, _, lid = key.partition("/")
        vk = self.source.verify_keys().get(w)
        name = lease_name(bytes.fromhex(w), lid, seq)
        try:
            if vk is None:
                return DEFAULT_TTL
            return min(max(beat_ttl(await get_bounded(self.backend, name, MAX_LEASE), name,
                                    self.source.vault_id, vk), 0.01), 86400.0)
        except VaultError:
            return DEFAULT_TTL

    async def drop(self, key: str) -> None:
        """Delete the beats of an expired lease (its writer, if alive, finds it lapsed at its record)."""
        w, _, lid = key.partition("/")
        await self._delete(w, lid)

    async def _delete(self, w: str, lid: str) -> None:
        """The beats of that lease listed last (one a revived writer made since stays: still its lease)."""
        writer = bytes.fromhex(w)
        await delete_quietly(self.backend, {lease_name(writer, lid, s) for s in self._beats.get((w, lid), ())})

    async def clear(self) -> int:
        """Delete the beats of every ended lease seen; how many leases."""
        for w, lid in sorted(self._ended):
            await self._delete(w, lid)
        n, self._ended = len(self._ended), set()
        return n


async def tidy(backend: Backend, listing: Listing, deleted: set[str]) -> int:
    """After P6: the markers whose objects are gone (deleted now, or absent at P1). A marker goes
    only after its object: a writer that no longer sees it finds the object gone too."""
    stale = {m for m in listing.markers if marked_object(m) not in listing.objects}
    stale |= {marker_name(n) for n in deleted if n.startswith("d/")}
    return await delete_quietly(backend, stale)


__all__ = ["DropSource", "Held", "Listing", "WriterLeases", "candidates", "mark", "tidy"]
