"""``sigmavault key list|passwd|add|remove``: the vault's key slots (CRYPTO.md §1.4) through ``vault.keys``.

Every change writes keystore generation + 1 create-only and deletes the older ``k/`` objects; no
data is re-encrypted. ``passwd`` always asks for the current credential (never the agent's key),
so it knows which slot to re-wrap. New passphrases come from ``--new-passphrase-file`` or are
typed twice. ``add --two-factor`` binds the slot to this device's secret
(``config_dir()/device-secret``, mode 0600): it opens only with both. ``add --writer`` adds a
write-only client and writes its credential file (mode 0600, created exclusively: never over an
existing file); ``remove`` of a writer slot revokes that writer. The commands use the library's
key facet (:class:`sigmavault.Keys`, ``vault.keys``), not the keystore itself.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import Any

from .. import LocalIOError, UsageError
from .. import _internal as internal
from .._internal import PROFILES, Changed, SlotInfo, normalize_prefix
from . import cmd_rekey
from .access import Options, ask_new_passphrase, open_vault, probe
from .output import Output


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    key = sub.add_parser("key", parents=[common],
                         help="manage key slots (passphrases, two-factor, recipients, devices, writers)")
    ks = key.add_subparsers(dest="key_command", metavar="KEY_COMMAND", parser_class=type(key))
    ks.required = True

    p = ks.add_parser("list", parents=[common], help="list the key slots")
    p.set_defaults(handler=list_slots)

    p = ks.add_parser("passwd", parents=[common], help="change the passphrase of a slot")
    p.add_argument("--slot", metavar="ID", help="slot to change (default: the one that unlocked)")
    p.add_argument("--new-passphrase-file", metavar="FILE", help="read the new passphrase from FILE")
    p.add_argument("--kdf", choices=sorted(PROFILES), default=None, help="new hashing cost (default: keep)")
    p.set_defaults(handler=passwd)

    p = ks.add_parser("add", parents=[common], help="add a key slot")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--passphrase", action="store_true", help="another passphrase")
    kind.add_argument("--two-factor", action="store_true", help="a passphrase that also needs this device's secret")
    kind.add_argument("--recipient", metavar="AGE1PQ", help="another person's age1pq1… public key")
    kind.add_argument("--device", action="store_true",
                      help="this device (opens with no passphrase once pinned), or with --public-key another "
                           "device, by the key `sigmavault key device` printed there")
    kind.add_argument("--writer", action="store_true",
                      help="a write-only client (a server that backs up into the vault but cannot read it): "
                           "needs --to and --out")
    p.add_argument("--public-key", metavar="AGE1PQ", help="with --device: the other device's key")
    p.add_argument("--to", metavar="VAULT_DIR", help="with --writer: the vault folder it may write under (/web-1)")
    p.add_argument("--out", metavar="FILE",
                   help="with --writer: the credential file to create (mode 0600; never overwrites)")
    p.add_argument("--label", default=None, help="a name for the slot (shown by key list)")
    p.add_argument("--new-passphrase-file", metavar="FILE", help="read the new slot's passphrase from FILE")
    p.add_argument("--kdf", choices=sorted(PROFILES), default="interactive", help="hashing cost of a passphrase")
    p.set_defaults(handler=add)

    p = ks.add_parser("device", parents=[common], help="print this device's public key for the vault (no unlock)",
                      description="Print this device's age1pq1… key for --vault, to enrol it from a device that "
                                  "can open the vault: `sigmavault key add --device --public-key KEY`. Then open "
                                  "here with --fingerprint (shown by `sigmavault info` there) and no passphrase. "
                                  "The device key (config dir, mode 0600) is created on first use; each vault "
                                  "sees a different public key.")
    p.set_defaults(handler=device)

    p = ks.add_parser("remove", parents=[common], help="remove a key slot (a writer's: revoke that writer)")
    p.add_argument("slot", metavar="SLOT", help="hex id (or a unique prefix of at least 4 digits)")
    p.add_argument("--rekey", action="store_true",
                   help="revoke for real: remove the slot and rekey in one step (a new vault key and key epoch, "
                        "see `sigmavault rekey`); prints what the revoked party may still hold")
    cmd_rekey.drop_option(p)
    cmd_rekey.rewrite_option(p)
    p.set_defaults(handler=remove)


def _slot_doc(s: SlotInfo, current: bytes) -> dict[str, Any]:
    doc = {"id": s.id_hex, "type": s.type, "kind": s.kind, "label": s.label, "unlocked_with": s.id == current}
    if s.prefix is not None:
        doc["prefix"] = s.prefix
    return doc


def _slot_line(s: SlotInfo, current: bytes) -> str:
    kind = s.type + (f"/{s.kind}" if s.kind else "")
    where = f"  (writes under {s.prefix})" if s.prefix is not None else ""
    return f"{s.id_hex}  {kind:<18} {s.label}{where}{'  (unlocked with this)' if s.id == current else ''}"


def _changed(out: Output, what: str, ch: Changed) -> None:
    doc: dict[str, Any] = {"keystore_generation": ch.generation, "stale_copies": ch.stale}
    lines = [f"{what}; keystore generation {ch.generation}"]
    if ch.slot is not None:
        doc["slot"] = _slot_doc(ch.slot, b"")
        lines.append(f"slot {ch.slot.id_hex} ({ch.slot.type}) {ch.slot.label}")
    if ch.stale:
        out.warn(f"{ch.stale} older keystore copies could not be deleted; they still open with the old keys")
    out.result(doc, lines)


async def list_slots(opts: Options, args: argparse.Namespace, out: Output) -> None:
    async with await open_vault(opts) as v:
        keys = v.keys
        slots, current = keys.slots(), keys.opened_slot
    out.result({"keystore_generation": keys.generation, "slots": [_slot_doc(s, current) for s in slots]},
               [_slot_line(s, current) for s in slots])


async def passwd(opts: Options, args: argparse.Namespace, out: Output) -> None:
    async with await open_vault(opts, use_agent=False) as v:  # the current credential
        slot = v.keys.find(args.slot) if args.slot else None
        new = ask_new_passphrase("New passphrase: ", args.new_passphrase_file)
        profile = PROFILES[args.kdf] if args.kdf else None
        ch = await v.keys.change_passphrase(new, slot_id=slot, profile=profile)
    _changed(out, "passphrase changed", ch)


async def add(opts: Options, args: argparse.Namespace, out: Output) -> None:
    if args.public_key and not args.device:
        raise UsageError("--public-key goes with --device (a person's key: --recipient)")
    if args.writer:
        return await add_writer(opts, args, out)
    if args.to is not None or args.out is not None:
        raise UsageError("--to and --out go with --writer")
    async with await open_vault(opts) as v:
        profile = PROFILES[args.kdf]
        if args.recipient:
            ch = await v.keys.add_recipient(args.recipient, args.label or "recipient")
            what = "recipient added"
        elif args.device:
            ch = await v.keys.add_device(args.label or ("another device" if args.public_key else "this device"),
                                         args.public_key)
            what = "device added" if args.public_key else f"this device added (device key: {v.keys.device_key})"
        else:
            new = ask_new_passphrase("Passphrase for the new slot: ", args.new_passphrase_file)
            if args.two_factor:
                ch = await v.keys.add_two_factor(new, args.label or "passphrase + this device", profile)
                what = f"two-factor slot added (device secret: {v.keys.device_secret})"
            else:
                ch = await v.keys.add_passphrase(new, args.label or "passphrase", profile)
                what = "passphrase slot added"
    _changed(out, what, ch)


def _reserve(path: str) -> int:
    """Create the credential file exclusively (mode 0600, no symlink followed) before the writer exists."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError as exc:
        raise UsageError(f"{path} already exists: choose another --out (nothing was changed)") from exc
    except OSError as exc:
        raise LocalIOError(f"cannot create the credential file {path}: {exc.strerror}") from exc


