"""Helpers for gateway tests: a fast real vault on disk, and the gateway app serving it on 127.0.0.1."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

import sigmavault
from sigmavault.gateway import make_app

PASS = "correct horse battery staple"
MIB = 1 << 20


async def new_vault(url: str | Path, *, chunk_size: int = MIB) -> sigmavault.Vault:
    return await sigmavault.create(str(url), passphrase=PASS, kdf="minimum", chunk_size=chunk_size)


async def reopen(url: str | Path) -> sigmavault.Vault:
    return await sigmavault.open(str(url), passphrase=PASS)


def object_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "o").rglob("*") if p.is_file() and not p.name.startswith("."))


@contextlib.asynccontextmanager
async def serving(vault: sigmavault.Vault, **options: Any) -> AsyncIterator[str]:
    """The gateway for ``vault`` listening on an ephemeral port of 127.0.0.1; yields its base URL."""
    runner = web.AppRunner(make_app(vault, **options), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def session(**kw: Any) -> AsyncIterator[aiohttp.ClientSession]:
    """A client that sends URLs as written (no normalisation of ``..`` or escapes)."""
    async with aiohttp.ClientSession(auto_decompress=False, **kw) as s:
        yield s


async def raw_request(base: str, request_line: str, headers: str = "") -> tuple[int, bytes]:
    """Send one request line as bytes over a socket (what a hostile client can send); status and body."""
    import asyncio

    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"{request_line}\r\nHost: x\r\nConnection: close\r\n{headers}\r\n".encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body
