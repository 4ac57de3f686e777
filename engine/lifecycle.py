"""Forget and audit: the history's own records, read from and written to the hash chain.

``forget`` applies the keep rules (:mod:`.retention`) to the generations still kept and records
the decision as a commit of the head's own root whose ``meta.forget`` names the forgotten
generations (as ranges) and the rules; who and when are the record's own ``meta`` and ``time``.
A forget record is not a snapshot: the rules never count it, and each forget also forgets the
earlier forget records still shown (the audit keeps reading them from the chain), so ``log`` shows
the kept snapshots and at most the latest record. Decided once against the head; a record that
would outgrow ``meta``'s bound is split into several, oldest generations first.

``audit`` reads every commit record of the chain, forgotten ones included (a record is never
deleted): who wrote it (slot id and label, client, host if recorded), when, what it changed, what
it forgot, and where the keystore generation moved (a key slot was added, removed or changed; the
commit does not say which, and old keystores are not kept, so which slot is not derivable).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from .anomaly import is_record
from .format.commits import ChainHead, Commit
from .format.dropmeta import Drops
from .format.meta import ranges
from .repo.history import History
from .retention import Decision, Rules, apply

Meta = dict[str, Any]
MAX_RANGES = 2000  # forget ranges per record: well inside meta.MAX_META


@dataclass(frozen=True, slots=True)
class ForgetReport:
    """What ``forget`` decided (and, unless ``dry_run``, recorded)."""

    forgotten: tuple[int, ...]  # snapshots forgotten (ascending); earlier forget records go too
    kept: Mapping[int, tuple[str, ...]]  # kept snapshot -> the rules that keep it
    rules: Mapping[str, int | str]
    dry_run: bool
    records: tuple[int, ...] = ()  # the generations of the forget records written


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One event of the history: ``commit``, ``forget``, ``keys`` (slots changed, or the keystore
    generation moved), ``prune`` and ``repair`` (runs, with their counts), ``rekey``, ``rewrite`` and
    ``repack`` (a rewrite map under the same epoch: prune moved live blobs out of packs), ``drop`` (a write-only
    client's drop taken in) or ``refused`` (a drop refused, and why)."""

    event: str
    generation: int
    time: int
    client: str  # hex client id of the writer
    slot: str | None = None  # hex id of the slot that unlocked the writer
    slot_label: str | None = None
    host: str | None = None
    counts: Mapping[str, int] | None = None
    forgot: tuple[tuple[int, int], ...] = ()  # inclusive ranges
    rules: Mapping[str, int | str] = field(default_factory=dict)
    keystore_generation: int = 0
    forgotten_by: int | None = None  # a later forget record hid this generation from ``log``
    writer: str | None = None  # drop, refused: hex id of the write-only client
    writer_label: str | None = None
    drop: int | None = None  # its seq
    dest: str | None = None  # drop: where it went
    why: str | None = None  # refused: the reason
    #: keys: the slot changes the commit recorded ({"op", "slot" b64u, "type", "label"}); empty when
    #: only the keystore generation moved (a change not recorded, e.g. by an older client)
    keys: tuple[Mapping[str, str], ...] = ()
    epoch: int | None = None  # rekey: the key epoch the record started; rewrite: the epoch it re-encrypted under


def who(c: Commit) -> dict[str, Any]:
    """The writer fields of a commit, as ``log -v`` and ``audit`` show them."""
    a = c.audit
    return {
        "client": c.client.hex(),
        "slot": None if a.slot is None else a.slot.hex(),
        "slot_label": a.slot_label,
        "host": a.host,
    }


async def _split(history: History) -> tuple[list[tuple[int, int]], list[int]]:
    """The kept snapshots as ``(gen, time)`` and the kept forget records."""
    snaps, records = [], []
    for g in sorted(await history.kept_generations()):
        c = await history.commit_at(g)
        if is_record(c):  # a forget, a guard clear or tune: not a snapshot
            records.append(g)
        else:
            snaps.append((g, c.time))
    return snaps, records


