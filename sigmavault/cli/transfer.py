"""What ``import`` and ``export`` share: the progress hook.

:class:`Progress` is the hook: the commands call ``start`` once with the totals, ``file_done``
after each file and ``close`` at the end; ``advance`` takes byte counts as they move (the
pipeline reports through it once it streams progress). Three hooks exist: a rich progress bar
on stderr (only on a TTY and not with ``--json``; in :mod:`.bar`, loaded only then), JSON lines on
stdout (``--json``), and none.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol

from .output import Output


class Progress(Protocol):
    def start(self, files: int, total_bytes: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...

    def file_done(self, path: str, kind: str, size: int) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    def start(self, files: int, total_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def file_done(self, path: str, kind: str, size: int) -> None:
        pass

    def close(self) -> None:
        pass


class JsonProgress(NoProgress):
    """JSON lines: ``{"event":"file",…}`` per item and, at most twice a second while bytes move,
    ``{"event":"progress","bytes":…,"total_bytes":…,"files":…,"total_files":…,"rate":…}``
    (bytes per second). The final ``done`` line is the command's."""

    def __init__(self, out: Output) -> None:
        self._out = out
        self._files = self._total_files = self._bytes = self._total = 0
        self._t0 = self._last = time.monotonic()

    def start(self, files: int, total_bytes: int) -> None:
        self._total_files, self._total = files, total_bytes

    def advance(self, nbytes: int) -> None:
        self._bytes += nbytes
        now = time.monotonic()
        if now - self._last >= 0.5:
            self._last = now
            self._out.event({"event": "progress", "bytes": self._bytes, "total_bytes": self._total,
                             "files": self._files, "total_files": self._total_files,
                             "rate": round(self._bytes / max(1e-9, now - self._t0))})

    def file_done(self, path: str, kind: str, size: int) -> None:
        self._files += 1
        self._out.event({"event": "file", "path": path, "type": kind, "size": size})


def progress_for(out: Output, label: str) -> Progress:
    if out.json:
        return JsonProgress(out)
    if sys.stderr.isatty():
        from .bar import BarProgress  # rich only when a bar is drawn: a piped or --json run never loads it

        return BarProgress(label)
    return NoProgress()
