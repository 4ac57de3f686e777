"""Small redacting containers for key material (a leaf module).

A :class:`Secret` holds bytes in a ``bytearray`` so it can be wiped on a best-effort basis.
It never shows its value in ``repr``/``str``, refuses to be pickled (so keys cannot leak into
a process pool's pipe, a log record or a core file by accident), and compares in constant
time. Python cannot promise zeroization; ``wipe()`` is hygiene, not a guarantee.
"""

from __future__ import annotations

import hmac
from typing import NoReturn


class Secret:
    """Key material. ``bytes(secret)`` or ``secret.reveal()`` is the only way to the value."""

    __slots__ = ("_buf", "_label")

    def __init__(self, value: bytes | bytearray | memoryview, label: str = "secret") -> None:
        self._buf = bytearray(value)
        self._label = label

    def reveal(self) -> bytes:
        return bytes(self._buf)

    def __bytes__(self) -> bytes:
        return bytes(self._buf)

    def __len__(self) -> int:
        return len(self._buf)

    def __repr__(self) -> str:
        return f"<Secret {self._label} ({len(self._buf)} bytes, redacted)>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._buf, other._buf)

    def __hash__(self) -> int:  # keys are not dict keys; avoid leaking a hash of them
        raise TypeError("Secret is not hashable")

    def __reduce__(self) -> NoReturn:
        raise TypeError("Secret objects must not be pickled")

    def wipe(self) -> None:
        for i in range(len(self._buf)):
            self._buf[i] = 0
