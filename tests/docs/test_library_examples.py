"""docs/library.md runs as it reads: every ```python block is a complete program, run here in its
own interpreter (a fresh SIGMAVAULT_HOME, no SIGMAVAULT_* settings inherited), and what it prints
must be exactly the ```text block after it. The ASGI example's application is then driven by this
test as an ASGI server would drive it (scope, receive, send: the protocol itself) against a real
vault on disk, for what the example's own run does not show."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import sigmavault

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "library.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
PASS = "correct horse battery staple"


def examples(text: str) -> list[tuple[str, str]]:
    """(program, expected output) for each python block; each must be followed by 'prints' and a text block."""
    blocks = list(FENCE.finditer(text))
    out = []
    for i, m in enumerate(blocks):
        if m.group(1) != "python":
            continue
        nxt = blocks[i + 1] if i + 1 < len(blocks) else None
        between = text[m.end():nxt.start()].strip() if nxt else ""
        if nxt is None or nxt.group(1) != "text" or between != "prints":
            line = text[:m.start()].count("\n") + 1
            raise ValueError(f"the python block at line {line} is not followed by 'prints' and a text block")
        out.append((m.group(2), nxt.group(2)))
    return out


EXAMPLES = examples(DOC.read_text())


def test_every_part_of_the_page_has_an_example() -> None:
    assert len(EXAMPLES) == 9
    sources = "\n".join(program for program, _ in EXAMPLES)
    for name in ("sigmavault.create(", "sigmavault.open(", ".put(", ".get(", ".read_bytes(", ".open_read(",
                 ".open(", ".walk(", ".ls(", ".stat(", ".commit(", ".refresh(", ".at(", ".diff(", ".log(",
                 ".verify(", ".forget(", ".audit(", ".keys", "VaultError", "Tuning(", "Places(", "sigmavault.sync",
                 "fsspec.filesystem", "make_app(", '"lifespan"', "writer_credential=", ".head_drops("):
        assert name in sources, f"no example uses {name}"


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_example_runs_and_prints_what_the_page_says(index: int, tmp_path: Path) -> None:
    program, expected = EXAMPLES[index]
    script = tmp_path / f"example{index + 1}.py"
    script.write_text(program)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMAVAULT_")}
    env |= {"SIGMAVAULT_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout == expected


def test_a_page_with_a_block_that_shows_no_output_is_refused() -> None:
    with pytest.raises(ValueError, match="line 3"):
        examples("# t\n\n```python\nprint(1)\n```\n\nsome prose\n\n```text\n1\n```\n")
    assert examples("```python\nprint(1)\n```\n\nprints\n\n```text\n1\n```\n") == [("print(1)\n", "1\n")]


# --- the ASGI application of the page, driven by this test -----------------------------------------

def asgi_module() -> types.ModuleType:
    program = next(p for p, _ in EXAMPLES if '"lifespan"' in p)
    module = types.ModuleType("library_asgi_example")  # not __main__: its demo does not run
    exec(compile(program, str(DOC), "exec"), module.__dict__)
    return module


async def call(app: Any, method: str, raw_path: bytes) -> tuple[int, dict[bytes, bytes], list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "path": raw_path.decode("latin-1"), "raw_path": raw_path, "query_string": b"", "headers": []}
    await app(scope, receive, send)
    assert sent[0]["type"] == "http.response.start"
    return sent[0]["status"], dict(sent[0]["headers"]), [m for m in sent[1:] if m["type"] == "http.response.body"]


async def next_message(outbox: asyncio.Queue[dict[str, Any]], task: asyncio.Task[None]) -> dict[str, Any]:
    """The app's next lifespan message; an app that dies instead fails the test, never hangs it."""
    getter = asyncio.ensure_future(outbox.get())
    done, _ = await asyncio.wait({getter, task}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()
    if task in done:
        task.result()  # raises what the app raised
    raise AssertionError("the app sent no lifespan message within 60 s")


async def lifespan(app: Any) -> tuple[asyncio.Queue[dict[str, Any]], asyncio.Queue[dict[str, Any]], asyncio.Task[None]]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    return inbox, outbox, task


async def test_asgi_app_streams_chunk_by_chunk_and_refuses_bad_paths(tmp_path: Path) -> None:
    url = str(tmp_path / "vault")
    chunk = 1 << 20
    big = os.urandom(5 * chunk + 123)
    async with await sigmavault.create(url, passphrase=PASS, kdf="minimum", chunk_size=chunk) as vault:
        await vault.put("big.bin", big)
        await vault.put(b"caf\xe9.txt", b"latin-1 name")  # a name that is not UTF-8
    app = asgi_module().VaultFiles(url, PASS)
    inbox, outbox, task = await lifespan(app)
    assert (await next_message(outbox, task))["type"] == "lifespan.startup.complete"

    status, headers, bodies = await call(app, "GET", b"/big.bin")
    assert status == 200 and headers[b"content-length"] == str(len(big)).encode()
    assert b"".join(m["body"] for m in bodies) == big
    assert max(len(m["body"]) for m in bodies) <= chunk  # streamed: never the whole file in one message
    assert [m.get("more_body", False) for m in bodies][-1] is False and len(bodies) >= 6

    status, headers, bodies = await call(app, "HEAD", b"/big.bin")
    assert status == 200 and headers[b"content-length"] == str(len(big)).encode()
    assert b"".join(m["body"] for m in bodies) == b""

    status, _, bodies = await call(app, "GET", b"/caf%E9.txt")
    assert (status, bodies[0]["body"]) == (200, b"latin-1 name")
    for raw, want in ((b"/../etc/passwd", 400), (b"/a/%2e%2e/big.bin", 400), (b"/nope", 404), (b"/", 409)):
        status, _, bodies = await call(app, "GET", raw)
        assert status == want, raw
        assert bodies[0]["body"].endswith(b"\n")

    await inbox.put({"type": "lifespan.shutdown"})
    assert (await next_message(outbox, task))["type"] == "lifespan.shutdown.complete"
    await task
    with pytest.raises(sigmavault.UsageError, match="closed"):
        await app.vault.stat("/")  # the shutdown closed the vault


async def test_asgi_app_reports_a_failed_startup_without_the_passphrase(tmp_path: Path) -> None:
    url = str(tmp_path / "vault")
    async with await sigmavault.create(url, passphrase=PASS, kdf="minimum"):
        pass
    app = asgi_module().VaultFiles(url, "a wrong passphrase")
    _, outbox, task = await lifespan(app)
    message = await next_message(outbox, task)
    await task
    assert message["type"] == "lifespan.startup.failed"
    assert "could not unlock" in message["message"]
    assert "a wrong passphrase" not in message["message"]
