"""cp -a, tar and rsync through a real mount; remount; read-only; xattrs; the umount command."""

from __future__ import annotations

import errno
import filecmp
import os
import random
import subprocess
from pathlib import Path

import pytest
from mounttools import MIB, Mounts, is_mounted, needs_fuse

pytestmark = needs_fuse


def make_tree(root: Path, seed: int = 7) -> Path:
    rng = random.Random(seed)
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "empty").mkdir()
    sizes = [0, 1, 1000, 1024, 1025, 4096, MIB - 1, MIB, MIB + 1, 2 * MIB + 12345]
    for i, size in enumerate(sizes):
        where = [root, root / "a", root / "a" / "b" / "c"][i % 3]
        (where / f"f{i}.bin").write_bytes(rng.randbytes(size))
    (root / "a" / "big.bin").write_bytes(rng.randbytes(3 * MIB + 7) + bytes(MIB))
    os.chmod(root / "a" / "f1.bin", 0o600)
    os.chmod(root / "f0.bin", 0o755)
    (root / "name with spaces ü.txt").write_text("unicode\n")
    os.symlink("a/f1.bin", root / "link")
    os.symlink("/nonexistent/target", root / "a" / "dangling")
    os.utime(root / "f3.bin", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    return root


def same_tree(x: Path, y: Path) -> None:
    """Names, types, content, permission bits and file mtimes are equal."""
    xs = sorted(p.relative_to(x) for p in x.rglob("*"))
    ys = sorted(p.relative_to(y) for p in y.rglob("*"))
    assert xs == ys
    for rel in xs:
        a, b = x / rel, y / rel
        sa, sb = a.lstat(), b.lstat()
        assert (sa.st_mode, rel) == (sb.st_mode, rel)
        if a.is_symlink():
            assert os.readlink(a) == os.readlink(b)
        elif a.is_file():
            assert sa.st_size == sb.st_size, rel
            assert filecmp.cmp(a, b, shallow=False), rel
            assert sa.st_mtime_ns == sb.st_mtime_ns, rel


def run(*args: str | Path, cwd: Path | None = None) -> str:
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=300)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def test_cp_a_in_and_out(mounts: Mounts, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    m = mounts.mount()
    run("cp", "-a", src, m.mountpoint / "copy")
    same_tree(src, m.mountpoint / "copy")
    run("cp", "-a", m.mountpoint / "copy", tmp_path / "out")
    same_tree(src, tmp_path / "out")
    run("cmp", src / "a" / "big.bin", m.mountpoint / "copy" / "a" / "big.bin")


def test_tar_x_into_mount_and_c_back(mounts: Mounts, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", seed=3)
    run("tar", "--format=posix", "-cf", tmp_path / "in.tar", "-C", src, ".")
    m = mounts.mount()
    (m.mountpoint / "t").mkdir()
    run("tar", "xpf", tmp_path / "in.tar", "-C", m.mountpoint / "t")
    run("tar", "--format=posix", "-cf", tmp_path / "back.tar", "-C", m.mountpoint / "t", ".")
    (tmp_path / "back").mkdir()
    run("tar", "xpf", tmp_path / "back.tar", "-C", tmp_path / "back")
    same_tree(src, tmp_path / "back")


def test_rsync_twice_finds_nothing_to_do(mounts: Mounts, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", seed=5)
    m = mounts.mount()
    run("rsync", "-a", f"{src}/", f"{m.mountpoint}/dst/")
    same_tree(src, m.mountpoint / "dst")
    out = run("rsync", "-a", "--itemize-changes", f"{src}/", f"{m.mountpoint}/dst/")
    assert out.strip() == "", out


def test_remount_shows_everything(mounts: Mounts, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", seed=11)
    m = mounts.mount()
    run("cp", "-a", src, m.mountpoint / "copy")
    os.setxattr(m.mountpoint / "copy" / "f0.bin", "user.color", b"blue")
    assert m.stop() == 0
    assert not is_mounted(m.mountpoint)
    m2 = mounts.mount()
    same_tree(src, m2.mountpoint / "copy")
    assert os.getxattr(m2.mountpoint / "copy" / "f0.bin", "user.color") == b"blue"


def test_xattrs_get_set_list_remove(mounts: Mounts) -> None:
    m = mounts.mount()
    f = m.mountpoint / "x.txt"
    f.write_text("x")
    os.setxattr(f, "user.a", b"1")
    os.setxattr(f, "user.b", b"\x00\xff" * 100)
    assert sorted(os.listxattr(f)) == ["user.a", "user.b"]
    assert os.getxattr(f, "user.b") == b"\x00\xff" * 100
    os.removexattr(f, "user.a")
    assert os.listxattr(f) == ["user.b"]
    with pytest.raises(OSError) as e:
        os.getxattr(f, "user.a")
    assert e.value.errno == errno.ENODATA
    with pytest.raises(OSError):
        os.removexattr(f, "user.a")


def test_rename_over_existing_and_errors(mounts: Mounts) -> None:
    m = mounts.mount()
    mp = m.mountpoint
    (mp / "a").write_bytes(b"A" * 5000)
    (mp / "b").write_bytes(b"B" * 10)
    with open(mp / "a", "rb") as held:
        os.rename(mp / "b", mp / "a")  # replaces a; the open handle still reads the old content
        assert held.read() == b"A" * 5000
    assert (mp / "a").read_bytes() == b"B" * 10
    assert not (mp / "b").exists()
    (mp / "d").mkdir()
    (mp / "d" / "x").write_text("x")
    (mp / "e").mkdir()
    with pytest.raises(OSError) as e:
        os.rename(mp / "e", mp / "d")
    assert e.value.errno == errno.ENOTEMPTY
    with pytest.raises(OSError) as e:
        os.rename(mp / "a", mp / "e")
    assert e.value.errno == errno.EISDIR
    with pytest.raises(OSError) as e:
        os.rmdir(mp / "d")
    assert e.value.errno == errno.ENOTEMPTY
    with pytest.raises(OSError) as e:
        os.link(mp / "a", mp / "hard")
    assert e.value.errno == errno.EPERM
    os.rename(mp / "d", mp / "e")  # a directory over an empty one
    assert (mp / "e" / "x").read_text() == "x"


def test_read_only_mount_refuses_changes(mounts: Mounts) -> None:
    m = mounts.mount()
    (m.mountpoint / "keep.txt").write_text("kept")
    assert m.stop() == 0
    ro = mounts.mount("mnt", "--read-only")
    assert (ro.mountpoint / "keep.txt").read_text() == "kept"
    with pytest.raises(OSError) as e:
        (ro.mountpoint / "new.txt").write_text("no")
    assert e.value.errno == errno.EROFS


def test_umount_command_commits_and_unmounts(mounts: Mounts) -> None:
    m = mounts.mount()
    (m.mountpoint / "f").write_bytes(b"data" * 1000)
    r = m.cli("umount", str(m.mountpoint))
    assert r.returncode == 0, r.stderr
    assert m.proc is not None and m.proc.wait(30) == 0
    assert not is_mounted(m.mountpoint)
    m2 = mounts.mount()
    assert (m2.mountpoint / "f").read_bytes() == b"data" * 1000
