"""The lines a person reads: one unit system (binary) in the progress bar and in every summary; plurals."""

from __future__ import annotations

import io
import re
import time

from rich.console import Console

from sigmavault.cli.bar import BarProgress
from sigmavault.cli.output import count, human_size

MIB = 1 << 20


def test_the_progress_bar_uses_the_units_of_the_summary() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=160)
    bar = BarProgress("export", console=console)
    bar.start(2, 110 * MIB)
    bar.advance(55 * MIB)
    time.sleep(0.05)  # two samples apart in time: the bar has a rate to show
    bar.advance(55 * MIB)
    bar.file_done("/a", "file", 0)
    bar._bar.refresh()
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    bar.close()
    assert "110.0/110.0 MiB" in shown and re.search(r"\d+\.\d [KMGT]iB/s", shown), shown
    assert not re.search(r"\d [kMGT]B", shown) and human_size(110 * MIB) == "110.0 MiB"


def test_counts_are_singular_for_one() -> None:
    assert [count(1, "file"), count(2, "file"), count(1, "directory"), count(0, "directory")] == [
        "1 file", "2 files", "1 directory", "0 directories"]
    assert [human_size(0), human_size(1023), human_size(1024), human_size(3 * (1 << 30))] == [
        "0 B", "1023 B", "1.0 KiB", "3.0 GiB"]
