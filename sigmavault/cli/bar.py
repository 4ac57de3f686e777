"""The rich progress bar of ``import`` and ``export`` (:mod:`.transfer`), apart so that rich is
imported only when a bar is drawn: on a TTY and without ``--json``. It imports nothing of
:mod:`.transfer` (which imports it on use), so the two make no cycle."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress
from rich.text import Text

from .output import human_size


class RateColumn(ProgressColumn):
    """The transfer rate in the binary units every other size the CLI prints uses (rich's own is decimal)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("?" if speed is None else f"{human_size(int(speed))}/s", style="progress.data.speed")


class BarProgress:
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
