"""``sigmavault vaults add|list|remove``: names for vault locations (``vaults.toml``, see :mod:`sigmavault.named`).

``add NAME URL…`` checks every URL as ``--vault`` would (no I/O: nothing is opened or created),
stores local paths as absolute paths, and folds ``--endpoint``, ``--region``, ``--path-style`` and
``--api-version`` into the URL of a single S3 or Azure place, so ``--vault NAME`` later opens
exactly what the same URL with those options would. ``remove`` forgets a name; the vault itself
is not touched. None of these commands opens a vault or asks for a passphrase.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .. import AlreadyExists, NotFound, UsageError, named
from ..backends.urls import open_backend
from .access import Options
from .output import Output

#: option -> (URL query key, the schemes that take it)
_ENDPOINT_OPTIONS = {"endpoint": ("endpoint", ("s3", "az")), "region": ("region", ("s3",)),
                     "path_style": ("path_style", ("s3",)), "api_version": ("api_version", ("az",))}


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    top = sub.add_parser("vaults", parents=[common], help="name vault locations (vaults.toml)",
                         description="Give vault locations short names: `--vault NAME` then stands for them.")
    vs = top.add_subparsers(dest="vaults_command", metavar="VAULTS_COMMAND", parser_class=type(top))
    vs.required = True

    p = vs.add_parser("add", parents=[common], help="name a vault: NAME URL… (one URL per place)")
    p.add_argument("name", metavar="NAME", help=named.NAME_RULE)
    p.add_argument("places", metavar="URL", nargs="+", help="a path, file://, mem://, s3:// or az:// URL")
    p.add_argument("--endpoint", metavar="URL", help="the S3 endpoint or Azure account URL (one place only)")
    p.add_argument("--region", metavar="REGION", help="the S3 region (one place only)")
    p.add_argument("--path-style", action="store_true", help="S3 path-style addressing (one place only)")
    p.add_argument("--api-version", metavar="VERSION", help="the Azure Blob API version (one place only)")
    p.set_defaults(handler=add)

    p = vs.add_parser("list", parents=[common], help="list the named vaults")
    p.add_argument("--names", action="store_true", help="only the names, one a line (for scripts and completion)")
    p.set_defaults(handler=list_vaults)

    p = vs.add_parser("remove", parents=[common], help="forget a name (the vault itself is not touched)")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(handler=remove)


def _with_options(url: str, args: argparse.Namespace) -> str:
    given = {key: ("true" if flag == "path_style" else value) for flag, (key, _) in _ENDPOINT_OPTIONS.items()
             if (value := getattr(args, flag))}
    if not given:
        return url
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    for flag, (_, schemes) in _ENDPOINT_OPTIONS.items():
        if getattr(args, flag) and scheme not in schemes:
            raise UsageError(f"--{flag.replace('_', '-')} applies to {' and '.join(s + '://' for s in schemes)} "
                             f"places, not {url!r}")
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(given)
    return urlunsplit(parts._replace(query=urlencode(query, safe=":/")))


def _place(url: str) -> str:
    """``url`` as it is stored: local paths absolute; checked as ``--vault`` would (UsageError)."""
    if not url.strip():
        raise UsageError("an empty vault URL: use a path, file://, mem://, s3:// or az://")
    if "://" not in url:
        url = str(Path(url).expanduser().absolute())
    open_backend(url)  # parses and checks the URL and its options; opens nothing
    return url


async def add(opts: Options, args: argparse.Namespace, out: Output) -> None:
    name = named.check_name(args.name)
    if len(args.places) > 1 and any(getattr(args, flag) for flag in _ENDPOINT_OPTIONS):
        raise UsageError("--endpoint, --region, --path-style and --api-version apply to one place; with several "
                         "places put them in each URL (s3://bucket/prefix?endpoint=…&region=…)")
    places = [_place(_with_options(url, args) if len(args.places) == 1 else url) for url in args.places]
    if len(set(places)) != len(places):
        raise UsageError("the same place is named twice")
    with named.editing() as entries:
        if name in entries:
            raise AlreadyExists(f"a vault named {name!r} already exists ({', '.join(entries[name])}): "
                                f"`sigmavault vaults remove {name}` first")
        entries[name] = places
    if os.path.lexists(name):
        out.warn(f"./{name} exists here too: --vault {name} now means the named vault (./{name} means the path)")
    env = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if env and any(p.startswith("s3://") and "endpoint=" not in p for p in places):
        out.note("the S3 endpoint will come from AWS_ENDPOINT_URL(_S3) each time; --endpoint stores it with the name")
    out.result({"name": name, "places": places, "file": str(named.path())},
               f"added vault {name}: {', '.join(places)} (in {named.path()})")


async def list_vaults(opts: Options, args: argparse.Namespace, out: Output) -> None:
    entries = named.load()
    if args.names:
        out.result({"names": list(entries)}, list(entries))
        return
    width = max(map(len, entries), default=0)
    lines = [f"{name if i == 0 else '':<{width}}  {place}"
             for name, places in entries.items() for i, place in enumerate(places)]
    out.result({"file": str(named.path()), "vaults": [{"name": n, "places": p} for n, p in entries.items()]},
               lines or [f"no named vaults (add one with `sigmavault vaults add NAME URL`; file {named.path()})"])


async def remove(opts: Options, args: argparse.Namespace, out: Output) -> None:
    with named.editing() as entries:
        if args.name not in entries:
            raise NotFound(f"no vault named {args.name!r} in {named.path()} (see `sigmavault vaults list`)")
        places = entries.pop(args.name)
    out.result({"name": args.name, "places": places},
               f"removed the name {args.name} (the vault at {', '.join(places)} is not touched)")
