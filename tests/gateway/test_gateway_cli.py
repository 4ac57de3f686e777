"""The real ``sigmavault serve http`` command in a subprocess: it listens, serves (curl or aiohttp),
stops on SIGTERM with exit 0; and its refusals (no token off loopback, bad --listen, weak token)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from gwtools import MIB, PASS, new_vault, reopen

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "cli-token-abcdefghijklmnop"


def _env(home: Path, vault: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMAVAULT_")}
    env.update(SIGMAVAULT_HOME=str(home), SIGMAVAULT_VAULT=str(vault), SIGMAVAULT_PASSPHRASE=PASS,
               PYTHONPATH=str(ROOT))
    return env


def _start(home: Path, vault: Path, *args: str) -> tuple[subprocess.Popen[str], dict[str, object]]:
    cmd = [sys.executable, "-m", "sigmavault", "--json", "serve", "http", "--listen", "127.0.0.1:0", *args]
    proc = subprocess.Popen(cmd, env=_env(home, vault), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the "listening" document, once the socket is bound
    if not line:
        proc.kill()
        raise AssertionError(f"serve did not start: {proc.communicate(timeout=30)}")
    return proc, json.loads(line)


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        return proc.returncode, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _fetch(url: str, *headers: str) -> tuple[int, bytes]:
    if shutil.which("curl"):
        cmd = ["curl", "-sS", "--max-time", "60", "-o", "-", "-w", "\n%{http_code}"]
        for h in headers:
            cmd += ["-H", h]
        out = subprocess.run([*cmd, url], capture_output=True, check=True, timeout=90).stdout
        body, _, code = out.rpartition(b"\n")
        return int(code), body

    async def get() -> tuple[int, bytes]:
        hdrs = dict(h.split(": ", 1) for h in headers)
        async with aiohttp.ClientSession() as s, s.get(url, headers=hdrs) as r:
            return r.status, await r.read()

    return asyncio.run(get())


async def _make(tmp_path: Path) -> Path:
    root = tmp_path / "v"
    async with await new_vault(root) as vault:
        await vault.put("docs/hello.txt", b"hello over http\n")
        await vault.put("docs/big.bin", bytes(range(256)) * 8192)
    return root


def test_cli_serves_and_stops_cleanly(tmp_path: Path, isolated_home: Path) -> None:
    root = asyncio.run(_make(tmp_path))
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    proc, doc = _start(isolated_home, root, "--token-file", str(token_file), "--read-only")
    try:
        assert doc["event"] == "listening" and doc["read_only"] is True and doc["token"] is True
        url = str(doc["url"])
        assert url.startswith("http://127.0.0.1:")
        auth = f"Authorization: Bearer {TOKEN}"
        assert _fetch(url + "docs/hello.txt", auth) == (200, b"hello over http\n")
        assert _fetch(url + "docs/hello.txt")[0] == 401
        assert _fetch(url + "docs/big.bin", auth, "Range: bytes=256-511") == (206, bytes(range(256)))
        status, body = _fetch(url + "docs/?format=json", auth)
        assert status == 200 and {e["name"] for e in json.loads(body)["entries"]} == {"hello.txt", "big.bin"}
    finally:
        code, err = _stop(proc)
    assert code == 0, err
    assert "Traceback" not in err and PASS not in err and TOKEN not in err


def test_cli_writes_are_committed(tmp_path: Path, isolated_home: Path) -> None:
    root = asyncio.run(_make(tmp_path))
    proc, doc = _start(isolated_home, root)
    try:
        url = str(doc["url"])

        async def put_and_delete() -> None:
            async with aiohttp.ClientSession() as s:
                async with s.put(url + "new.txt", data=b"written") as r:
                    assert r.status == 201
                async with s.delete(url + "docs/hello.txt") as r:
                    assert r.status == 204

        asyncio.run(put_and_delete())
    finally:
        code, err = _stop(proc)
    assert code == 0, err

    async def check() -> None:
        async with await reopen(root) as vault:
            assert await vault.read_bytes("new.txt") == b"written"
            assert [e.name for e in await vault.ls("docs")] == ["big.bin"]

    asyncio.run(check())


def _run(home: Path, vault: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "sigmavault", "serve", "http", *args]
    return subprocess.run(cmd, env=_env(home, vault), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def test_cli_refusals(tmp_path: Path, isolated_home: Path) -> None:
    root = asyncio.run(_make(tmp_path))
    weak = tmp_path / "weak"
    weak.write_text("short\n")
    cases = [
        (["--listen", "0.0.0.0:0"], 2, "not a loopback address, without --token-file"),
        (["--listen", "example.org:8080"], 2, "not a loopback address"),
        (["--listen", "127.0.0.1"], 2, "expected HOST:PORT"),
        (["--listen", "127.0.0.1:99999"], 2, "expected HOST:PORT"),
        (["--token-file", str(weak)], 2, "at least 16"),
        (["--token-file", str(tmp_path / "absent")], 4, "no such file"),
    ]
    started = time.monotonic()
    for args, code, text in cases:
        r = _run(isolated_home, root, *args)
        assert r.returncode == code, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("sigmavault: error: ") and text in lines[0], (args, r.stderr)
    assert time.monotonic() - started < 120
    r = subprocess.run([sys.executable, "-m", "sigmavault", "serve", "http", "--help"], capture_output=True,
                       text=True, env=_env(isolated_home, root), timeout=60, cwd=ROOT)
    assert r.returncode == 0
    for option in ("--listen", "--read-only", "--token-file", "loopback"):
        assert option in r.stdout


FFMPEG, FFPROBE = shutil.which("ffmpeg"), shutil.which("ffprobe")


@pytest.mark.skipif(FFMPEG is None or FFPROBE is None,
                    reason="ffmpeg/ffprobe are not installed (scripts/bootstrap --test installs Debian's ffmpeg)")
def test_ffprobe_reads_a_video_from_the_gateway(tmp_path: Path, isolated_home: Path) -> None:
    """A real media client: ffprobe finds the index of an MP4 written without faststart at the end of
    the file, several chunks in, so it must seek there with a Range request."""
    clip = tmp_path / "clip.mp4"
    subprocess.run([FFMPEG or "ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
                    "-i", "testsrc=duration=2:size=426x240:rate=25,noise=alls=40:allf=t",
                    "-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:v", "libx264", "-preset", "ultrafast",
                    "-crf", "10", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(clip)],
                   check=True, capture_output=True, timeout=120)
    data = clip.read_bytes()
    assert len(data) > 2 * MIB and data.find(b"moov") > data.find(b"mdat") > 0  # the index is past two chunks

    async def store() -> Path:
        root = tmp_path / "v"
        async with await new_vault(root) as vault:
            await vault.put("media/clip.mp4", data)
        return root

    proc, doc = _start(isolated_home, asyncio.run(store()), "--read-only")
    try:
        probe = subprocess.run([FFPROBE or "ffprobe", "-v", "error", "-print_format", "json", "-show_format",
                                "-show_streams", f"{doc['url']}media/clip.mp4"],
                               capture_output=True, text=True, timeout=120)
    finally:
        code, err = _stop(proc)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert abs(float(found["format"]["duration"]) - 2.0) < 0.1
    assert int(found["format"]["size"]) == len(data) and "mp4" in found["format"]["format_name"]
    streams = {s["codec_type"]: s for s in found["streams"]}
    assert streams["video"]["codec_name"] == "h264" and (streams["video"]["width"], streams["video"]["height"]) == (
        426, 240)
    assert streams["audio"]["codec_name"] == "aac"
    assert code == 0 and "Traceback" not in err
