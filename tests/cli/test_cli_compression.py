"""``create --compression off|auto|max`` through the real CLI on real files (issue 15, "Compression").

Every mode imports text and random data and exports it byte for byte; auto stores text far smaller
and random data no bigger than off; compressed content dedups; a provider's flipped byte in any
object is exit 6; a zstd bomb written by a client holding the keys is a clear exit 6 for its file
alone; a bad mode is a usage error.
"""

from __future__ import annotations

import asyncio
import filecmp
import json
import os
from pathlib import Path

import pytest
import zstandard
from clitools import PASS, Cli

import sigmavault
from sigmavault.engine.format import squeeze

MIB = 1 << 20


def text(n: int) -> bytes:
    lines = b"".join(b"%08d the quick brown fox jumps over the lazy dog, line after line\n" % i
                     for i in range(n // 60 + 1))
    return lines[:n]


def make_src(root: Path) -> Path:
    """Two full text chunks and a tail, a random file of a full chunk and a tail, a small text file."""
    src = root / "src"
    (src / "sub").mkdir(parents=True)
    (src / "book.txt").write_bytes(text(2 * MIB + 70_000))
    (src / "noise.bin").write_bytes(os.urandom(MIB + 30_000))
    (src / "sub" / "note.txt").write_bytes(text(9_000))
    return src


def objects(vault: Path) -> dict[str, int]:
    """The vault's data and page objects (``o/…``): name -> size."""
    return {str(p.relative_to(vault)): p.stat().st_size for p in (vault / "o").rglob("*") if p.is_file()}


def same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    _, bad, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return (not cmp.left_only and not cmp.right_only and not bad and not errors
            and all(same_tree(a / d, b / d) for d in cmp.common_dirs))


def created(tmp_path: Path, home: Path, mode: str | None, name: str = "vault") -> Cli:
    cli = Cli(home, tmp_path / name)
    cli.ok("create", "--kdf", "minimum", "--chunk-size", "1", *(["--compression", mode] if mode else []))
    return cli


@pytest.mark.parametrize("mode", ["off", "auto", "max"])
def test_each_mode_round_trips_text_and_random(tmp_path: Path, isolated_home: Path, mode: str) -> None:
    src = make_src(tmp_path)
    cli = created(tmp_path, isolated_home, mode)
    info = cli.ok("--json", "info").json()
    assert info["parameters"]["compression"] == squeeze.CLI_NAMES[mode]
    cli.ok("import", str(src), "--to", "/d")
    cli.ok("export", "/d", str(tmp_path / "out"))
    assert same_tree(src, tmp_path / "out")
    assert "no problems found" in cli.ok("verify", "--full").out


def test_auto_is_the_default_and_stores_text_smaller_random_no_bigger(tmp_path: Path, isolated_home: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "r").mkdir()
    (tmp_path / "t" / "book.txt").write_bytes(text(3 * MIB + 5000))
    (tmp_path / "r" / "noise.bin").write_bytes(os.urandom(3 * MIB + 5000))
    sizes: dict[tuple[str, str], int] = {}
    for mode in ("off", None):  # None: the default
        for data in ("t", "r"):
            cli = created(tmp_path, isolated_home / f"{mode}-{data}", mode, f"v-{mode}-{data}")
            cli.ok("import", str(tmp_path / data), "--to", "/d")
            sizes[(mode or "auto", data)] = sum(objects(Path(str(cli.vault))).values())
    assert cli.ok("--json", "info").json()["parameters"]["compression"] == "zstd-auto"
    assert sizes[("auto", "t")] * 8 < sizes[("off", "t")]  # the text compresses 20×; packs and pages stay
    assert sizes[("auto", "r")] <= sizes[("off", "r")]  # the probe keeps random data as it is


def test_many_small_text_files_are_stored_compressed_and_export_whole(tmp_path: Path, isolated_home: Path) -> None:
    """Small files take the batched read route (compressed in the reading thread): the text among them
    is stored compressed, random ones as they are, and every file exports byte for byte."""
    src = tmp_path / "small"
    src.mkdir()
    for i in range(300):
        (src / f"t{i}.txt").write_bytes(text(3000 + 37 * i))
        (src / f"r{i}.bin").write_bytes(os.urandom(2000 + i))
    sizes = {}
    for mode in ("off", "auto"):
        cli = created(tmp_path, isolated_home / mode, mode, f"v-{mode}")
        cli.ok("import", str(src), "--to", "/d")
        sizes[mode] = sum(objects(Path(str(cli.vault))).values())
        cli.ok("export", "/d", str(tmp_path / f"out-{mode}"))
        assert same_tree(src, tmp_path / f"out-{mode}")
    random_bytes = sum(2000 + i for i in range(300))
    assert sizes["auto"] < random_bytes + (sizes["off"] - random_bytes) // 4  # the text shrank 4× at least


def test_compressed_content_dedups_and_full_chunk_objects_stay_plain(tmp_path: Path, isolated_home: Path) -> None:
    src = make_src(tmp_path)
    cli = created(tmp_path, isolated_home, "auto")
    first = cli.ok("--json", "import", str(src), "--to", "/a").events()[-1]
    before = objects(Path(str(cli.vault)))
    # every full chunk object has the one full size; the compressed chunks rode in packs of that size too
    assert len(set(before.values())) <= 3  # full-size objects, the last data pack, the last page pack
    again = cli.ok("--json", "import", str(src), "--to", "/b").events()[-1]
    after = objects(Path(str(cli.vault)))
    assert len(after) == len(before) + 1  # the same content again: only a new page pack
    assert again["uploaded"] < first["uploaded"] // 20
    # a file sharing the first (compressed) chunk of book.txt with a new tail: only the tail is new
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "book2.txt").write_bytes((src / "book.txt").read_bytes()[:MIB] + os.urandom(5000))
    third = cli.ok("--json", "import", str(tmp_path / "more"), "--to", "/c").events()[-1]
    assert third["uploaded"] < 64 * 1024
    cli.ok("export", "/c", str(tmp_path / "out"))
    assert same_tree(tmp_path / "more", tmp_path / "out")


def test_a_flipped_byte_in_any_object_is_detected(tmp_path: Path, isolated_home: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "book.txt").write_bytes(text(MIB + 3000))  # a compressed chunk and tail, in one pack
    cli = created(tmp_path, isolated_home, "auto")
    cli.ok("import", str(tmp_path / "src"), "--to", "/d")
    vault = Path(str(cli.vault))
    names = objects(vault)
    assert len(names) == 2  # the data pack and the page pack: nothing else holds the file
    for i, name in enumerate(names):
        fresh = Cli(isolated_home / f"device-{i}", vault)  # a device with no cached pages
        path = vault / name
        original = path.read_bytes()
        damaged = bytearray(original)
        damaged[len(damaged) // 2] ^= 0x01
        path.write_bytes(bytes(damaged))
        try:
            r = fresh("export", "/d", str(tmp_path / f"out-{i}"))
            assert r.code == 6, r.err
            assert "integrity check failed" in r.err.strip().splitlines()[-1]  # after the new device's pin note
        finally:
            path.write_bytes(original)
    cli.ok("export", "/d", str(tmp_path / "out"))
    assert same_tree(tmp_path / "src", tmp_path / "out")


def test_a_zstd_bomb_from_a_key_holder_fails_clearly_and_loses_nothing_else(
        tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_src(tmp_path)
    cli = created(tmp_path, isolated_home, "auto")
    cli.ok("import", str(src), "--to", "/d")
    victim = b"innocent looking text, " * 2000  # 46,000 bytes, the id is over these
    bomb = zstandard.ZstdCompressor(level=19).compress(bytes(256 * MIB))  # ~8 KiB that inflate to 256 MiB
    real = squeeze.squeeze

    def hostile(data: bytes, mode: str, chunk_size: int) -> bytes | None:
        return bomb if data == victim else real(data, mode, chunk_size)

    async def plant() -> None:  # a co-writer with the keys and a compressor of its own
        monkeypatch.setattr(squeeze, "squeeze", hostile)
        try:
            async with await sigmavault.open(str(cli.vault), passphrase=PASS) as v:
                await v.put("/d/bomb.txt", victim)
        finally:
            monkeypatch.setattr(squeeze, "squeeze", real)

    asyncio.run(plant())
    r = cli("export", "/d/bomb.txt", str(tmp_path / "bomb-out"))
    assert r.code == 6
    line = r.one_line_error()
    assert "bomb.txt" in line and "inflates to more than its declared 46000 bytes" in line
    # everything else is still there, byte for byte
    cli.ok("export", "/d/book.txt", str(tmp_path / "out" / "book.txt"))
    cli.ok("export", "/d/noise.bin", str(tmp_path / "out" / "noise.bin"))
    cli.ok("export", "/d/sub", str(tmp_path / "out" / "sub"))
    assert same_tree(src, tmp_path / "out")
    bad = cli("--json", "verify", "--full")
    assert bad.code == 6
    assert "bomb.txt" in json.dumps(bad.events()) + bad.err


def test_a_bad_compression_value_is_a_usage_error(tmp_path: Path, isolated_home: Path) -> None:
    cli = Cli(isolated_home, tmp_path / "vault")
    r = cli("create", "--kdf", "minimum", "--compression", "fast")
    assert r.code == 2
    assert "--compression" in r.err and "fast" in r.err
    assert not (tmp_path / "vault").exists()


def test_a_write_only_client_compresses_too_and_the_owner_reads_its_drop(tmp_path: Path,
                                                                          isolated_home: Path) -> None:
    src = make_src(tmp_path)
    owner = created(tmp_path, isolated_home / "owner", "auto")
    cred = tmp_path / "web.cred"
    owner.ok("key", "add", "--writer", "--label", "web", "--to", "/web", "--out", str(cred))
    server = Cli(isolated_home / "server", owner.vault)  # only the credential: its params say zstd-auto
    done = server.ok("--json", "--writer-credential", str(cred), "import", str(src), "--to", "/web",
                     passphrase=None).events()[-1]
    assert done["drop"] == 1
    drops = Path(str(owner.vault)) / "d"
    stored = sum(p.stat().st_size for p in drops.rglob("*") if p.is_file())
    assert stored < (MIB + 30_000) + 2 * MIB // 4  # the random file as it is, the text compressed
    owner.ok("ingest")
    owner.ok("export", "/web", str(tmp_path / "out"))
    assert same_tree(src, tmp_path / "out")
    assert "no problems found" in owner.ok("verify", "--full").out
