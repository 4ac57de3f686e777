"""The object-name lists of prune's deletion records and rescues (engine/repo/leases.py).

Version 1 holds ``o/`` names only, 32 raw bytes each. Version 2, used only when a write-only
client's ``d/<writer>/o/`` name is among them, is the count of ``o/`` names (u32), those names,
then the ``d/`` names as writer id ‖ object name, 48 bytes each.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from .canonical import fail

NAME_LEN = 32  # an o/ name's 64 hex digits, raw
DROP_NAME_LEN = 48  # a d/<writer>/o/ name: the writer id and the object's name, raw


def pack_names(names: Iterable[str]) -> tuple[int, bytes]:
    """(version, bytes) of a list of object names (see the module doc)."""
    own = sorted(bytes.fromhex(n[2:]) for n in names if n.startswith("o/"))
    drops = sorted(bytes.fromhex(n[2:34] + n[37:]) for n in names if n.startswith("d/"))
    if not drops:
        return 1, b"".join(own)
    return 2, struct.pack(">I", len(own)) + b"".join(own) + b"".join(drops)


def unpack_names(raw: bytes, version: int = 1) -> set[str]:
    d: bytes = b""
    if version == 2:
        if len(raw) < 4 or len(raw) < 4 + NAME_LEN * (n := struct.unpack(">I", raw[:4])[0]):
            fail("record length")
        raw, d = raw[4 : 4 + NAME_LEN * n], raw[4 + NAME_LEN * n :]
    if len(raw) % NAME_LEN or len(d) % DROP_NAME_LEN:
        fail("record length")
    out = {"o/" + raw[i : i + NAME_LEN].hex() for i in range(0, len(raw), NAME_LEN)}
    return out | {f"d/{d[i : i + 16].hex()}/o/{d[i + 16 : i + DROP_NAME_LEN].hex()}"
                  for i in range(0, len(d), DROP_NAME_LEN)}

__all__ = ["DROP_NAME_LEN", "NAME_LEN", "pack_names", "unpack_names"]
