"""``sigmavault serve http [--listen HOST:PORT] [--read-only] [--token-file F] [--metrics HOST:PORT]``.

Opens the vault once (the agent or a credential, like every command), serves it with
:mod:`sigmavault.gateway` until SIGINT or SIGTERM, then stops listening, commits anything pending
and closes the vault (exit 0). A non-loopback address is refused without ``--token-file``: the
gateway hands out decrypted files. Once listening it prints one line
(``serving … at http://HOST:PORT/``; with ``--json`` a ``{"event":"listening",…}`` document) so
scripts can wait for it; ``--listen 127.0.0.1:0`` picks a free port and says which.
Log lines (errors, damaged data) go to stderr without tracebacks unless ``--debug``; the access log
is off (request paths name vault files). ``--metrics`` adds the Prometheus exporter
(:mod:`.metrics_opt`), named in the listening document as ``"metrics"``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from typing import Any

from .. import LocalIOError, UsageError
from . import metrics_opt
from .access import Options, _read_secret_file, open_vault
from .listen import is_loopback, parse_listen
from .output import Output

DEFAULT_LISTEN = "127.0.0.1:8080"
MIN_TOKEN = 16
DESCRIPTION = (
    "Serve the vault over HTTP: GET/HEAD stream files (with Range, ETag, If-None-Match, If-Range), GET of a "
    "directory lists it (JSON with ?format=json or Accept: application/json, else HTML), PUT stores the request "
    "body as a file and commits, DELETE removes a file or empty directory and commits. Runs until Ctrl-C or "
    "SIGTERM. Without --token-file anyone who can connect reads the decrypted vault, so only loopback "
    "addresses are allowed then.")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common], help="serve the vault over a network protocol",
                       description="Serve the vault over a network protocol (http).")
    protocols = p.add_subparsers(dest="protocol", metavar="PROTOCOL")
    protocols.required = True
    h = protocols.add_parser("http", parents=[common], help="an HTTP gateway (GET/HEAD/PUT/DELETE, Range)",
                             description=DESCRIPTION)
    h.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                   help=f"address to listen on ({DEFAULT_LISTEN}; [::1]:PORT for IPv6; port 0 picks a free one); "
                        "an address other than loopback needs --token-file")
    h.add_argument("--read-only", action="store_true", help="refuse PUT and DELETE (405)")
    h.add_argument("--token-file", metavar="FILE",
                   help="require 'Authorization: Bearer TOKEN' on every request, TOKEN being the first line of "
                        f"FILE (at least {MIN_TOKEN} characters)")
    h.add_argument("--refresh-interval", type=float, default=5.0, metavar="S",
                   help="adopt other clients' commits every S seconds (5; 0: never)")
    metrics_opt.add_arguments(h)
    h.set_defaults(handler=run_http)


def read_token(name: str) -> str:
    raw = _read_secret_file(name, "token").decode("utf-8", "replace")
    token = raw.splitlines()[0].strip() if raw.strip() else ""
    if len(token) < MIN_TOKEN or not token.isascii() or not token.isprintable() or " " in token:
        raise UsageError(f"the token file {name} must hold a token of at least {MIN_TOKEN} printable ASCII "
                         "characters without spaces on its first line")
    return token


class _NoTraceback(logging.Formatter):
    def formatException(self, ei: Any) -> str:
        return ""

    def formatStack(self, stack_info: str) -> str:
        return ""


def _setup_logging(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    fmt = "sigmavault: %(levelname)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt) if debug else _NoTraceback(fmt))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)


async def run_http(opts: Options, args: argparse.Namespace, out: Output) -> None:
    host, port = parse_listen(args.listen)
    token = read_token(args.token_file) if args.token_file else None
    if token is None and not is_loopback(host):
        raise UsageError(f"refusing to serve on {host}, which is not a loopback address, without --token-file: "
                         "anyone who can connect would read the decrypted vault")
    metrics_at = metrics_opt.address(args)
    try:
        from aiohttp import web

        from ..gateway import make_app
    except ImportError:
        raise UsageError("the HTTP gateway needs aiohttp: pip install 'sigmavault[http]'") from None
    _setup_logging(opts.debug)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with await open_vault(opts) as vault, contextlib.AsyncExitStack() as stack:
            vault.refresh_interval = args.refresh_interval if args.refresh_interval > 0 else None
            runner = web.AppRunner(make_app(vault, read_only=args.read_only, token=token), access_log=None,
                                   handle_signals=False)
            await runner.setup()
            try:
                exporter = stack.enter_context(metrics_opt.serving(vault, metrics_at))
                site = web.TCPSite(runner, host, port)
                try:
                    await site.start()
                except OSError as exc:
                    raise LocalIOError(f"cannot listen on {args.listen}: {exc.strerror or exc}") from None
                bound = runner.addresses[0]
                shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
                url = f"http://{shown}:{bound[1]}/"
                mode = "read-only" if args.read_only else "read-write"
                doc = {"event": "listening", "url": url, "read_only": args.read_only, "token": token is not None,
                       "generation": vault.generation, **({"metrics": exporter.url} if exporter else {})}
                out.result(doc, f"serving the vault ({mode}{', token required' if token else ''}) at {url}"
                           f"{f', metrics at {exporter.url}' if exporter else ''}; Ctrl-C stops")
                await stop.wait()
            finally:
                await runner.cleanup()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
