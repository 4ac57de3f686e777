"""The per-vault local state file (engine/local/localstate.py): pin, high-water marks, client id.

A laptop thief (L) or a corrupted disk may change this file; its MAC catches that, but the pin is
read before unlock without the MAC (``peek``), so the strict parser itself sees raw bytes.

Input: one mode byte, then the body.

* 0: the body as the file: unverified ``peek``, verified ``decode``, and ``load`` from disk.
* 1: the body as the payload S with a correct MAC under the fixed test key: the fuzzer gets past
  the MAC into the field checks.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sigmavault.engine.format.canonical import b64u
from sigmavault.engine.local import localstate

from .common import LOCAL_KEY, allowed


def _mac_file(payload: bytes) -> bytes:
    mac = localstate._mac(LOCAL_KEY, payload)
    return b'{"payload":"' + b64u(payload).encode() + b'","mac":"' + b64u(mac).encode() + b'"}'


def test_one_input(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0] % 2, data[1:]
    if mode == 0:
        allowed(localstate.peek, body)
        allowed(localstate.decode, body, LOCAL_KEY)
        fd, name = tempfile.mkstemp(prefix="sv-fuzz-state-")  # nothing left behind, even on a crash exit
        try:
            os.write(fd, body)
            allowed(localstate.load, Path(name), LOCAL_KEY)
            allowed(localstate.load_unverified, Path(name))
        finally:
            os.close(fd)
            os.unlink(name)
    else:
        raw = _mac_file(body)
        state = allowed(localstate.decode, raw, LOCAL_KEY)
        if state is not None:
            assert localstate.peek(raw) == state
            assert localstate.decode(localstate.encode(state, LOCAL_KEY), LOCAL_KEY) == state
