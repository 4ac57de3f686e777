"""The gateway's aiohttp application: one open vault behind GET/HEAD/PUT/DELETE (see the package doc).

:func:`make_app` builds it; a :class:`Gateway` holds the vault and answers every request from one
handler behind one middleware, which checks the bearer token first and turns every error into a
status with a short JSON body (never a traceback). File bodies are streamed with the vault's ranged
read, one piece at a time; the first piece is read before the headers go out, so damaged data at
the start is a clean 502. Damage found later (or content replaced while it streams) cuts the
connection: the client sees a short body, never a silently wrong one.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import mimetypes
import os
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from urllib.parse import unquote_to_bytes

from aiohttp import web

from .. import Stat, Vault
from .._internal import show, split_path
from ..engine.errors import (
    AlreadyExists,
    BackendAuthError,
    BackendError,
    BackendUnavailable,
    ConcurrencyError,
    DirectoryNotEmpty,
    IntegrityError,
    IsADirectory,
    LockedError,
    NoSpace,
    NotADirectory,
    NotFound,
    UsageError,
    VaultError,
)
from ..engine.format.refs import Blob
from . import listing
from .ranges import Unsatisfiable, http_date, if_range_holds, parse_range, preconditions

log = logging.getLogger("sigmavault.gateway")

BODY_PIECE = 256 * 1024  # request body read size for PUT
#: the first match wins: subclasses before their bases
STATUS: tuple[tuple[type[VaultError], int], ...] = (
    (IntegrityError, 502), (NotFound, 404), (IsADirectory, 409), (NotADirectory, 409), (DirectoryNotEmpty, 409),
    (AlreadyExists, 409), (UsageError, 400), (BackendAuthError, 502), (BackendUnavailable, 503),
    (BackendError, 502), (NoSpace, 507), (ConcurrencyError, 503), (LockedError, 503),
)
TAMPERED = ("the storage provider returned data that failed authentication "
            "(tampered with or damaged at the provider)")
SAFE_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-cache",
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox"}
ALLOW_RW = "GET, HEAD, PUT, DELETE, OPTIONS"
ALLOW_RO = "GET, HEAD, OPTIONS"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Cut(Exception):
    """The body being streamed cannot be completed: drop the connection."""


def error_response(status: int, kind: str, message: str, **headers: str) -> web.Response:
    body = json.dumps({"error": {"type": kind, "status": status, "message": " ".join(message.split())}})
    return web.Response(status=status, text=body + "\n", content_type="application/json",
                        headers={**SAFE_HEADERS, **headers})


def status_of(exc: VaultError) -> int:
    return next((code for cls, code in STATUS if isinstance(exc, cls)), 500)


def vault_path(request: web.Request) -> tuple[str, list[bytes]]:
    """The URL prefix the app is mounted at (``""`` at the root, ``/vault`` as a sub-app there) and
    the vault path the rest of the URL names, percent-decoded to bytes. UsageError for NUL, ``.``
    or ``..`` components (never resolved: a path cannot climb out of where it points)."""
    resource = request.match_info.route.resource
    canonical = resource.canonical if resource is not None else "/{tail}"
    depth = len([s for s in canonical.removesuffix("/{tail}").split("/") if s])
    segments = request.rel_url.raw_path.split("/")
    return "/".join(segments[: 1 + depth]), split_path(unquote_to_bytes("/".join(segments[1 + depth :])))


class Gateway:
    """Serves one open vault; shared by every request of the app."""

    def __init__(self, vault: Vault, *, read_only: bool, token: str | None, etag_key: bytes | None) -> None:
        self.vault = vault
        self.read_only = read_only
        self._token = hashlib.sha256(token.encode()).digest() if token is not None else None
        self._etag_key = etag_key or secrets.token_bytes(32)

    # --- the middleware: auth first, then errors as statuses ------------------------------------

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._token is not None and not self._authorized(request):
            return error_response(401, "Unauthorized", "a valid bearer token is required",
                                  **{"WWW-Authenticate": 'Bearer realm="sigmavault"'})
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except IntegrityError as exc:
            log.warning("%s %s: %s", request.method, request.rel_url.raw_path, exc.message)
            return error_response(502, type(exc).__name__, f"{exc.message}; {TAMPERED}")
        except VaultError as exc:
            return error_response(status_of(exc), type(exc).__name__, exc.message)
        except _BodyError:
            return error_response(400, "BadRequest", "the request body ended early or was malformed")
        except Exception as exc:  # the one place unexpected failures become a 500
            log.error("%s %s: unexpected %s", request.method, request.rel_url.raw_path, type(exc).__name__)
            return error_response(500, "InternalError", "internal error")

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        digest = hashlib.sha256(given.strip().encode("utf-8", "surrogateescape")).digest()
        return scheme.lower() == "bearer" and self._token is not None and hmac.compare_digest(digest, self._token)

    # --- dispatch ---------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        allow = ALLOW_RO if self.read_only else ALLOW_RW
        method = request.method
        if method == "OPTIONS":
            return web.Response(status=204, headers={"Allow": allow, **SAFE_HEADERS})
        if method not in ("GET", "HEAD", "PUT", "DELETE"):
            return error_response(405, "MethodNotAllowed", f"{method} is not supported", Allow=allow)
        if self.read_only and method in ("PUT", "DELETE"):
            return error_response(405, "MethodNotAllowed", "this gateway is read-only", Allow=allow)
        base, parts = vault_path(request)
        if method == "PUT":
            return await self.put(request, parts)
        if method == "DELETE":
            return await self.delete(request, parts)
        return await self.get(request, base, parts)

    def etag(self, size: int, inline: bytes | None, blobs: list[Blob]) -> str:
        """A strong entity tag of a file's content: a keyed hash (key private to this app) of its
        size and blob ids, or of its inline bytes; it reveals nothing of the content."""
        mac = hmac.new(self._etag_key, b"sigmavault gateway etag\0" + size.to_bytes(8, "big"), hashlib.sha256)
        if inline is not None:
            mac.update(b"i" + inline)
        for b in blobs:
            mac.update(b"b" + b.id + b.length.to_bytes(8, "big"))
        return f'"{mac.hexdigest()[:32]}"'

    # --- reads ------------------------------------------------------------------------------------

    async def get(self, request: web.Request, base: str, parts: list[bytes]) -> web.StreamResponse:
        path = show(parts)
        st, etag, size = await self._state(path)
        if st.type == "dir":
            return await self.directory(request, base, parts)
        if etag is None:
            raise UsageError(f"{path} is a symbolic link (the gateway does not follow links)")
        mtime = st.mtime_ns // 1_000_000_000
        validators = {"ETag": etag, "Last-Modified": http_date(mtime)}
        headers = {**SAFE_HEADERS, **validators, "Accept-Ranges": "bytes"}
        verdict = preconditions(request.method, dict(request.headers), etag, mtime)
        if verdict == 304:
            return web.Response(status=304, headers={**SAFE_HEADERS, **validators})
        if verdict is not None:
            return error_response(verdict, "PreconditionFailed", "a precondition of the request does not hold")
        ctype = mimetypes.guess_type(os.fsdecode(parts[-1]))[0] or "application/octet-stream"
        spans = None
        if request.method == "GET" and if_range_holds(request.headers.get("If-Range"), etag, mtime):
            try:
                spans = parse_range(request.headers.get("Range"), size)
            except Unsatisfiable:
                return error_response(416, "RangeNotSatisfiable", f"no requested range is inside the {size} bytes",
                                      **{**headers, "Content-Range": f"bytes */{size}"})
        if spans is None:
            return await self._send(request, 200, {**headers, "Content-Type": ctype}, path, [(b"", 0, size)], b"")
        if len(spans) == 1:
            (start, end), = spans
            headers.update({"Content-Type": ctype, "Content-Range": f"bytes {start}-{end - 1}/{size}"})
            return await self._send(request, 206, headers, path, [(b"", start, end)], b"")
        boundary = secrets.token_hex(16)
        segments = []
        for i, (start, end) in enumerate(spans):
            head = (f"{'' if i == 0 else chr(13) + chr(10)}--{boundary}\r\nContent-Type: {ctype}\r\n"
                    f"Content-Range: bytes {start}-{end - 1}/{size}\r\n\r\n")
            segments.append((head.encode(), start, end))
        headers["Content-Type"] = f"multipart/byteranges; boundary={boundary}"
        return await self._send(request, 206, headers, path, segments, f"\r\n--{boundary}--\r\n".encode())

    async def _send(self, request: web.Request, status: int, headers: dict[str, str], path: str,
                    segments: list[tuple[bytes, int, int]], tail: bytes) -> web.StreamResponse:
        """Stream ``segments`` (a prefix, then the file's bytes ``[start, end)``) and ``tail``."""
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = sum(len(p) + e - s for p, s, e in segments) + len(tail)
        if request.method == "HEAD" or resp.content_length == 0:
            await resp.prepare(request)
            await resp.write_eof()
            return resp
        prefix, start, end = segments[0]
        first = self.vault.open_read(path, start, end - start)
        try:
            piece = await anext(first, b"")  # damage at the start: an error status, not a cut body
        except BaseException:
            await first.aclose()
            raise
        try:
            await resp.prepare(request)
            await resp.write(prefix)
            await self._pump(resp, first, piece, end - start)
            for prefix, start, end in segments[1:]:
                await resp.write(prefix)
                await self._pump(resp, self.vault.open_read(path, start, end - start), None, end - start)
            await resp.write(tail)
            await resp.write_eof()
        except (ConnectionError, _Cut, VaultError) as exc:
            if not isinstance(exc, ConnectionError):  # the client gone is nothing to report
                log.warning("%s %s: response cut short: %s", request.method, request.rel_url.raw_path,
                            exc.message if isinstance(exc, VaultError) else exc)
            if request.transport is not None:
                request.transport.close()
            resp.force_close()
        return resp

    @staticmethod
    async def _pump(resp: web.StreamResponse, stream: AsyncGenerator[bytes, None], piece: bytes | None,
                    want: int) -> None:
        sent = 0
        async with contextlib.aclosing(stream):
            if piece:
                await resp.write(piece)
                sent += len(piece)
            async for piece in stream:
                sent += len(piece)
                if sent > want:
                    break
                await resp.write(piece)
        if sent != want:
            raise _Cut("the file changed while it was sent")

    async def directory(self, request: web.Request, base: str, parts: list[bytes]) -> web.StreamResponse:
        entries = await self.vault.ls(show(parts))
        fmt = request.query.get("format", "")
        headers = {**SAFE_HEADERS, "Vary": "Accept"}
        if fmt == "json" or (fmt != "html" and "application/json" in request.headers.get("Accept", "")):
            body = listing.as_json(show(parts), self.vault.generation, entries)
            return web.Response(text=body + "\n", content_type="application/json", headers=headers)
        return web.Response(text=listing.as_html(base, parts, entries), content_type="text/html", headers=headers)

    # --- writes -----------------------------------------------------------------------------------

    async def _state(self, path: str) -> tuple[Stat, str | None, int]:
        """``path``'s stat, and for a file its ETag and size (from one look at its blobs). Raises NotFound."""
        st = await self.vault.stat(path)
        if st.type != "file":
            return st, None, st.size
        size, inline, blobs = await self.vault.chunks(path)
        return st, self.etag(size, inline, blobs), size

    async def _current(self, path: str) -> tuple[Stat | None, str | None]:
        try:
            st, etag, _ = await self._state(path)
        except NotFound:
            return None, None
        return st, etag

    def _precondition(self, request: web.Request, st: Stat | None, etag: str | None) -> web.Response | None:
        mtime = st.mtime_ns // 1_000_000_000 if st is not None else None
        if preconditions(request.method, dict(request.headers), etag, mtime) is not None:
            return error_response(412, "PreconditionFailed", "a precondition of the request does not hold")
        return None

    async def put(self, request: web.Request, parts: list[bytes]) -> web.StreamResponse:
        if not parts:
            raise UsageError("PUT needs a file path, not the root")
        path = show(parts)
        st, etag = await self._current(path)
        if st is not None and st.type == "dir":
            raise IsADirectory(f"{path} is a directory")
        if (refused := self._precondition(request, st, etag)) is not None:
            return refused

        async def body() -> AsyncIterator[bytes]:
            while True:
                try:
                    piece = await request.content.read(BODY_PIECE)
                except Exception as exc:  # the client's body broke off: nothing is stored
                    raise _BodyError from exc
                if not piece:
                    return
                yield piece

        stored = await self.vault.put(path, body())
        generation = await self.vault.commit()
        _, new_etag = await self._current(path)
        headers = {**SAFE_HEADERS, "ETag": new_etag or "", "X-Sigmavault-Generation": str(generation)}
        if st is not None:
            return web.Response(status=204, headers=headers)
        doc = {"path": path, "size": stored.size, "generation": generation}
        return web.Response(status=201, text=json.dumps(doc) + "\n", content_type="application/json",
                            headers={**headers, "Location": request.rel_url.raw_path})

    async def delete(self, request: web.Request, parts: list[bytes]) -> web.StreamResponse:
        if not parts:
            raise UsageError("refusing to remove the root of the vault")
        path = show(parts)
        st, etag = await self._current(path)
        if st is None:
            raise NotFound(f"{path}: no such file or directory")
        if (refused := self._precondition(request, st, etag)) is not None:
            return refused
        if st.type == "dir" and await self.vault.ls(path):
            raise DirectoryNotEmpty(f"{path} is a directory that is not empty")
        await self.vault.rm(path)
        generation = await self.vault.commit()
        return web.Response(status=204, headers={**SAFE_HEADERS, "X-Sigmavault-Generation": str(generation)})


class _BodyError(Exception):
    """The request body could not be read to its end."""


GATEWAY = web.AppKey("sigmavault.gateway", Gateway)


def make_app(vault: Vault, *, read_only: bool = False, token: str | None = None,
             etag_key: bytes | None = None) -> web.Application:
    """An aiohttp application serving ``vault`` (see the package doc); the caller keeps owning the
    vault (opens it before, closes it after the app). ``token``: require ``Authorization: Bearer
    <token>``. ``etag_key``: the secret key of the entity tags (default: random per app, so tags
    change when the app restarts; pass a stored key of 32 random bytes to keep them)."""
    gateway = Gateway(vault, read_only=read_only, token=token, etag_key=etag_key)
    app = web.Application(middlewares=[gateway.guard])
    app[GATEWAY] = gateway
    app.router.add_route("*", "/{tail:.*}", gateway.handle)
    return app
