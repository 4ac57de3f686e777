"""``sigmavault stats [MOUNTPOINT]``: the metrics of a running mount, read over its private stats socket.

Every mount serves :meth:`Vault.metrics` (docs/metrics.md) on a Unix socket next to its pid file,
``$XDG_RUNTIME_DIR/sigmavault/mounts/<hash of the mount point>.stats`` (folder 0700, socket 0600;
only a peer of the same uid is answered). A client connects and reads one JSON document; there is
no request and nothing to send, so the socket can change nothing. No Prometheus is needed:
``mount --metrics`` is the exporter for a scraper, this is for the person at the terminal.

The document holds counts, bytes and seconds only, and the mount point and vault location the user
gave (both already known to anyone who may open the socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from .. import NotFound, Vault, VaultError
from .agent import peer_uid
from .output import Output, human_size
from .unixpath import reachable

log = logging.getLogger(__name__)
MAX_DOC = 1 << 20
SUFFIX = ".stats"


def document(vault: Vault, mountpoint: str, guard: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stats document of a mount: the vault's metrics snapshot as plain JSON values, and the
    mount guard's counters (``guard``). ``mountpoint`` is resolved before mounting: resolving it in
    the mount would ask the mount itself."""
    return {"mountpoint": mountpoint, "pid": os.getpid(), "vault": vault.url, **dataclasses.asdict(vault.metrics()),
            **({"guard": guard} if guard is not None else {})}


@contextlib.asynccontextmanager
async def serving(path: Path, make: Callable[[], dict[str, Any]]) -> AsyncIterator[None]:
    """Answer every connection at ``path`` with ``make()`` as JSON while the block runs. A socket that
    cannot be made (a path too long, a read-only folder) is logged and the mount goes on without it."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            if sock is not None and peer_uid(sock) == os.getuid():
                writer.write(json.dumps(make(), separators=(",", ":")).encode() + b"\n")
                await writer.drain()
        except (OSError, VaultError) as exc:
            log.debug("stats: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    server: asyncio.Server | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by a killed mount of this mount point (this one is not mounted yet)
        old_umask = os.umask(0o177)
        try:
            with reachable(path) as name:
                server = await asyncio.start_unix_server(answer, path=name)
        finally:
            os.umask(old_umask)
    except OSError as exc:
        log.warning("no stats socket (`sigmavault stats` will not see this mount): %s", exc.strerror or exc)
    try:
        yield
    finally:
        if server is not None:
            server.close()
            with contextlib.suppress(OSError):
                path.unlink()


async def fetch(path: Path) -> dict[str, Any] | None:
    """The document the mount at ``path`` serves, or None when no mount answers there."""
    try:
        with reachable(path) as name:
            reader, writer = await asyncio.open_unix_connection(name, limit=MAX_DOC)
    except OSError:
        return None
    try:
        line = await asyncio.wait_for(reader.readline(), 30)
    except (OSError, ValueError, TimeoutError):
        return None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


async def collect(mountpoint: Path | None, socket_of: Callable[[Path], Path], folder: Path) -> list[dict[str, Any]]:
    """The documents of the mount at ``mountpoint``, or of every running mount (NotFound if none)."""
    if mountpoint is not None:
        doc = await fetch(socket_of(mountpoint))
        if doc is None:
            raise NotFound(f"no running sigmavault mount at {mountpoint} answers (is it mounted by this user?)")
        return [doc]
    paths = sorted(folder.glob("*" + SUFFIX)) if folder.is_dir() else []
    docs = [d for d in await asyncio.gather(*map(fetch, paths)) if d is not None]
    if not docs:
        raise NotFound("no running sigmavault mount of this user answers")
    return docs


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    cells = [header, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
            for r in cells]


def _rate(hits: int, misses: int) -> str:
    return f"{100 * hits / (hits + misses):.1f}%" if hits + misses else "-"


def human(doc: dict[str, Any]) -> list[str]:
    """A readable report of one stats document: the vault, then backend, caches and pipeline tables."""
    lines = [f"{doc['mountpoint']}: {doc['vault']} (pid {doc['pid']}), generation {doc['generation']}"
             f"{', edits pending' if doc['pending'] else ''}", ""]
    backend = [[op, c["requests"], c["errors"], doc["retries"].get(op, 0), human_size(c["bytes"]),
                f"{1000 * c['latency']['total'] / c['requests']:.1f}" if c["requests"] else "-"]
               for op, c in doc["backend"].items()]
    lines += _table(["backend", "requests", "errors", "retries", "bytes", "avg ms"], backend) + [""]
    caches = [[name, c["hits"], c["misses"], _rate(c["hits"], c["misses"]),
               "-" if c["bytes"] is None else human_size(c["bytes"]), "-" if c["evictions"] is None else c["evictions"]]
              for name, c in doc["caches"].items()]
    lines += _table(["cache", "hits", "misses", "hit rate", "held", "evictions"], caches) + [""]
    stages = [[name, t["items_in"], t["items_out"], human_size(t["bytes_in"]), human_size(t["bytes_out"]),
               f"{t['busy']:.2f}",
               f"{t['blocked_in']:.2f}", f"{t['blocked_out']:.2f}", t["queue_depth"], t["queue_high_water"]]
              for name, t in doc["stages"].items()]
    lines += _table(["stage", "items in", "items out", "bytes in", "bytes out", "busy s", "wait in s", "wait out s",
                     "queue", "high"], stages)
    lines.append(f"pipelines: {doc['pipelines_started']} started, {doc['pipelines_running']} running, "
                 f"{doc['pipelines_failed']} failed; commits lost to another client: {doc.get('commit_races', 0)}")
    g = doc.get("guard")
    if g and g.get("mode"):
        lines.append(f"guard ({g['mode']}): {g['trips']} trips{', frozen' if g['frozen'] else ''}, "
                     f"{g['read_warnings']} exfiltration-like read warnings")
    return lines


def report(out: Output, docs: list[dict[str, Any]], one: bool) -> None:
    shown: list[str] = []
    for doc in docs:
        shown += [*([""] if shown else []), *human(doc)]
    out.result(docs[0] if one else {"mounts": docs}, shown)

