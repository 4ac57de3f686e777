"""Only ``FUSEError`` leaves a FUSE handler: :func:`guarded` maps every other failure to an errno.

pyfuse3 in asyncio mode drops an exception other than ``FUSEError`` silently (the request is
never answered properly), so every handler is wrapped. The errno comes from the error's class,
never from its message: each :class:`~..engine.errors.VaultError` carries its own ``errno``
(ENOENT for NotFound, ENOSPC for NoSpace, EIO for IntegrityError, ...), and so do the inode and
handle tables' :class:`~.inodes.UnknownInode` (ENOENT) and :class:`~.inodes.UnknownHandle`
(EBADF). Anything else is a bug: logged with its traceback and answered with EIO. A plain
``KeyError`` is such a bug too, not a missing file.
"""

from __future__ import annotations

import errno
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import pyfuse3

from ..engine.errors import VaultError
from .inodes import UnknownHandle, UnknownInode

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def errno_of(exc: VaultError | UnknownInode | UnknownHandle) -> int:
    """The errno a FUSE request that failed with ``exc`` answers."""
    return exc.errno


def guarded(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Wrap one handler: FUSEError passes, known errors become their errno, the rest EIO (logged)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except (UnknownInode, UnknownHandle) as exc:  # the kernel names an inode or handle we let go
            raise pyfuse3.FUSEError(errno_of(exc)) from None
        except VaultError as exc:
            code = errno_of(exc)
            if code == errno.EIO:
                log.error("%s failed: %s", fn.__name__, exc.message)
            raise pyfuse3.FUSEError(code) from None
        except Exception:
            log.exception("unexpected error in %s", fn.__name__)
            raise pyfuse3.FUSEError(errno.EIO) from None

    return wrapper
