"""PUT/DELETE through the gateway (committed, seen by a second open), read-only mode and bearer tokens."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
from gwtools import MIB, new_vault, raw_request, reopen, serving, session

TOKEN = "s3cret-token-0123456789abcdef"


async def test_put_streams_commits_and_a_second_open_sees_it(tmp_path: Path) -> None:
    root = tmp_path / "v"
    data = os.urandom(3 * MIB + 7)

    async def body() -> object:
        for i in range(0, len(data), 100_000):  # a chunked request body, streamed
            yield data[i:i + 100_000]

    async with await new_vault(root) as vault, serving(vault) as base, session() as s:
        async with s.put(f"{base}/up/new%20file.bin", data=body()) as r:
            assert r.status == 201, await r.text()
            doc = await r.json()
            assert doc["size"] == len(data) and doc["path"] == "/up/new file.bin"
            etag = r.headers["ETag"]
        async with s.get(f"{base}/up/new%20file.bin") as r:
            assert await r.read() == data and r.headers["ETag"] == etag
        async with s.put(f"{base}/up/new%20file.bin", data=b"replaced") as r:
            assert r.status == 204 and r.headers["ETag"] != etag
        assert not vault.pending
        async with await reopen(root) as other:  # committed: another client sees it
            assert await other.read_bytes("up/new file.bin") == b"replaced"
        async with s.put(f"{base}/up", data=b"x") as r:
            assert r.status == 409 and (await r.json())["error"]["type"] == "IsADirectory"
        async with s.put(f"{base}/up/new%20file.bin/below", data=b"x") as r:
            assert r.status in (400, 409)
        async with s.put(f"{base}/", data=b"x") as r:
            assert r.status == 400
        async with s.put(f"{base}/up/new%20file.bin", data=b"y", headers={"If-None-Match": "*"}) as r:
            assert r.status == 412  # create-only: it exists
        async with s.put(f"{base}/up/new%20file.bin", data=b"y", headers={"If-Match": '"stale"'}) as r:
            assert r.status == 412
        async with s.get(f"{base}/up/new%20file.bin") as r:
            assert await r.read() == b"replaced"


async def test_a_body_that_breaks_off_stores_nothing(tmp_path: Path) -> None:
    async with await new_vault(tmp_path / "v") as vault, serving(vault) as base:
        host, port = base.removeprefix("http://").split(":")
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"PUT /cut.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + b"a" * 1000)
        await writer.drain()
        writer.close()
        for _ in range(50):
            await asyncio.sleep(0.05)
        assert await vault.ls("/") == [] and not vault.pending


async def test_delete_file_and_empty_directory(tmp_path: Path) -> None:
    root = tmp_path / "v"
    async with await new_vault(root) as vault, serving(vault) as base, session() as s:
        await vault.put("d/f", b"1")
        await vault.mkdir("e")
        await vault.commit()
        async with s.delete(f"{base}/d") as r:
            assert r.status == 409 and (await r.json())["error"]["type"] == "DirectoryNotEmpty"
        async with s.delete(f"{base}/d/f") as r:
            assert r.status == 204
        async with s.get(f"{base}/d/f") as r:
            assert r.status == 404
        for path in ("d", "e"):
            async with s.delete(f"{base}/{path}") as r:
                assert r.status == 204
        async with s.delete(f"{base}/nothing") as r:
            assert r.status == 404
        async with s.delete(f"{base}/") as r:
            assert r.status == 400
        async with await reopen(root) as other:
            assert await other.ls("/") == []


async def test_read_only_refuses_put_and_delete(tmp_path: Path) -> None:
    async with await new_vault(tmp_path / "v") as vault:
        await vault.put("f", b"keep")
        await vault.commit()
        async with serving(vault, read_only=True) as base, session() as s:
            async with s.put(f"{base}/f", data=b"changed") as r:
                assert r.status == 405 and "GET" in r.headers["Allow"] and "PUT" not in r.headers["Allow"]
            async with s.put(f"{base}/new", data=b"x") as r:
                assert r.status == 405
            async with s.delete(f"{base}/f") as r:
                assert r.status == 405
            async with s.get(f"{base}/f") as r:
                assert await r.read() == b"keep"
            async with s.request("PATCH", f"{base}/f") as r:
                assert r.status == 405
        assert await vault.read_bytes("f") == b"keep" and await vault.ls("/") != [] and not vault.pending


async def test_bearer_token_required(tmp_path: Path) -> None:
    async with await new_vault(tmp_path / "v") as vault:
        await vault.put("f", b"private")
        await vault.commit()
        async with serving(vault, token=TOKEN) as base, session() as s:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                            {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": "Bearer"}):
                for method in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS"):
                    async with s.request(method, f"{base}/f", headers=headers) as r:
                        assert r.status == 401, (method, headers)
                        assert r.headers["WWW-Authenticate"].startswith("Bearer")
                        body = await r.read()
                        assert b"private" not in body and TOKEN.encode() not in body
            status, _ = await raw_request(base, "GET /../f HTTP/1.1")  # auth comes before anything else
            assert status == 401
            async with s.get(f"{base}/f", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                assert r.status == 200 and await r.read() == b"private"
            async with s.get(f"{base}/f", headers={"Authorization": f"bearer  {TOKEN} "}) as r:
                assert r.status == 200
        assert await vault.read_bytes("f") == b"private"


async def test_errors_map_to_statuses_without_tracebacks(tmp_path: Path) -> None:
    async with await new_vault(tmp_path / "v") as vault, serving(vault) as base, session() as s:
        await vault.put("f", b"x")
        async with s.options(f"{base}/f") as r:
            assert r.status == 204 and "PUT" in r.headers["Allow"]
        async with s.get(f"{base}/f/under") as r:
            assert r.status in (404, 409)
            text = await r.text()
            assert "Traceback" not in text and "error" in text
        async with s.request("PROPFIND", f"{base}/f") as r:
            assert r.status == 405
        timeout = aiohttp.ClientTimeout(total=30)
        async with s.get(f"{base}/f", timeout=timeout) as r:
            assert r.status == 200
