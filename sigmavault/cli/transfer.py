"""What ``import`` and ``export`` share: the progress hook.

:class:`Progress` is the hook: the commands call ``start`` once with the totals, ``file_done``
after each file and ``close`` at the end; ``advance`` takes byte counts as they move (the
pipeline reports through it once it streams progress). Three hooks exist: a rich progress bar
on stderr (only on a TTY and not with ``--json``), JSON lines on stdout (``--json``), and none.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress
from rich.text import Text

from .output import Output, human_size


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


class RateColumn(ProgressColumn):
    """The transfer rate in the binary units every other size the CLI prints uses (rich's own is decimal)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("?" if speed is None else f"{human_size(int(speed))}/s", style="progress.data.speed")


class BarProgress(NoProgress):
    """A rich bar on stderr: files and bytes done of the totals, the rate and the time left, in binary units.

    Bytes move with ``advance`` when the caller streams them (import), else with each finished file."""

    def __init__(self, label: str, console: Console | None = None) -> None:
        self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True),
                                 RateColumn(), TimeRemainingColumn(), transient=True, console=console)
        self._label = label
        self._task = self._bar.add_task(label, total=None)
        self._files = self._total_files = 0
        self._streamed = False

    def start(self, files: int, total_bytes: int) -> None:
        self._total_files = files
        self._bar.update(self._task, total=total_bytes, description=f"{self._label} 0/{files} files")
        self._bar.start()

    def advance(self, nbytes: int) -> None:
        self._streamed = True
        self._bar.advance(self._task, nbytes)

    def file_done(self, path: str, kind: str, size: int) -> None:
        self._files += 1
        self._bar.update(self._task, description=f"{self._label} {self._files}/{self._total_files} files")
        if not self._streamed:
            self._bar.advance(self._task, size)

    def close(self) -> None:
        self._bar.stop()


def progress_for(out: Output, label: str) -> Progress:
    if out.json:
        return JsonProgress(out)
    if sys.stderr.isatty():
        return BarProgress(label)
    return NoProgress()
