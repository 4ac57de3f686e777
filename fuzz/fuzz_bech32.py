"""bech32 strings and the age/recovery text forms (engine/format/bech32.py, xwing.py, credentials.py).

Input: one mode byte, then the body.

* 0: the body as text, decoded as bare bech32, an ``age1pq1…`` recipient, an
  ``AGE-SECRET-KEY-PQ-1…`` identity and a ``vault-recovery-1…`` code.
* 1: the body encoded under a chosen HRP with a *valid* checksum, then decoded (must round-trip)
  and parsed as a recipient, identity and recovery code: the fuzzer reaches the length and
  public-key checks behind the checksum.
* 2: as 1, then one character of the valid string changed (the checksum must catch it).
"""

from __future__ import annotations

from sigmavault.engine.format import bech32
from sigmavault.engine.keys import xwing
from sigmavault.engine.keys.credentials import RECOVERY_HRP, RecoveryCode

from .common import allowed

HRPS = ("age1pq", "AGE-SECRET-KEY-PQ-", RECOVERY_HRP, "x")


def _parse_all(text: str) -> None:
    allowed(bech32.decode, text)
    allowed(xwing.parse_recipient, text)
    allowed(xwing.parse_identity, text)
    allowed(RecoveryCode.parse, text)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0] % 3, data[1:]
    if mode == 0:
        _parse_all(body.decode("utf-8", "replace"))
        return
    hrp = HRPS[body[0] % len(HRPS)] if body else "x"
    payload = body[1:]
    text = bech32.encode(hrp, payload)
    if mode == 1:
        if len(text) <= bech32.MAX_LEN:
            assert bech32.decode(text, hrp) == (hrp.lower(), payload)
            assert bech32.decode(text.upper(), hrp) == (hrp.lower(), payload)
        _parse_all(text)
        return
    if len(text) < 8 or len(payload) < 2:
        return
    pos = len(hrp) + 1 + payload[0] % (len(text) - len(hrp) - 1)
    changed = text[:pos] + bech32.CHARSET[(bech32.CHARSET.find(text[pos]) + 1 + payload[1] % 31) % 32] + text[pos + 1 :]
    if allowed(bech32.decode, changed) is not None:
        raise AssertionError("a one-character change passed the bech32 checksum")
