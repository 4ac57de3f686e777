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


def entropies(hists: np.ndarray) -> np.ndarray:
    """:func:`entropy` of each row of an ``(n, 256)`` array of histograms, in one vectorised pass."""
    import numpy as np

    n = hists.sum(axis=1)
    nonzero = hists > 0
    p = hists / np.maximum(n, 1)[:, None]
    terms = np.where(nonzero, p * np.log2(np.where(nonzero, p, 1.0)), 0.0)
    k = nonzero.sum(axis=1)
    h = -terms.sum(axis=1) + (k - 1) / (2 * np.maximum(n, 1) * math.log(2))
    return np.where(n < MIN_SAMPLE, -1.0, np.minimum(8.0, h))


def entropy(hist: np.ndarray) -> float:
    """Shannon entropy in bits per byte of a 256-bin histogram, Miller–Madow corrected, capped at 8;
    ``-1`` below :data:`MIN_SAMPLE` bytes."""
    return float(entropies(hist.reshape(1, 256))[0])


@dataclass(slots=True)
class FileSignal:
    """One file's signals; ``existed``/``same``/``old_size`` are filled where the old version is known."""

    entropy: float
    head: bytes
    size: int = 0
    existed: bool = False  # a file was at this path before
    same: bool = False  # its content is exactly the old version's (every piece deduplicated to the same blobs)
    old_size: int = -1


#: files whose entropy :meth:`Sampler.defer` leaves to one pass (numpy costs microseconds a call: a
#: few calls per small file were most of sampling 10,000 of them), and the sampled bytes of one file
#: held before they are counted into its histogram (a long file's many pieces)
SETTLE_FILES = 64
HOLD_BYTES = 64 << 10


class Sampler:
    """Histograms per pipeline token, fed piece by piece (the chunker's output), taken once a file completes.

    A file's samples are kept as bytes (up to :data:`HOLD_BYTES`, then counted into its histogram)
    and counted for many files in one pass: :meth:`take` gives a file's signal at once,
    :meth:`defer` gives it with the entropy filled in by the next :meth:`settle` (which runs by
    itself every :data:`SETTLE_FILES` deferred files).
    """

    def __init__(self) -> None:
        self._samples: dict[int, list[bytes]] = {}
        self._held: dict[int, int] = {}
        self._hist: dict[int, np.ndarray] = {}  # counted samples of long files
        self._head: dict[int, bytes] = {}
        self._deferred: list[tuple[int, FileSignal]] = []

    def piece(self, token: int, index: int, data: bytes) -> None:
        if index == 0:
            self._head[token] = bytes(data[:HEAD])
        if not data:
            return
        samples = self._samples.setdefault(token, [])
        samples.append(bytes(data[:SAMPLE]))
        added = len(samples[-1])
        if len(data) > 2 * SAMPLE:
            mid = len(data) // 2
            samples.append(bytes(data[mid : mid + SAMPLE]))
            added += SAMPLE
        held = self._held[token] = self._held.get(token, 0) + added
        if held >= HOLD_BYTES:  # a long file: count what it holds now, keep the histogram
            self._hist[token] = self._histograms([token])[0]

    def _histograms(self, tokens: list[int]) -> np.ndarray:
        """The histograms of ``tokens`` (rows, in order), their held samples counted in one bincount;
        the tokens' state is dropped."""
        import numpy as np

        lengths: list[int] = []
        chunks: list[bytes] = []
        ids: list[int] = []
        for row, token in enumerate(tokens):
            self._held.pop(token, None)
            for sample in self._samples.pop(token, ()):
                ids.append(row)
                lengths.append(len(sample))
                chunks.append(sample)
        data = np.frombuffer(b"".join(chunks), dtype=np.uint8)
        # (row << 8) | byte as one key per sampled byte: uint16 while the rows fit (every settle of at
        # most SETTLE_FILES files), a quarter of the memory traffic of machine-size keys
        rows = np.array(ids, dtype=np.uint16 if len(tokens) <= 256 else np.intp)
        keys = np.repeat(np.left_shift(rows, 8), lengths) | data
        counts = np.bincount(keys, minlength=len(tokens) * 256).reshape(len(tokens), 256)
        for row, token in enumerate(tokens):
            had = self._hist.pop(token, None)
            if had is not None:
                counts[row] += had
        return counts

    def take(self, token: int) -> FileSignal:
        head = self._head.pop(token, b"")
        if token not in self._samples and token not in self._hist:
            return FileSignal(-1.0, head)
        return FileSignal(entropy(self._histograms([token])[0]), head)

    def defer(self, token: int) -> FileSignal:
        """The file's signal now, its entropy (``-1`` until then) once :meth:`settle` ran."""
        sig = FileSignal(-1.0, self._head.pop(token, b""))
        if token in self._samples or token in self._hist:  # else no bytes: no estimate
            self._deferred.append((token, sig))
            if len(self._deferred) >= SETTLE_FILES:
                self.settle()
        return sig

    def settle(self) -> None:
        """Fill in the entropy of every deferred signal."""
        if not self._deferred:
            return
        values = entropies(self._histograms([token for token, _ in self._deferred])).tolist()
        for (_, sig), value in zip(self._deferred, values, strict=True):
            sig.entropy = value
        self._deferred.clear()


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


__all__ = ["HEAD", "MIN_SAMPLE", "SAMPLE", "FileSignal", "Sampler", "entropies", "entropy", "pack", "unpack"]
