"""``sigmavault rekey`` and ``key remove SLOT --rekey``: a new KSK and key epoch beside other writers.

Always asks for the credential (never the agent's key): the passphrase slot it opens is re-wrapped
under the new KSK. Device, recovery and recipient slots are re-wrapped from their public keys;
other passphrase slots cannot be (their passphrases are not known here) and are dropped only with
``--drop-passphrase-slots``. Run again after a kill, ``rekey`` finishes the rekey it began. The
protocol is docs/format.md, "Rekey beside writers"; the library call is :meth:`Vault.rekey`.
An unlock agent holding this vault's old KSK is handed the new one for the time the old one had
left (the old one opens no newer keystore: it would only keep revoked key material in memory).

``--rewrite`` then re-encrypts every kept generation under the new epoch (docs/format.md, "Rewriting
under the new epoch"; ``vault.rewriter``); run again after a kill, it finishes that rewrite
rather than starting another epoch. ``prune`` afterwards deletes the old epoch's objects.
"""

from __future__ import annotations

import argparse
from typing import Any

from .. import UsageError
from .._internal import Rekeyed, Rewritten, SlotInfo
from . import agent_client
from .access import Options, probe, unlock
from .output import Output


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("rekey", parents=[common],
                       help="start a new key epoch under a new vault key (revocation; safe beside other writers)",
                       description="Draw a new vault key (KSK) and start key epoch e+1: new writes use it, and e "
                                   "is retired at the last generation written under it. Whoever held the old keys "
                                   "(a removed slot's holder) cannot read anything written afterwards. Objects "
                                   "already written stay under their epoch unless --rewrite re-encrypts them.")
    drop_option(p)
    rewrite_option(p)
    p.set_defaults(handler=rekey)


def drop_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--drop-passphrase-slots", action="store_true",
                   help="drop the passphrase slots other than yours (their passphrases are not known here, so "
                        "they cannot be re-wrapped under the new key); without it such slots stop the rekey")


def rewrite_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rewrite", action="store_true",
                   help="also re-encrypt every object of every kept generation under the new epoch (old "
                        "generations stay readable through the new keys alone); then `sigmavault prune` "
                        "deletes the old epoch's objects. Run again after an interruption, it finishes")


def _slot(s: SlotInfo) -> dict[str, Any]:
    return {"id": s.id_hex, "type": s.type, "label": s.label}


async def run(opts: Options, out: Output, *, remove: str | None, drop: bool, rewrite: bool = False) -> Rekeyed | None:
    """Open with the credential, rekey (revoking ``remove``), rewrite if asked, report; shared with
    ``key remove --rekey``. None: a killed rewrite was finished (no new rekey)."""
    await probe(opts)
    vault, cred = await unlock(opts)
    async with vault:
        slot = vault.keys.find(remove) if remove is not None else None
        resume = rewrite and not vault.keys.unfinished() and await vault.rewriter.pending()
        if resume and slot is not None:
            raise UsageError("an earlier `rekey --rewrite` is not finished: run `sigmavault rekey --rewrite` first")
        done = None if resume else await vault.rekey(cred, remove=slot, drop_passphrase_slots=drop, rewrite=rewrite)
        rewritten = await vault.rewriter.run() if rewrite else None
        writers = [w.label for w in vault.keys.writers() if w.active]
        handed = await agent_client.hand_over(*vault.keys.agent_key())  # a killed rekey --rewrite's too
    report(out, done, rewritten)
    if handed:  # the old KSK it held opens no newer keystore: it would only keep revoked key material
        out.note("the unlock agent now holds the new vault key (for the time the old one had left)")
    if writers:
        out.warn(f"write-only clients ({', '.join(writers)}) still seal their drops to the old epoch's key (their "
                 "drops are re-sealed when taken in): re-issue their credentials (`key add --writer`) so that "
                 "whoever held the old keys cannot read what they send")
    return done


def report(out: Output, done: Rekeyed | None, rewritten: Rewritten | None = None) -> None:
    """One result: the rekey (None: a killed rewrite was finished without one), then the rewrite."""
    doc: dict[str, Any] = {}
    lines: list[str] = []
    if done is not None:
        doc, lines = _rekeyed(done)
    if rewritten is not None:
        r = rewritten
        doc["rewrite"] = {"epoch": r.epoch, "record": r.record, "generations": r.generations, "blobs": r.blobs,
                          "reused": r.reused, "directories": r.pages}
        lines.append(("finished an earlier rewrite: " if done is None else "")
                     + f"rewrote {r.generations} kept generations under key epoch {r.epoch} (generation {r.record} "
                     f"carries the map): {r.blobs} blobs stored again, {r.reused} found stored already, {r.pages} "
                     "directories; `sigmavault prune` deletes the old epoch's objects")
    out.result(doc, lines)
    if done is not None and done.stale:
        out.warn(f"{done.stale} older keystore copies could not be deleted; they open the old keys only")


def _rekeyed(done: Rekeyed) -> tuple[dict[str, Any], list[str]]:
    exposed = done.exposed_through
    doc: dict[str, Any] = {
        "epoch": done.epoch, "record": done.record, "keystore_generation": done.keystore_generation,
        "retired": {str(e): g for e, g in sorted(done.retired.items())}, "exposed_through": exposed,
        "removed": None if done.removed is None else _slot(done.removed),
        "dropped": [_slot(s) for s in done.dropped], "resumed": done.resumed, "stale_copies": done.stale,
    }
    lines = [("finished an earlier rekey: " if done.resumed else "") + f"key epoch {done.epoch} is current"
             + (f" (rekey record: generation {done.record})" if done.record is not None else "")
             + f"; keystore generation {done.keystore_generation} under a new vault key"]
    for e, g in sorted(done.retired.items()):
        lines.append(f"epoch {e} retired at generation {g}")
    if not done.retired:
        lines.append("the old epoch is retired once a commit of the new one exists (the next commit does it)")
    if done.removed is not None:
        lines.append(f"slot {done.removed.id.hex()} ({done.removed.type}) {done.removed.label} revoked")
        lines.append("what its holder may still hold: whatever they copied of generations up to "
                     f"{exposed if exposed is not None else 'the rekey'} (the keys to read them); nothing written "
                     "after that. Rotate the storage credentials too: they could still delete or replace objects")
    for s in done.dropped:
        lines.append(f"dropped passphrase slot {s.id.hex()} ({s.label}): add it again with `sigmavault key add`")
    return doc, lines


async def rekey(opts: Options, args: argparse.Namespace, out: Output) -> None:
    await run(opts, out, remove=None, drop=args.drop_passphrase_slots, rewrite=args.rewrite)
