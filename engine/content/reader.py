"""File content out, in order: a file's blobs through the fetcher's readahead window and the blob reader.

:func:`read_blobs` is the streaming read route behind ``Vault.open_read``, :class:`VaultFile` and
export (which reads through ``open_read``): it keeps ``window`` blob reads running ahead of the
consumer (:func:`...actors.fetcher.ordered`) and yields the pieces in file order from byte
``offset`` on. Each blob is read by the vault's one :class:`~..repo.reader.BlobReader` — opened off
the event loop and verified once by its keyed id, pack members of the still-open data pack served
from memory — so nothing here opens, hashes or flushes anything itself. The fetcher's window rule
(:func:`ahead`) is re-exported for the mount, whose prefetch follows it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Sequence

from ...actors.fetcher import ahead, ordered
from ..format.refs import Blob
from ..repo.reader import BlobReader

__all__ = ["ahead", "read_blobs"]


async def read_blobs(reader: BlobReader, blobs: Sequence[Blob], offset: int, window: int
                     ) -> AsyncGenerator[bytes, None]:
    """Yield the content of ``blobs`` from byte ``offset`` on, with ``window`` blobs read ahead.

    Raises IntegrityError (a missing, damaged or substituted blob). Closing the generator cancels
    the reads still running.
    """
    pos = 0
    start = 0
    while start < len(blobs) and pos + blobs[start].length <= offset:
        pos += blobs[start].length
        start += 1
    skip = offset - pos
    if start == len(blobs) - 1:  # one blob (every small file): no readahead task to run
        data = await reader.read(blobs[start])
        if data[skip:]:
            yield data[skip:]
        return
    async with contextlib.aclosing(ordered(blobs[start:], reader.read, window)) as results:
        async for data in results:
            if skip:
                data = data[skip:]
                skip = 0
            if data:
                yield data
