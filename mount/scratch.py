"""The mount's private scratch folder inside ``--cache-dir``: created by the mount, removed by it alone.

``--cache-dir DIR`` may be any folder of the user's, holding anything. The mount never touches
what it did not create: it makes ``DIR/.sigmavault-mount-<pid>-<random>`` (mode 0700, created
atomically by ``mkdtemp``) for its chunk-cache spill and write-back spool, and removes only that
folder when it ends. A folder of this shape left by a mount that died (its pid is gone) is
removed at the next start; its contents were encrypted under keys that died with the process.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path

PREFIX = ".sigmavault-mount-"
_OURS = re.compile(re.escape(PREFIX) + r"(\d+)-[A-Za-z0-9_]+")


def make_private(cache_dir: Path) -> Path:
    """A new private folder for this mount under ``cache_dir`` (created 0700 if missing)."""
    cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    _remove_dead(cache_dir)
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=cache_dir))


def remove_private(folder: Path) -> None:
    """Remove a folder :func:`make_private` made (and nothing else)."""
    if _OURS.fullmatch(folder.name):
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_dead(cache_dir: Path) -> None:
    with contextlib.suppress(OSError), os.scandir(cache_dir) as entries:
        for entry in entries:
            m = _OURS.fullmatch(entry.name)
            if m and entry.is_dir(follow_symlinks=False) and not _alive(int(m.group(1))):
                shutil.rmtree(entry.path, ignore_errors=True)
