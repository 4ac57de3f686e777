"""The local backend: the conformance suite, the on-disk layout, durability and local errors."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conformance import BackendConformance, cname, kname, oname, payload

from sigmavault.backends.base import Backend
from sigmavault.backends.local import LocalBackend
from sigmavault.engine.errors import LocalIOError, NotFound, VaultError


class TestLocalConformance(BackendConformance):
    @pytest.fixture(autouse=True)
    def _root(self, tmp_path: Path) -> None:
        self.root = tmp_path / "vault"

    async def make_backend(self) -> Backend:
        return LocalBackend(self.root, create=True)


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_fan_out_layout(tmp_path: Path) -> None:
    chunk, shard = oname("layout"), "s/" + "cd" * 32

    async def main() -> None:
        b = LocalBackend(tmp_path, create=True)
        for name in (chunk, shard, cname(1), kname(1), "l/gc-lease"):
            assert await b.put_if_absent(name, name.encode()) is True

    asyncio.run(main())
    assert files_under(tmp_path) == sorted(
        [f"o/{chunk[2:4]}/{chunk[2:]}", f"s/cd/{shard[2:]}", f"c/{1:016x}", f"k/{1:016x}", "l/gc-lease"]
    )
    assert (tmp_path / "o" / chunk[2:4] / chunk[2:]).read_bytes() == chunk.encode()
    assert LocalBackend(tmp_path).path_of(chunk) == tmp_path / "o" / chunk[2:4] / chunk[2:]


def test_foreign_and_misplaced_files_are_not_objects(tmp_path: Path) -> None:
    chunk = oname("misplaced")
    (tmp_path / "o" / "zz").mkdir(parents=True)
    (tmp_path / "o" / "zz" / chunk[2:]).write_bytes(b"wrong folder")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "README").write_text("hello")
    (tmp_path / "notes.txt").write_text("hello")

    async def main() -> None:
        b = LocalBackend(tmp_path)
        assert [n async for n in b.list()] == []
        with pytest.raises(NotFound):
            await b.get(chunk)

    asyncio.run(main())


def test_missing_root_is_not_created_without_create(tmp_path: Path) -> None:
    root = tmp_path / "absent"

    async def main() -> None:
        b = LocalBackend(root)
        with pytest.raises(NotFound):
            await b.get(cname(0))
        assert [n async for n in b.list()] == []
        with pytest.raises(LocalIOError, match="does not exist"):
            await b.put_if_absent(cname(0), b"x")
        assert not root.exists()
        assert await LocalBackend(root, create=True).put_if_absent(cname(0), b"x") is True

    asyncio.run(main())
    assert files_under(root) == [f"c/{0:016x}"]


def test_crash_leftover_temp_is_invisible_and_cleaned(tmp_path: Path) -> None:
    chunk = oname("crash")
    fan = tmp_path / "o" / chunk[2:4]
    fan.mkdir(parents=True)
    (tmp_path / "c").mkdir()
    old = fan / ".tmp-0123456789abcdef0123456789abcdef"
    old.write_bytes(b"half a chu")
    fresh = tmp_path / "c" / ".tmp-fedcba9876543210fedcba9876543210"
    fresh.write_bytes(b"in flight")
    hour_ago = time.time() - 7200
    os.utime(old, (hour_ago, hour_ago))

    async def main() -> None:
        b = LocalBackend(tmp_path)
        assert [n async for n in b.list()] == []
        assert await b.cleanup_temp() == 1  # only the one older than an hour
        assert not old.exists() and fresh.exists()
        assert await b.cleanup_temp(min_age=0) == 1
        assert not fresh.exists()
        assert await b.cleanup_temp(min_age=0) == 0

    asyncio.run(main())


def test_no_temp_files_left_after_puts(tmp_path: Path) -> None:
    async def main() -> None:
        b = LocalBackend(tmp_path, create=True)
        names = [oname(i) for i in range(50)]
        await asyncio.gather(*(b.put_if_absent(n, payload(n, 2000)) for n in names))
        await asyncio.gather(*(b.put_if_absent(n, b"again") for n in names))  # all found
        assert await b.cleanup_temp(min_age=0) == 0

    asyncio.run(main())
    assert not [p for p in tmp_path.rglob(".tmp-*")]


WRITER = textwrap.dedent(
    """
    import asyncio, hashlib, sys
    from sigmavault.backends.local import LocalBackend

    async def main():
        b = LocalBackend(sys.argv[1], create=True)
        i = 0
        while True:
            name = "o/" + hashlib.sha256(str(i).encode()).hexdigest()
            data = hashlib.sha256(name.encode()).digest() * 32768  # 1 MiB, derived from the name
            await b.put_if_absent(name, data)
            if i == 3:
                print("ready", flush=True)
            i += 1

    asyncio.run(main())
    """
)


def test_killed_writer_leaves_only_whole_objects(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"ready"
        time.sleep(0.2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()

    async def main() -> int:
        b = LocalBackend(tmp_path)
        names = [n async for n in b.list("o/")]
        assert len(names) >= 4
        for name in names:
            assert await b.get(name) == hashlib.sha256(name.encode()).digest() * 32768
        await b.cleanup_temp(min_age=0)
        return len(names)

    asyncio.run(main())
    assert not [p for p in tmp_path.rglob(".tmp-*")]


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_disk_full_raises_local_io_error_and_leaves_nothing(small_tmpfs: Path) -> None:
    async def main() -> None:
        b = LocalBackend(small_tmpfs, create=True)
        assert await b.put_if_absent(cname(0), b"fits") is True
        with pytest.raises(LocalIOError, match="disk full") as info:
            await b.put_if_absent(oname("too big"), os.urandom(2 * 1024 * 1024))
        assert str(small_tmpfs) in str(info.value)
        assert info.value.exit_code == LocalIOError.exit_code
        with pytest.raises(NotFound):
            await b.head(oname("too big"))
        assert sorted([n async for n in b.list()]) == [cname(0)]
        assert await b.put_if_absent(cname(1), os.urandom(512 * 1024)) is True  # the space came back

    asyncio.run(main())
    assert not [p for p in small_tmpfs.rglob(".tmp-*")]


def test_read_only_file_system(small_tmpfs: Path) -> None:
    asyncio.run(LocalBackend(small_tmpfs, create=True).put_if_absent(cname(0), b"before"))
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)

    async def main() -> None:
        b = LocalBackend(small_tmpfs)
        assert await b.get(cname(0)) == b"before"
        with pytest.raises(LocalIOError, match="read-only"):
            await b.put_if_absent(cname(1), b"after")

    asyncio.run(main())


def as_nobody(root: Path) -> list[str]:
    """Run a put and a get as user nobody in a forked child; return what each step reported."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root's override of file modes, then try
        code = 1
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)

            async def probe() -> list[str]:
                b = LocalBackend(root)
                out = []
                for step in ("put", "get"):
                    try:
                        if step == "put":
                            await b.put_if_absent(cname(9), b"x")
                        else:
                            await b.get(kname(1))
                        out.append(f"{step} ok")
                    except VaultError as exc:
                        out.append(f"{step} {type(exc).__name__} {exc}")
                return out

            os.write(write_fd, "\n".join(asyncio.run(probe())).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        report = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return report.splitlines()


def test_permission_denied_names_the_path() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to probe as another user")
    base = Path(tempfile.mkdtemp(prefix="sv-perm-"))  # tmp_path's parents are private to root
    try:
        base.chmod(0o755)
        root = base / "vault"
        asyncio.run(LocalBackend(root, create=True).put_if_absent(kname(1), b"secret-ish"))
        (root / "k" / f"{1:016x}").chmod(0o600)  # readable by root only
        lines = as_nobody(root)
        assert lines[0].startswith("put LocalIOError permission denied") and str(root / "c") in lines[0]
        assert lines[1].startswith("get LocalIOError permission denied") and str(root / "k") in lines[1]
        assert not (root / "c").exists() or not list((root / "c").iterdir())
    finally:
        shutil.rmtree(base)