async def decide(history: History, rules: Rules, tz: tzinfo | None = None) -> tuple[Decision, list[int]]:
    """The decision over the kept snapshots, and the forget records it also drops."""
    snaps, records = await _split(history)
    return apply(snaps, rules, tz), records


def report(d: Decision, rules: Rules, dry_run: bool, records: tuple[int, ...] = ()) -> ForgetReport:
    return ForgetReport(
        tuple(d.forget), {g: tuple(r) for g, r in sorted(d.keep.items())}, rules.as_meta(), dry_run, records
    )


def next_chunk(history: History, gone: set[int], rules: Rules) -> Callable[[ChainHead], Awaitable[Meta | None]]:
    """``decide`` for :meth:`Committer.record`: the next ranges of ``gone`` still kept at the head."""

    async def chunk(head: ChainHead) -> Meta | None:
        left = sorted(gone & await history.kept_generations())
        if not left:
            return None  # nothing left (or someone else forgot it meanwhile)
        return {"forget": {"gens": ranges(left)[:MAX_RANGES], "rules": rules.as_meta()}}

    return chunk


async def audit(history: History, since: int | None = None) -> list[AuditEntry]:
    """Every commit record, oldest first, with the keystore changes between them (``since``: unix time)."""
    out: list[AuditEntry] = []
    await history.kept_generations()  # reads and verifies the whole chain once
    before = None
    for g in range(history.top + 1):
        c = await history.commit_at(g)
        a = c.audit
        base = dict(generation=g, time=c.time, keystore_generation=c.keystore_gen, **who(c))
        shown = since is None or c.time >= since
        if a.keys and shown:
            out.append(AuditEntry("keys", keys=a.keys, **base))
        elif before is not None and c.keystore_gen > before and shown:
            out.append(AuditEntry("keys", **base))
        before = c.keystore_gen
        if since is not None and c.time < since:
            continue
        if a.forget is not None:
            out.append(
                AuditEntry(
                    "forget",
                    forgot=a.forget.ranges,
                    rules=dict(a.forget.rules),
                    forgotten_by=history.forgotten_by(g),
                    **base,
                )
            )
        elif a.rekey is not None:
            out.append(AuditEntry("rekey", epoch=a.rekey, **base))
        elif a.rewrite is not None:  # a repack's map (prune) or a rekey's rewrite: who wrote it, either way
            out.append(AuditEntry("rewrite" if a.repack is None else "repack", epoch=a.rewrite.epoch,
                                  counts=None if a.repack is None else dict(a.repack), **base))
        elif a.prune is not None or a.repair is not None:
            out.append(AuditEntry("prune" if a.prune is not None else "repair",
                                  counts=dict(a.prune if a.prune is not None else a.repair or {}), **base))
        elif not (a.keys and a.counts is None):  # a record of key changes alone is its "keys" event
            out.append(
                AuditEntry(
                    "commit",
                    counts=None if a.counts is None else dict(a.counts),
                    forgotten_by=history.forgotten_by(g),
                    **base,
                )
            )
        if a.drops is not None:
            out.extend(_drop_events(history, a.drops, base))
    return out


def _drop_events(history: History, drops: Drops, base: dict[str, Any]) -> list[AuditEntry]:
    labels = {w.id: w.label for w in history.writers}
    out = [AuditEntry("drop", writer=i.writer.hex(), writer_label=labels.get(i.writer), drop=i.seq,
                      dest=os.fsdecode(i.dest), counts={"added": i.files, "bytes": i.bytes}, **base)
           for i in drops.ingested]
    out += [AuditEntry("refused", writer=r.writer.hex(), writer_label=labels.get(r.writer), drop=r.seq, why=r.why,
                       **base) for r in drops.refused]
    return out


__all__ = ["AuditEntry", "ForgetReport", "audit", "decide", "next_chunk", "report", "who"]
