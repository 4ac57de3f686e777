"""Working with paths inside the vault: ``ls [-l]``, ``cat``, ``mkdir [-p]``, ``rm [-r]``, ``mv [-f]``.

Vault paths are absolute or relative to the vault root; ``.``/``..`` components and NUL bytes are
refused. Each changing command validates every argument first and commits one generation at the
end, so a failed command changes nothing.
"""

from __future__ import annotations

import argparse
import base64
import sys
from typing import Any

from .. import AlreadyExists, NotFound, UsageError
from .._internal import show, split_path
from .access import Options, open_vault
from .output import Output, long_lines, stat_doc


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("ls", parents=[common], help="list a vault directory")
    p.add_argument("path", nargs="?", default="/", metavar="PATH")
    p.add_argument("-l", dest="long", action="store_true", help="long listing: mode, size, time")
    p.set_defaults(handler=ls)

    p = sub.add_parser("cat", parents=[common], help="write a vault file to stdout")
    p.add_argument("path", metavar="PATH")
    p.set_defaults(handler=cat)

    p = sub.add_parser("mkdir", parents=[common], help="make vault directories")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("-p", "--parents", action="store_true", help="make parents as needed; no error if existing")
    p.set_defaults(handler=mkdir)

    p = sub.add_parser("rm", parents=[common], help="remove vault files or directories (directories with -r)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("-r", "--recursive", action="store_true", help="remove directories and their contents")
    p.set_defaults(handler=rm)

    p = sub.add_parser("mv", parents=[common], help="move or rename inside the vault")
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST", help="new name, or an existing directory to move into")
    p.add_argument("-f", "--force", action="store_true", help="replace an existing DST")
    p.set_defaults(handler=mv)


async def ls(opts: Options, args: argparse.Namespace, out: Output) -> None:
    path = show(split_path(args.path))
    async with await open_vault(opts) as vault:
        entries = await vault.ls(path)
        top = await vault.stat(path)
    doc = {"path": path, "type": top.type, "entries": [stat_doc(e) for e in entries]}
    if args.long:
        out.result(doc, long_lines(entries))
    else:
        out.result(doc, [e.name + ("/" if e.type == "dir" else "") for e in entries])


async def cat(opts: Options, args: argparse.Namespace, out: Output) -> None:
    path = show(split_path(args.path))
    async with await open_vault(opts) as vault:
        st = await vault.stat(path)
        if st.type != "file":
            raise UsageError(f"{path} is a {'directory' if st.type == 'dir' else st.type}, not a file")
        offset = 0
        sink = sys.stdout.buffer
        async for piece in vault.open_read(path):
            if out.json:
                out.event({"event": "data", "offset": offset, "data": base64.b64encode(piece).decode()})
            else:
                sink.write(piece)
            offset += len(piece)
        if out.json:
            out.event({"event": "done", "path": path, "bytes": offset})
        else:
            sink.flush()


async def mkdir(opts: Options, args: argparse.Namespace, out: Output) -> None:
    paths = [show(split_path(p)) for p in args.paths]
    async with await open_vault(opts) as vault:
        for p in paths:
            await vault.mkdir(p, parents=args.parents, exist_ok=args.parents)
        gen = await vault.commit()
    out.result({"created": paths, "generation": gen}, None)


async def rm(opts: Options, args: argparse.Namespace, out: Output) -> None:
    paths = [show(split_path(p)) for p in args.paths]
    if "/" in paths:
        raise UsageError("refusing to remove the root of the vault")
    async with await open_vault(opts) as vault:
        for p in paths:
            if not args.recursive and (await vault.stat(p)).type == "dir":
                raise UsageError(f"{p} is a directory (use -r to remove it and its contents)")
        for p in paths:
            await vault.rm(p, recursive=args.recursive)
        gen = await vault.commit()
    out.result({"removed": paths, "generation": gen}, None)


async def mv(opts: Options, args: argparse.Namespace, out: Output) -> None:
    src_parts, dst_parts = split_path(args.src), split_path(args.dst)
    if not src_parts:
        raise UsageError("cannot move the root of the vault")
    async with await open_vault(opts) as vault:
        await vault.stat(show(src_parts))  # NotFound before anything else
        try:
            st = await vault.stat(show(dst_parts))
        except NotFound:
            st = None
        if st is not None and st.type == "dir":
            dst_parts = [*dst_parts, src_parts[-1]]  # like mv: into an existing directory
            try:
                await vault.stat(show(dst_parts))
                exists = True
            except NotFound:
                exists = False
        else:
            exists = st is not None
        if exists and not args.force:
            raise AlreadyExists(f"{show(dst_parts)} already exists (use --force to replace it)")
        await vault.mv(show(src_parts), show(dst_parts), replace=args.force)
        gen = await vault.commit()
    out.result({"from": show(src_parts), "to": show(dst_parts), "generation": gen}, None)
