"""Per-blob zstd compression (pure): what to keep compressed, and bounded inflation (docs/format.md,
"Compression").

The vault parameter ``compression`` is ``none`` (old vaults: nothing is compressed), ``zstd-auto``
(level 3 after a cheap probe) or ``zstd-max`` (level 19, every blob tried). A compressed blob is
kept only when it saves at least 1/16 of the plaintext — a full chunk only when its frame takes at
most half a chunk, so that every pack a frame closes is at least half full and a compressed chunk
never costs more than a plain one — and then only ever as a member of a data pack: its ref
carries ``z`` (the compressed length inside the pack) beside ``len`` (the plaintext length), so
the flag is authenticated by the catalog, never by anything the provider can flip.
Full-chunk objects are never compressed, so their content-addressed names and sizes stay as they
were (and a compressor's output never has to be deterministic).

Inflating is bounded by the ref's declared plaintext length (itself at most ``chunk_size``): a
co-writer holding the keys can write a frame that inflates to far more (a zstd bomb); it fails
with an :class:`IntegrityError` after producing at most ``length + 1`` bytes.
"""

from __future__ import annotations

import threading

import zstandard

from ..errors import IntegrityError

NONE, AUTO, MAX = "none", "zstd-auto", "zstd-max"
MODES = (NONE, AUTO, MAX)
#: the command line's names of the modes
CLI_NAMES = {"off": NONE, "auto": AUTO, "max": MAX}
PROBE = "probe"
LEVELS = {AUTO: 3, MAX: 19, PROBE: 1}
#: ``zstd-auto``'s level 3 with a minimum match of 6 bytes, not 5 (measured on 4 MiB chunks: the
#: bench's generated text 3.0% instead of 3.9% of its size, source code and documentation 0.7% larger)
MIN_MATCH = {AUTO: 6}
PROBE_WINDOWS = 4  # windows of PROBE_WINDOW bytes spread over the blob
PROBE_WINDOW = 8192
PROBE_KEEP = 0.9  # the probe's ratio above which ``zstd-auto`` stores the blob as it is
MIN_BLOB = 64  # shorter blobs are never worth a zstd frame

_local = threading.local()  # zstd contexts are not thread-safe; one per thread and level


def _compressor(mode: str) -> zstandard.ZstdCompressor:
    cache: dict[str, zstandard.ZstdCompressor] | None = getattr(_local, "c", None)
    if cache is None:
        cache = _local.c = {}
    level = LEVELS[mode]
    c = cache.get(mode)
    if c is None:
        params = zstandard.ZstdCompressionParameters.from_level(level, min_match=MIN_MATCH.get(mode, 0),
                                                                 write_content_size=1, write_checksum=0)
        c = cache[mode] = zstandard.ZstdCompressor(compression_params=params)
    return c


def _decompressor() -> zstandard.ZstdDecompressor:
    d: zstandard.ZstdDecompressor | None = getattr(_local, "d", None)
    if d is None:
        d = _local.d = zstandard.ZstdDecompressor()
    return d


def _sample(data: bytes | memoryview) -> bytes:
    n = len(data)
    if n <= PROBE_WINDOWS * PROBE_WINDOW:
        return bytes(data)
    step = (n - PROBE_WINDOW) // (PROBE_WINDOWS - 1)
    mv = memoryview(data)
    return b"".join(mv[i * step : i * step + PROBE_WINDOW] for i in range(PROBE_WINDOWS))


def squeeze(data: bytes, mode: str, chunk_size: int) -> bytes | None:
    """The zstd frame to store instead of ``data``, or None to store ``data`` as it is (mode
    ``none``, a tiny blob, a probe that finds it incompressible, or too small a saving)."""
    n = len(data)
    keep = chunk_size // 2 if n >= chunk_size else n - n // 16
    if mode == NONE or n < MIN_BLOB:
        return None
    if mode == AUTO:
        sample = _sample(data)
        if len(_compressor(PROBE).compress(sample)) > PROBE_KEEP * len(sample):
            return None
    z = _compressor(mode).compress(data)
    return z if len(z) <= keep else None


def inflate(frame: bytes | memoryview, length: int, limit: int) -> bytes:
    """The plaintext of a stored zstd ``frame`` whose ref declares ``length`` bytes (at most
    ``limit``, the chunk size). Raises IntegrityError if it does not inflate to exactly that."""
    if not 0 < length <= limit:
        raise IntegrityError("a compressed blob declares an impossible length")
    try:
        reader = _decompressor().stream_reader(bytes(frame), read_across_frames=True)
        out = reader.read(length + 1)  # never more than one byte past the declared length
        while len(out) <= length:
            more = reader.read(length + 1 - len(out))
            if not more:
                break
            out += more
    except zstandard.ZstdError:
        raise IntegrityError("a compressed blob is not a valid zstd frame (written by a faulty or hostile "
                             "client holding the vault keys)") from None
    if len(out) != length:
        raise IntegrityError(f"a compressed blob inflates to {'more' if len(out) > length else 'less'} than its "
                             f"declared {length} bytes (written by a faulty or hostile client holding the vault keys)")
    return out
