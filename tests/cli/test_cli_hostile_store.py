"""A storage provider that inflates objects (issue 10 item 7): a clean exit 6, and memory stays bounded.

Each case inflates one object of a real local vault to hundreds of MiB (a sparse file, so the test
is cheap) and runs the real CLI in a subprocess that reports its own peak RSS. Before every GET
was bounded, reading the object whole cost its full size in memory.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from clitools import PASS, Cli, Run, env_for

import sigmavault

INFLATED = 400 << 20
RSS_LIMIT_KIB = 200 << 10  # the CLI itself needs well under this; a whole inflated object would not fit

# VmHWM, not getrusage: ru_maxrss keeps the pre-exec high-water mark of the forking parent (pytest)
_MEASURE = """
import sys
from sigmavault import config
from sigmavault.cli.main import run
config.tune_malloc()
rc = run(sys.argv[1:])
hwm = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
sys.stderr.write(f"\\nMAXRSS {hwm}\\n")
sys.exit(rc)
"""


def measured(cli: Cli, *args: str) -> tuple[Run, int]:
    """Run the CLI in a subprocess; return its result (stderr without the RSS line) and peak RSS in KiB."""
    cmd = [sys.executable, "-c", _MEASURE, "--vault", str(cli.vault), *args]
    p = subprocess.run(cmd, env=env_for(cli.home), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=120)
    lines = p.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("MAXRSS "), p.stderr
    return Run(p.returncode, p.stdout, "\n".join(lines[:-1])), int(lines[-1].split()[1])


def inflate(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(INFLATED)  # sparse: cheap to make, expensive to read whole


@pytest.fixture
def vault(tmp_path: Path, isolated_home: Path) -> Cli:
    cli = Cli(isolated_home, tmp_path / "vault")

    async def fill() -> None:
        async with await sigmavault.create(str(cli.vault), passphrase=PASS, kdf="minimum", chunk_size=1 << 20) as v:
            await v.put("/d/big.bin", os.urandom((1 << 20) + 5000))  # a full chunk object and a pack member

    asyncio.run(fill())
    return cli


def _objects(cli: Cli, top: str) -> list[Path]:
    assert cli.vault is not None
    return sorted(p for p in (Path(cli.vault) / top).rglob("*") if p.is_file() and not p.name.startswith("."))


def test_inflated_head_commit(vault: Cli) -> None:
    inflate(_objects(vault, "c")[-1])
    r, rss = measured(vault, "ls", "/")
    assert r.code == 6, r.err
    assert "larger than" in r.one_line_error()
    assert rss < RSS_LIMIT_KIB, rss


def test_inflated_keystore(vault: Cli) -> None:
    inflate(_objects(vault, "k")[-1])
    r, rss = measured(vault, "ls", "/")
    assert r.code == 6, r.err
    assert "larger than" in r.one_line_error()
    assert rss < RSS_LIMIT_KIB, rss


def test_inflated_chunk(vault: Cli) -> None:
    full = [p for p in _objects(vault, "o") if p.stat().st_size > 1 << 20]
    assert len(full) == 1
    inflate(full[0])
    r, rss = measured(vault, "cat", "/d/big.bin")
    assert r.code == 6, r.err
    line = r.one_line_error()
    assert "/d/big.bin" in line and "larger than" in line
    assert rss < RSS_LIMIT_KIB, rss


# --- issue 10 item 5: one damaged page must not brick the vault on a fresh device -------------


def test_a_damaged_page_spoils_only_its_subtree_on_a_fresh_device(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    url = tmp_path / "vault"
    shared = os.urandom(300_000)  # a data-pack member both subtrees could share

    async def fill() -> tuple[set[Path], set[Path]]:
        async with await sigmavault.create(str(url), passphrase=PASS, kdf="minimum", chunk_size=1 << 20) as v:
            before = set(_objects_in(url))
            await v.put("/A/note", b"tiny, inline")  # generation 1 writes only a page pack: /A's page and a root
            await v.commit()
            gen1 = set(_objects_in(url)) - before
            await v.put("/B/data", shared)  # generation 2: /B's page and a new root elsewhere
            await v.commit()
        return gen1, set(_objects_in(url))

    gen1, _ = asyncio.run(fill())
    assert len(gen1) == 1
    page_pack = gen1.pop()
    raw = bytearray(page_pack.read_bytes())
    raw[len(raw) // 2] ^= 1
    page_pack.write_bytes(bytes(raw))

    fresh = Cli(tmp_path / "fresh-device", url)  # no local state, no cache: nothing to rebuild from
    out = tmp_path / "out"
    r = fresh("export", "/B/data", str(out))
    assert r.code == 0, r.err
    assert out.read_bytes() == shared if out.is_file() else (out / "data").read_bytes() == shared
    bad = fresh("ls", "/A")
    assert bad.code == 6
    assert "/A" in bad.one_line_error()
    assert fresh("ls", "/").code == 0  # the root itself is fine
    # dedup still works on the fresh device (its index refills on the first write, skipping /A)
    objects = set(_objects_in(url))
    src = tmp_path / "again"
    src.write_bytes(shared)

    monkeypatch.setenv("SIGMAVAULT_HOME", str(fresh.home))

    async def again() -> None:
        async with await sigmavault.open(str(url), passphrase=PASS) as v:
            await v.put("/C/again", src)
        assert len(set(_objects_in(url)) - objects) == 1  # only the new page pack: the data was known

    asyncio.run(again())


def _objects_in(root: Path) -> list[Path]:
    return sorted(p for p in (root / "o").rglob("*") if p.is_file() and not p.name.startswith("."))
