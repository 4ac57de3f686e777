"""What a mount leaves on the local disk and shows the system (issue 10 items 9 and 12, issue 17).

* ``--cache-dir DIR`` may be a folder of the user's: the mount works in a private subfolder it
  creates (0700) and removes only that — never ``DIR/chunks`` or anything else already there.
* The write-back spool holds no plaintext: a marker written through the mount is found in no file
  the mount process has open and in no file under its cache folder (L: a thief with the disk).
* /proc/mounts names the vault: ``sigmavault:<vault>``.
"""

from __future__ import annotations

import asyncio
import os
import random
import stat
from pathlib import Path

from mounttools import MIB, Mounts, needs_fuse

from sigmavault.mount.spool import Spool

MARKER = b"PLAINTEXT-MARKER-7f3a9c-" * 64


@needs_fuse
def test_cache_dir_keeps_what_the_mount_did_not_create(mounts: Mounts, tmp_path: Path) -> None:
    cache = tmp_path / "mine"
    (cache / "chunks").mkdir(parents=True)
    (cache / "chunks" / "precious.txt").write_text("the user's own file")
    (cache / "spool").mkdir()
    m = mounts.mount("mnt", "--cache-dir", str(cache))
    private = [p for p in cache.iterdir() if p.name.startswith(".sigmavault-mount-")]
    assert len(private) == 1
    assert stat.S_IMODE(private[0].stat().st_mode) == 0o700
    (m.mountpoint / "f.bin").write_bytes(os.urandom(3 * MIB))
    assert (m.mountpoint / "f.bin").stat().st_size == 3 * MIB
    assert m.stop() == 0
    assert (cache / "chunks" / "precious.txt").read_text() == "the user's own file"
    assert (cache / "spool").is_dir()
    assert not private[0].exists()  # its own folder is gone


@needs_fuse
def test_spool_and_cache_hold_no_plaintext(mounts: Mounts) -> None:
    m = mounts.mount("mnt", "--commit-interval", "3600", "--memory-cache", "1")
    assert m.proc is not None
    cache_root = m.home / f"cache-{m.mountpoint.name}"
    # a clean chunk read back through the small memory cache spills to disk
    (m.mountpoint / "clean.bin").write_bytes(MARKER * (3 * MIB // len(MARKER)))
    os.sync()
    for _ in range(2):
        assert (m.mountpoint / "clean.bin").read_bytes()[: len(MARKER)] == MARKER
    with open(m.mountpoint / "open.bin", "wb") as f:  # dirty data past the memory budget spills to the spool
        for k in range(5):  # partial chunks (no write reaches a chunk's end): 5 slots, 2 MiB of budget
            f.seek(k * MIB + 1)
            f.write(MARKER * 100)
        f.flush()
        spooled = 0
        for fd in os.listdir(f"/proc/{m.proc.pid}/fd"):
            target = os.readlink(f"/proc/{m.proc.pid}/fd/{fd}")
            if not target.startswith(str(cache_root)):
                continue
            data = Path(f"/proc/{m.proc.pid}/fd/{fd}").read_bytes()
            spooled += len(data)
            assert MARKER[:24] not in data, target
        assert spooled >= len(MARKER) * 100  # the spool was found and holds a spilled write, encrypted
        for path in cache_root.rglob("*"):
            if path.is_file():
                assert MARKER[:24] not in path.read_bytes(), path
    written = (m.mountpoint / "open.bin").read_bytes()
    assert len(written) == 4 * MIB + 1 + len(MARKER) * 100
    for k in range(5):
        assert written[k * MIB : k * MIB + 1 + len(MARKER) * 100] == b"\0" + MARKER * 100
    assert m.stop() == 0


@needs_fuse
def test_proc_mounts_names_the_vault(mounts: Mounts) -> None:
    m = mounts.mount("mnt")
    target = os.path.realpath(m.mountpoint)
    with open("/proc/self/mounts") as f:
        sources = [line.split()[0] for line in f if line.split()[1] == target]
    assert sources == [f"sigmavault:{os.path.abspath(mounts.vault)}"]
    assert m.stop() == 0


def test_spool_reads_back_what_was_written_at_any_offset(tmp_path: Path) -> None:
    """The encrypted spool behaves like the plain file it replaced: random writes, truncates, holes."""

    async def go() -> None:
        spool = Spool(tmp_path)
        model = bytearray()
        rnd = random.Random(7)
        for _ in range(200):
            if rnd.random() < 0.75:
                off, data = rnd.randrange(300_000), os.urandom(rnd.randrange(1, 100_000))
                await spool.pwrite(off, data)
                model.extend(bytes(max(0, off + len(data) - len(model))))
                model[off : off + len(data)] = data
            else:
                size = rnd.randrange(350_000)
                await spool.truncate(size)
                del model[size:]
                model.extend(bytes(size - len(model)))
            off, n = rnd.randrange(350_000), rnd.randrange(1, 150_000)
            want = bytes(model[off : off + n])
            assert await spool.pread(off, n) == want + bytes(n - len(want))
        spool.close()

    asyncio.run(go())
