"""Run the real ``sigmavault`` command with its uploads held at a gate the test controls.

A test that must stop a run in the middle (kill the process, or its server, before the run can
finish) cannot find the middle by polling and sleeping: on a fast machine or a busy one, the run
finishes between the poll and the kill. ``gated_cmd`` starts the command with a FaultyBackend
under the retrying wrapper (as the faults of tests/backends are injected) whose hold rule lets the
first ``allow`` data uploads (``o/`` objects) through and stops every later one: it creates the
file ``held`` and waits until the file ``release`` exists (for ever if it never does). The run can
therefore not commit before the test says so, and the test knows when it has got that far.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

_LAUNCHER = r"""
import asyncio, runpy, sys
from pathlib import Path

from sigmavault.backends.faulty import FaultyBackend
from sigmavault.engine import opening as session

held, release, allow = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
passed = 0


async def gate(name):
    global passed
    if not name.startswith("o/"):
        return
    if passed < allow:
        passed += 1
        return
    held.touch()
    while not release.exists():
        await asyncio.sleep(0.01)


real_open_backend = session.open_backend


def open_backend(url, **opts):
    faulty = FaultyBackend(real_open_backend(url, **opts))
    faulty.hold("put_if_absent", gate)
    return faulty


session.open_backend = open_backend
sys.argv = ["sigmavault", *sys.argv[4:]]
runpy.run_module("sigmavault", run_name="__main__", alter_sys=True)
"""


class Gate:
    """The two files of one gated run, in ``folder``."""

    def __init__(self, folder: Path, allow: int) -> None:
        self.held = folder / "gate-held"
        self.release_file = folder / "gate-release"
        self.allow = allow

    def cmd(self, *args: str) -> list[str]:
        """The command line: ``sigmavault ARGS`` behind this gate."""
        return [sys.executable, "-c", _LAUNCHER, str(self.held), str(self.release_file), str(self.allow), *args]

    def wait_held(self, proc: subprocess.Popen[bytes] | subprocess.Popen[str], limit: float = 120) -> None:
        """Wait until the run is stopped at the gate (fail if it ends or never gets there)."""
        deadline = time.monotonic() + limit
        while not self.held.exists():
            assert proc.poll() is None, ("the run ended before reaching the gate", proc.communicate())
            assert time.monotonic() < deadline, "the run never reached the gate"
            time.sleep(0.02)

    def release(self) -> None:
        self.release_file.touch()
