"""``sigmavault create``: make a new vault and show its fingerprint and recovery code, once."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..engine import session
from ..engine.errors import UsageError
from .access import Options, ask_new_passphrase, passphrase
from .output import Output


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("create", parents=[common], help="create a new vault",
                       description="Create a new vault at --vault (default: the local default vault).")
    p.add_argument("--kdf", choices=sorted(session.PROFILES), default="interactive",
                   help="passphrase hashing cost (default interactive; minimum is the floor, for tests)")
    p.add_argument("--chunk-size", type=int, default=4, metavar="MIB", help="chunk size in MiB (1–16, power of two)")
    p.add_argument("--create-bucket", action="store_true",
                   help="for s3:// and az:// vaults: create the bucket or container first if it does not exist")
    p.set_defaults(handler=run)


async def run(opts: Options, args: argparse.Namespace, out: Output) -> None:
    if opts.passphrase_file or os.environ.get("SIGMAVAULT_PASSPHRASE") is not None:
        pw = passphrase(opts)
    else:
        pw = ask_new_passphrase("New passphrase: ")  # typed twice
    if not len(pw.secret):
        raise UsageError("the passphrase must not be empty")
    vault = await session.create(opts.url, passphrase=pw.secret.reveal().decode("utf-8"), kdf=args.kdf,
                                 chunk_size=args.chunk_size << 20, create_bucket=args.create_bucket)
    async with vault:
        code = vault.recovery_code or ""
        doc = {"url": opts.url, "fingerprint": vault.fingerprint, "generation": vault.generation,
               "recovery_code": code, "kdf": args.kdf}
        out.result(doc, [
            f"created vault {opts.url}",
            f"fingerprint:   {vault.fingerprint}",
            "",
            "recovery code (shown only now; write it down and keep it safe — it opens the vault):",
            f"  {code}",
        ])
