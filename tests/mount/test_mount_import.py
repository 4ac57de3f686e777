"""Importing the mount has no side effect: pyfuse3 switches to asyncio only when a mount is served."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from mounttools import ROOT, fuse_available

PROBE = """
import pyfuse3
before = pyfuse3.trio
import sigmavault.mount.session, sigmavault.mount.ops, sigmavault.mount.attrs  # noqa: E401
assert pyfuse3.trio is before, f"importing the mount switched pyfuse3 to {pyfuse3.trio!r}"
print(before.__name__)
"""


@pytest.mark.skipif(not fuse_available(), reason="pyfuse3 not available")
def test_importing_the_mount_leaves_pyfuse3_alone() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "trio"  # pyfuse3's own default, untouched
