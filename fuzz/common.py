"""What every harness shares: fixed test keys, a tiny event loop, and the one rule.

The rule: a parser of hostile bytes may return, or raise a :class:`VaultError` subclass;
anything else (``ValueError``, ``KeyError``, ``UnicodeEncodeError``, ``RecursionError`` …) is a
finding, and the fuzzer reports it as a crash. Time and memory bounds are the fuzzer's
``-timeout`` and ``-rss_limit_mb`` (see run.py) and the replay test's per-input clock.

The keys are fixed and public (this is test code): harnesses seal hostile plaintext under them
so the fuzzer reaches the parsers behind the MAC/AEAD, exactly as a co-writer holding the vault
keys could.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from sigmavault.engine.errors import VaultError
from sigmavault.engine.format.envelope import Sealer
from sigmavault.engine.keys.schedule import EpochKeys
from sigmavault.engine.keys.secret import Secret

T = TypeVar("T")

VAULT_ID = bytes(range(32))
ROOT_KEY = bytes(range(100, 132))
EPOCH = 1
CHUNK_SIZE = 1 << 20  # the smallest v1 chunk size keeps sealed test objects small
PAD_FLOOR = 4096
KEYS = EpochKeys.derive(ROOT_KEY, VAULT_ID, EPOCH, "blake3-keyed-256")
SEALER = Sealer(KEYS, CHUNK_SIZE, PAD_FLOOR)
KSK = Secret(bytes(range(200, 232)), "fuzz ksk")
LOCAL_KEY = Secret(bytes(range(50, 82)), "fuzz local-state key")

_LOOP: asyncio.AbstractEventLoop | None = None


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on one loop kept for the whole process (a fresh loop per input is slow)."""
    global _LOOP
    if _LOOP is None:
        _LOOP = asyncio.new_event_loop()
    return _LOOP.run_until_complete(coro)


def allowed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Call ``fn``; a VaultError is an allowed outcome (returns None), anything else propagates."""
    try:
        return fn(*args, **kwargs)
    except VaultError:
        return None
