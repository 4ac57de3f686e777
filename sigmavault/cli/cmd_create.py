"""``sigmavault create``: make a new vault and show its fingerprint and recovery code, once.

The new passphrase comes from ``--passphrase-file``, ``SIGMAVAULT_PASSPHRASE`` or is typed twice
(three tries); with none of these and no terminal it is a usage error. The recovery code is shown
whenever a vault was created, and on a terminal the command waits until the user says it is
saved. ``--unlock DURATION`` hands the new vault's key to the unlock agent, so the next commands
need no passphrase (what ``scripts/quickstart`` does). A create that fails leaves nothing behind.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

import sigmavault

from .. import UsageError
from .. import _internal as internal
from .._internal import PROFILES, secret_env, tolerated
from . import agent_client
from .access import Options, ask_new_passphrase, notice, passphrase
from .output import Output


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("create", parents=[common], help="create a new vault",
                       description="Create a new vault at --vault (default: the local default vault).")
    p.add_argument("--kdf", choices=sorted(PROFILES), default="interactive",
                   help="passphrase hashing cost (default interactive; minimum is the floor, for tests)")
    p.add_argument("--chunk-size", type=int, default=4, metavar="MIB", help="chunk size in MiB (1–16, power of two)")
    p.add_argument("--create-bucket", action="store_true",
                   help="for s3:// and az:// vaults: create the bucket or container first if it does not exist")
    p.add_argument("--needed", metavar="K", type=int, default=None,
                   help="dispersed vaults (several --vault): places that rebuild every object (default: all but one)")
    p.add_argument("--lock-days", metavar="N", type=int, default=None,
                   help="write every object under a retention lock of N days that even this vault's credentials "
                        "cannot lift (S3 Object Lock, Azure immutability; with --create-bucket the bucket is made "
                        "with Object Lock on)")
    p.add_argument("--lock-mode", choices=("governance", "compliance"), default="governance",
                   help="governance: an administrator with the bypass right can lift a lock; compliance: nobody "
                        "can (default governance)")
    p.add_argument("--compression", choices=("off", "auto", "max"), default="auto",
                   help="zstd per chunk: auto (default) keeps what a quick probe finds compressible, max tries "
                        "harder and is slow, off stores everything as it is; compressed chunks ride in padded "
                        "packs, but how well the data compresses shows in the total stored (README, threat model)")
    p.add_argument("--unlock", metavar="DURATION", default=None,
                   help="keep the new vault unlocked for DURATION (unlock agent), e.g. 15m")
    p.set_defaults(handler=run)


def _wait_until_saved(out: Output) -> None:
    """On a terminal: the code must not scroll away unseen. Waits for Enter (Ctrl-C/EOF also end it)."""
    if out.json or not (sys.stdin.isatty() and sys.stdout.isatty()):
        return
    with contextlib.suppress(EOFError):
        input("Press Enter once you have saved the recovery code: ")


async def run(opts: Options, args: argparse.Namespace, out: Output) -> None:
    ttl = None
    if args.unlock is not None:
        try:
            ttl = agent_client.parse_duration(args.unlock)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if opts.passphrase_file or secret_env("SIGMAVAULT_PASSPHRASE") is not None:
        pw = passphrase(opts)
    else:
        pw = ask_new_passphrase("New passphrase: ")  # typed twice
    if not len(pw.secret):
        raise UsageError("the passphrase must not be empty")
    dispersed = len(opts.urls) > 1
    if args.needed is not None and not dispersed:
        raise UsageError("--needed is for a dispersed vault: give each of its places with --vault")
    extra: dict[str, Any] = {"needed": args.needed, "write_quorum": opts.write_quorum} if dispersed else {}
    vault = await sigmavault.create(opts.target, passphrase=pw.secret.reveal().decode("utf-8"), kdf=args.kdf,
                                    chunk_size=args.chunk_size << 20, create_bucket=args.create_bucket,
                                    single_writer=opts.single_writer, on_notice=notice, lock_days=args.lock_days,
                                    lock_mode=args.lock_mode, compression=args.compression, **extra)
    async with vault:
        code = vault.recovery_code or ""
        folder = internal.vault_state_folder(vault)
        doc = {"url": opts.url, "fingerprint": vault.fingerprint, "generation": vault.generation,
               "recovery_code": code, "kdf": args.kdf, "state_dir": str(folder), "compression": args.compression}
        lines = [f"created vault {opts.url}"]
        if dispersed:
            n = len(opts.urls)
            k = n - 1 if args.needed is None else args.needed
            doc.update(places=opts.urls, needed=k, may_lose=tolerated(k, n))
            lines.append(f"dispersed:     any {k} of {n} places rebuild it; it may lose {tolerated(k, n)} place(s)")
        if args.lock_days is not None:
            doc.update(lock_days=args.lock_days, lock_mode=args.lock_mode)
            lines.append(f"locked:        every object for {args.lock_days} days ({args.lock_mode})")
        out.result(doc, [
            *lines,
            f"fingerprint:   {vault.fingerprint}",
            f"local state:   {folder}",
            "",
            "recovery code (shown only now; write it down and keep it safe — it opens the vault):",
            f"  {code}",
            "",
        ])
        _wait_until_saved(out)
        if ttl is not None:
            status = await agent_client.store(*vault.keys.agent_key(), ttl)
            out.note(f"unlocked for {args.unlock} (agent pid {status.get('pid')}; `sigmavault lock` locks it now)")
