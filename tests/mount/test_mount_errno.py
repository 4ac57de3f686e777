"""What a FUSE syscall answers when the vault fails: the errno each error class carries (issue 11).

The errno comes from the error's class (``VaultError.errno``), never from its message, and a bare
``KeyError`` inside a handler is a bug (EIO, logged), not "no such file". The calls go through
ctypes so the errno is seen as the kernel returned it (Python's own wrappers retry on EINTR).
"""

from __future__ import annotations

import ctypes
import errno
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mounttools import PASS, ROOT, is_alive, is_mounted, make_vault, needs_fuse

from sigmavault.engine import errors

HERE = Path(__file__).resolve().parent
_libc = ctypes.CDLL(None, use_errno=True)


def _access_errno(path: Path) -> int:
    """The errno of access(2) on ``path`` (0 when it succeeds)."""
    ctypes.set_errno(0)
    rc = _libc.access(os.fsencode(path), os.F_OK)
    return 0 if rc == 0 else ctypes.get_errno()


def _classes() -> list[type[errors.VaultError]]:
    out, todo = [], [errors.VaultError]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return [c for c in out if c.__module__ == errors.__name__]


@pytest.fixture
def fault_mount(tmp_path: Path) -> Iterator[Path]:
    vault, mnt, cache = tmp_path / "vault", tmp_path / "mnt", tmp_path / "cache"
    make_vault(vault)
    mnt.mkdir()
    log = open(tmp_path / "mount.log", "wb")  # noqa: SIM115 - closed below
    env = {**os.environ, "SIGMAVAULT_HOME": str(tmp_path / "home"), "SIGMAVAULT_PASSPHRASE": PASS,
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(HERE / "faultmount.py"), str(vault), str(mnt), str(cache)],
                            env=env, stdout=log, stderr=log, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not is_alive(mnt):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mount did not come up:\n{(tmp_path / 'mount.log').read_text()}")
            time.sleep(0.02)
        yield mnt
        proc.terminate()
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        if is_mounted(mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True, check=False)
        log.close()


@needs_fuse
def test_each_error_class_answers_its_errno(fault_mount: Path) -> None:
    classes = _classes()
    assert len(classes) >= 20
    got = {cls.__name__: _access_errno(fault_mount / f"fault-{cls.__name__}") for cls in classes}
    want = {cls.__name__: cls.errno for cls in classes}
    assert got == want
    # the ones the mount most needs, spelled out
    assert got["NotFound"] == errno.ENOENT and got["AlreadyExists"] == errno.EEXIST
    assert got["NoSpace"] == errno.ENOSPC and got["LocalIOError"] == errno.EIO
    assert got["IntegrityError"] == errno.EIO and got["NotADirectory"] == errno.ENOTDIR
    assert got["DirectoryNotEmpty"] == errno.ENOTEMPTY and got["IsADirectory"] == errno.EISDIR


@needs_fuse
def test_a_bare_key_error_is_a_bug_not_a_missing_file(fault_mount: Path) -> None:
    assert _access_errno(fault_mount / "fault-KeyError") == errno.EIO
    assert _access_errno(fault_mount / "really-absent") == errno.ENOENT
    (fault_mount / "present").write_bytes(b"still served")
    assert (fault_mount / "present").read_bytes() == b"still served"


@needs_fuse
def test_directory_errors_through_the_mount(fault_mount: Path) -> None:
    (fault_mount / "d").mkdir()
    (fault_mount / "d" / "f").write_bytes(b"x")
    with pytest.raises(OSError) as info:
        os.rmdir(fault_mount / "d")
    assert info.value.errno == errno.ENOTEMPTY
    with pytest.raises(OSError) as info:
        os.unlink(fault_mount / "d")
    assert info.value.errno == errno.EISDIR
    with pytest.raises(OSError) as info:
        os.mkdir(fault_mount / "d" / "f" / "below")
    assert info.value.errno == errno.ENOTDIR