async def add_writer(opts: Options, args: argparse.Namespace, out: Output) -> None:
    if not args.to or not args.out:
        raise UsageError("--writer needs --to VAULT_DIR (the folder it may write under) and --out FILE")
    prefix = normalize_prefix(args.to)
    label = args.label or prefix.rsplit("/", 1)[-1]
    fd = _reserve(args.out)
    try:
        async with await open_vault(opts) as v:
            cred = await v.keys.add_writer(label, prefix)
            generation = v.keys.generation
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(args.out)
        raise
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(cred.to_bytes())
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise LocalIOError(f"writer {cred.writer_id.hex()} was added but its credential could not be written to "
                           f"{args.out} ({exc.strerror}): remove it with `sigmavault key remove "
                           f"{cred.writer_id.hex()}` and add it again") from exc
    doc = {"keystore_generation": generation, "writer": cred.writer_id.hex(), "label": cred.label,
           "prefix": cred.prefix, "epoch": cred.epoch, "credential": args.out}
    out.result(doc, f"writer {cred.writer_id.hex()} ({cred.label}) may write under {cred.prefix}: its credential "
                    f"is in {args.out} (mode 0600); that file holds no key that reads the vault")


async def device(opts: Options, args: argparse.Namespace, out: Output) -> None:
    await probe(opts)
    key = await internal.device_recipient(opts.target)
    out.result({"url": opts.url, "public_key": key}, key)


async def remove(opts: Options, args: argparse.Namespace, out: Output) -> None:
    if args.rekey:
        await cmd_rekey.run(opts, out, remove=args.slot, drop=args.drop_passphrase_slots, rewrite=args.rewrite)
        return
    if args.drop_passphrase_slots or args.rewrite:
        raise UsageError("--drop-passphrase-slots and --rewrite go with --rekey")
    async with await open_vault(opts) as v:
        slot = v.keys.find(args.slot)
        writer = any(s.id == slot and s.type == "writer" for s in v.keys.slots())
        ch = await v.keys.remove(slot)
    what = f"writer {slot.hex()} revoked: its later drops will be refused" if writer else f"slot {slot.hex()} removed"
    _changed(out, what, ch)
