"""Canonical JSON and strict base64url: the text encodings of the v1 format (a leaf module).

CRYPTO.md §1.2 and §4.5: UTF-8 JSON with sorted keys and separators ``,`` ``:``, integers only,
every byte string as unpadded base64url. Decoding is strict: duplicate keys, floats, NaN,
non-canonical base64, oversized documents and unexpected fields all raise
:class:`~sigmavault.engine.errors.IntegrityError` with the one generic message, so parsers of
untrusted bytes end in that single error and nothing else.

This module encodes and checks; it does no I/O and holds no keys.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping
from typing import Any, NoReturn

from ..errors import IntegrityError

MAX_DOCUMENT = 1 << 20  # 1 MiB: keystores, commits; pages are bounded by chunk_size separately


def fail(detail: str = "") -> NoReturn:
    """Raise the uniform integrity error. ``detail`` is for debugging only and never secret."""
    raise IntegrityError(IntegrityError.GENERIC)


_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def b64u(data: bytes | bytearray | memoryview) -> str:
    """Unpadded base64url (binascii directly: the base64 module's wrappers cost more than the encoding
    for the short ids and names of a catalog page, tens of thousands per page load or save)."""
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode("ascii")


def unb64u(text: object, length: int | None = None) -> bytes:
    """Strict unpadded base64url: re-encode must round-trip (which refuses every character outside the
    url-safe alphabet, padding and non-zero trailing bits), optional exact length."""
    if not isinstance(text, str) or len(text) % 4 == 1:
        fail("base64")
    try:
        raw = binascii.a2b_base64((text + "=" * (-len(text) % 4)).encode("ascii").translate(_FROM_URLSAFE))
    except (binascii.Error, ValueError):  # UnicodeEncodeError is a ValueError
        fail("base64")
    if b64u(raw) != text or (length is not None and len(raw) != length):
        fail("base64")
    return raw


def dumps(obj: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, no whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            fail("duplicate key")
        out[key] = value
    return out


def _no_float(text: str) -> NoReturn:
    fail("float")


def loads(data: bytes | bytearray | memoryview, limit: int = MAX_DOCUMENT, canonical: bool = False,
          *, unique_keys: bool = True) -> Any:
    """Parse untrusted JSON strictly. With ``canonical`` the bytes must be exactly ``dumps`` of the result.
    ``unique_keys=False`` skips the duplicate-key hook, for a caller that compares the bytes with
    ``dumps`` of the result itself (a repeated key cannot re-encode to the input)."""
    raw = bytes(data)
    if len(raw) > limit:
        fail("too large")
    try:
        text = raw.decode("utf-8")
        obj = json.loads(text, object_pairs_hook=_no_duplicates if unique_keys else None,
                         parse_float=_no_float, parse_constant=_no_float)
    except (UnicodeDecodeError, ValueError, RecursionError):
        fail("json")
    if canonical:
        try:
            again = dumps(obj)
        except (ValueError, RecursionError):  # a lone surrogate ("\ud800") parses but has no UTF-8 form
            fail("not canonical")
        if again != raw:
            fail("not canonical")
    return obj


# --- typed field access for strict decoders --------------------------------------------------


def obj(value: object, required: set[str], optional: set[str] = frozenset()) -> Mapping[str, Any]:  # type: ignore[assignment]
    """``value`` must be a JSON object whose keys are all of ``required`` plus some of ``optional``."""
    if not isinstance(value, dict):
        fail("object")
    keys = set(value)
    if not required <= keys or not keys <= (required | optional):
        fail("fields")
    return value


def integer(value: object, lo: int = 0, hi: int = (1 << 63) - 1) -> int:
    if type(value) is not int or not lo <= value <= hi:
        fail("integer")
    return value


def string(value: object, max_len: int = 4096) -> str:
    """A JSON string of at most ``max_len`` characters that is real Unicode text: a lone surrogate
    (``"\\ud800"`` parses) could never be written back, so every later re-encode would crash."""
    if not isinstance(value, str) or len(value) > max_len or not utf8_text(value):
        fail("string")
    return value


def utf8_text(value: str) -> bool:
    """Whether ``value`` has a UTF-8 form (no lone surrogates, e.g. from ``surrogateescape`` argv)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def array(value: object, max_len: int = 1 << 20) -> list[Any]:
    if not isinstance(value, list) or len(value) > max_len:
        fail("array")
    return value
