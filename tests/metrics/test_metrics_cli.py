"""The real ``sigmavault serve http --metrics`` in a subprocess, scraped once; and the refusals of
``--metrics`` (off loopback without --metrics-public, malformed, --metrics-public alone) for
``serve http`` and ``mount``, before any vault is opened."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from metricstools import PASS, SECRET_NAMES, new_vault, samples, scrape, value

from sigmavault import UsageError
from sigmavault.cli import metrics_opt

ROOT = Path(__file__).resolve().parents[2]


def _env(home: Path, vault: Path | str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMAVAULT_")}
    env.update(SIGMAVAULT_HOME=str(home), SIGMAVAULT_VAULT=str(vault), SIGMAVAULT_PASSPHRASE=PASS,
               PYTHONPATH=str(ROOT))
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _make(root: Path) -> None:
    async with await new_vault(root) as vault:
        await vault.put(f"{SECRET_NAMES[0]}/{SECRET_NAMES[1]}", b"served with metrics\n")


def test_serve_http_exports_metrics(tmp_path: Path, isolated_home: Path) -> None:
    root = tmp_path / "vault"
    asyncio.run(_make(root))
    port = _free_port()
    cmd = [sys.executable, "-m", "sigmavault", "--json", "serve", "http", "--listen", "127.0.0.1:0",
           "--metrics", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(cmd, env=_env(isolated_home, root), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.communicate(timeout=30)
        doc = json.loads(line)
        assert doc["metrics"] == f"http://127.0.0.1:{port}/metrics"
        body = scrape(f"{doc['url']}{SECRET_NAMES[0]}/{SECRET_NAMES[1]}")  # one file through the gateway
        assert body == "served with metrics\n"
        text = scrape(doc["metrics"])
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    found = samples(text)
    assert value(found, "sigmavault_backend_requests_total", op="get") >= 1
    pages = value(found, "sigmavault_cache_hits_total", cache="page") + value(
        found, "sigmavault_cache_misses_total", cache="page")
    assert pages >= 2  # the root and the file's directory were loaded to find it (its bytes are inline)
    assert value(found, "sigmavault_pipelines_started_total") == 0
    for secret in (*SECRET_NAMES, str(root), PASS):
        assert secret not in text


@pytest.mark.parametrize(("args", "message"), [
    (["--metrics", "0.0.0.0:9464"], "not a loopback address, without --metrics-public"),
    (["--metrics", "metrics.example.org:9464"], "not a loopback address"),
    (["--metrics", "127.0.0.1"], "--metrics '127.0.0.1': expected HOST:PORT"),
    (["--metrics", "127.0.0.1:70000"], "expected HOST:PORT"),
    (["--metrics-public"], "--metrics-public needs --metrics HOST:PORT"),
])
@pytest.mark.parametrize("command", ["serve", "mount"])
def test_bad_metrics_addresses_are_refused_before_opening(tmp_path: Path, isolated_home: Path, command: str,
                                                          args: list[str], message: str) -> None:
    where = ["serve", "http", "--listen", "127.0.0.1:0"] if command == "serve" else ["mount", str(tmp_path / "mnt")]
    missing = tmp_path / "no-vault-here"  # refused before the vault is looked for
    r = subprocess.run([sys.executable, "-m", "sigmavault", *where, *args], env=_env(isolated_home, missing),
                       capture_output=True, text=True, timeout=120, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sigmavault: error: ") and message in lines[0], r.stderr
    assert not missing.exists()


def test_metrics_public_allows_other_addresses() -> None:
    ns = argparse.Namespace(metrics="0.0.0.0:9464", metrics_public=True)
    assert metrics_opt.address(ns) == ("0.0.0.0", 9464)
    assert metrics_opt.address(argparse.Namespace(metrics="[::1]:9464", metrics_public=False)) == ("::1", 9464)
    assert metrics_opt.address(argparse.Namespace(metrics=None, metrics_public=False)) is None
    with pytest.raises(UsageError, match="not a loopback address"):
        metrics_opt.address(argparse.Namespace(metrics="[2001:db8::1]:9464", metrics_public=False))


def test_help_names_the_options() -> None:
    for where in (["serve", "http"], ["mount"]):
        r = subprocess.run([sys.executable, "-m", "sigmavault", *where, "--help"], capture_output=True, text=True,
                           timeout=60, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert r.returncode == 0 and "--metrics HOST:PORT" in r.stdout and "--metrics-public" in r.stdout
