"""Canonical JSON and strict base64url (engine/format/canonical.py): the text layer under every document.

Input: one mode byte, then the body.

* 0: ``loads`` of the body (plain, then canonical); a canonical parse must round-trip exactly.
* 1: ``unb64u`` of the body as text (any length, then 32 bytes exact); a decode must round-trip.
* 2: the typed accessors over whatever JSON the body parses to.
"""

from __future__ import annotations

from sigmavault.engine.format import canonical

from .common import allowed


def test_one_input(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0] % 3, data[1:]
    if mode == 0:
        allowed(canonical.loads, body)
        value = allowed(canonical.loads, body, canonical=True)
        if value is not None:
            assert canonical.dumps(value) == body
    elif mode == 1:
        text = body.decode("utf-8", "replace")
        raw = allowed(canonical.unb64u, text)
        if raw is not None:
            assert canonical.b64u(raw) == text
        allowed(canonical.unb64u, text, 32)
    else:
        value = allowed(canonical.loads, body)
        if value is None:
            return
        allowed(canonical.obj, value, {"a"}, {"b"})
        allowed(canonical.integer, value)
        allowed(canonical.string, value, 16)
        allowed(canonical.array, value, 4)
        allowed(canonical.unb64u, value)
