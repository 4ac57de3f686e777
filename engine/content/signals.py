"""Content signals for the guard, computed from the bytes the write pipeline already holds (no extra read).

For every file that flows through a sampling pipeline, a byte histogram of a sample of each piece
(its first :data:`SAMPLE` bytes and, for a long piece, :data:`SAMPLE` bytes from its middle) and
the file's first :data:`HEAD` bytes. :func:`entropy` turns the histogram into bits per byte with
the Miller–Madow bias correction, so a short sample of random data still reads near 8.0. A file
whose sample is shorter than :data:`MIN_SAMPLE` has no entropy estimate (``-1``): too few bytes to
tell encrypted from plain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where a sample is taken: a command that samples nothing never loads it
    import numpy as np

SAMPLE = 2048  # bytes sampled from the start (and the middle) of each piece
HEAD = 8  # leading bytes kept per file: the format signature
MIN_SAMPLE = 256  # fewer sampled bytes: no estimate


def entropy(hist: np.ndarray) -> float:
    """Shannon entropy in bits per byte of a 256-bin histogram, Miller–Madow corrected, capped at 8;
    ``-1`` below :data:`MIN_SAMPLE` bytes."""
    import numpy as np

    n = int(hist.sum())
    if n < MIN_SAMPLE:
        return -1.0
    p = hist[hist > 0] / n
    h = float(-(p * np.log2(p)).sum()) + (len(p) - 1) / (2 * n * math.log(2))
    return min(8.0, h)


@dataclass(slots=True)
class FileSignal:
    """One file's signals; ``existed``/``same``/``old_size`` are filled where the old version is known."""

    entropy: float
    head: bytes
    size: int = 0
    existed: bool = False  # a file was at this path before
    same: bool = False  # its content is exactly the old version's (every piece deduplicated to the same blobs)
    old_size: int = -1


class Sampler:
    """Histograms per pipeline token, fed piece by piece (the chunker's output), taken once a file completes."""

    def __init__(self) -> None:
        self._hist: dict[int, np.ndarray] = {}
        self._head: dict[int, bytes] = {}

    def piece(self, token: int, index: int, data: bytes) -> None:
        import numpy as np

        hist = self._hist.get(token)
        if hist is None:
            hist = self._hist[token] = np.zeros(256, dtype=np.int64)
        if index == 0:
            self._head[token] = bytes(data[:HEAD])
        if not data:
            return
        buf = np.frombuffer(data, dtype=np.uint8)
        hist += np.bincount(buf[:SAMPLE], minlength=256)
        if len(buf) > 2 * SAMPLE:
            mid = len(buf) // 2
            hist += np.bincount(buf[mid : mid + SAMPLE], minlength=256)

    def take(self, token: int) -> FileSignal:
        hist = self._hist.pop(token, None)
        head = self._head.pop(token, b"")
        return FileSignal(-1.0 if hist is None else entropy(hist), head)




def pack(sig: FileSignal) -> bytes:
    """The signal as kept beside backup's file row in the sealed local cache: version, entropy in
    1/32 bit (255: none), the head (``HEAD`` bytes, zero-padded)."""
    q = 255 if sig.entropy < 0 else min(254, round(sig.entropy * 31.75))
    return bytes([1, q]) + sig.head[:HEAD].ljust(HEAD, b"\0") + bytes([len(sig.head[:HEAD])])


def unpack(data: bytes | None) -> FileSignal | None:
    """:func:`pack`'s bytes back (None for none, or for a row of an unknown or older layout)."""
    if data is None or len(data) != HEAD + 3 or data[0] != 1:
        return None
    return FileSignal(-1.0 if data[1] == 255 else data[1] / 31.75, data[2 : 2 + min(HEAD, data[-1])])


__all__ = ["HEAD", "MIN_SAMPLE", "SAMPLE", "FileSignal", "Sampler", "entropy", "pack", "unpack"]
