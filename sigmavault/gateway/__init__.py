"""An HTTP gateway to one open vault, on aiohttp: ``sigmavault serve http`` and :func:`make_app` for embedders.

The URL path is the vault path (percent-decoded to bytes; NUL, ``.`` and ``..`` components are
refused with 400, never resolved). One vault, opened by the caller, serves every request:

- ``GET``/``HEAD`` of a file streams it through the vault's ranged read (memory stays at a few
  chunks per response, whatever the size) with ``Content-Length``, ``Accept-Ranges: bytes``, a
  strong ``ETag`` (a keyed hash of the file's blob ids or inline bytes), ``Last-Modified`` and a
  ``Content-Type`` guessed from the name. ``Range`` (one range: 206; several: 206
  ``multipart/byteranges``; none satisfiable: 416), ``If-Range``, ``If-None-Match``,
  ``If-Modified-Since``, ``If-Match`` and ``If-Unmodified-Since`` follow RFC 9110.
- ``GET`` of a directory lists it: JSON (``Accept: application/json`` or ``?format=json``) or a
  plain HTML page with every name escaped.
- ``PUT`` streams the request body into the vault and commits (201 created, 204 replaced);
  ``DELETE`` removes a file or an empty directory and commits (204). Both are 405 when read-only,
  and honour ``If-Match`` / ``If-None-Match: *``.
- With a token, every request needs ``Authorization: Bearer <token>`` (401 otherwise).

Errors are JSON bodies ``{"error": {"type", "status", "message"}}``: not found 404, a directory
or non-empty directory in the way 409, a bad path 400, data failing authentication at the
provider 502, the provider unreachable 503. No response or log line carries a secret.

Embedding::

    from aiohttp import web
    from sigmavault.gateway import make_app

    app = web.Application()
    app.add_subapp("/vault/", make_app(vault, read_only=True))
"""

from __future__ import annotations

from .app import Gateway, make_app

__all__ = ["Gateway", "make_app"]
