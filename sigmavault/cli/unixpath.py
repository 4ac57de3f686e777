"""Unix socket paths that fit: ``sun_path`` holds 108 bytes, a state folder under a long home may not.

A socket whose path is longer is bound and reached through an open descriptor of its folder,
``/proc/self/fd/N/name`` (Linux resolves the folder through it), so the unlock agent and a mount's
stats socket work wherever the user's folders are. The file is the same either way; only the name
handed to ``bind``/``connect`` changes, and only while the descriptor is open.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

LIMIT = 100  # bytes of a path used as it is (sun_path is 108, with its NUL)


@contextlib.contextmanager
def reachable(path: Path) -> Iterator[str]:
    """A name for ``bind``/``connect`` of the socket at ``path``, valid inside the block."""
    if len(os.fsencode(path)) < LIMIT:
        yield os.fspath(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


__all__ = ["reachable"]
