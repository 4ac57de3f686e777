"""The S3 backend: objects in an S3-compatible bucket, over aiobotocore (imports only leaf modules).

URL ``s3://bucket/prefix``; object ``c/00000000000000a1`` is stored at key
``prefix/c/00000000000000a1`` (no prefix: at ``c/00000000000000a1``). Keys under the prefix that
are not valid object names are ignored by ``list``.

Wire mapping of the :class:`~sigmavault.backends.base.Backend` contract:

* ``put_if_absent`` → ``PutObject`` with ``If-None-Match: *``. ``412 PreconditionFailed`` means
  the object exists (``False``). ``409 ConditionalRequestConflict`` means a concurrent conditional
  write on the same key was in flight: it is NOT "exists" (CRYPTO.md §4.2), so the request is
  retried a few times with jittered backoff, then :class:`BackendUnavailable`.
* ``get`` → ``GetObject`` with ``Range: bytes=start-(end-1)`` (no header for the whole object).
  ``416`` (start at or past the end) is the clipped empty range; an empty requested range still
  checks that the object exists. A server that ignores ``Range`` (200) is sliced locally.
* ``head`` → ``HeadObject``; ``list`` → paginated ``ListObjectsV2``; ``delete`` → ``DeleteObject``.

Endpoint: the ``endpoint_url`` argument, else ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, else
AWS. Credentials and region come from the standard AWS chain (environment, ``AWS_PROFILE``,
config files, instance metadata); a secret never passes through this module. The connection pool
holds at least ``concurrency`` connections; botocore's own retries ("standard" mode, jittered) are
kept to ``max_attempts`` in total so a dead endpoint fails within seconds, not minutes — further
retrying is the job of the retrying wrapper. Until the endpoint has answered once, a refused,
unresolvable or timed-out connection is not retried (botocore's retry is vetoed) and raises
:class:`EndpointUnreachable`, which the retrying wrapper passes through: a wrong endpoint fails in
under a second. After a first answer it is an ordinary, retried :class:`BackendUnavailable`.
``ensure_bucket()`` creates a missing bucket (``create --create-bucket``).

Every provider error is translated here and chained (``raise ... from exc``): missing bucket →
:class:`BackendError` naming it; rejected or missing credentials → :class:`BackendAuthError`;
connection failures, timeouts, 5xx, ``SlowDown`` → :class:`BackendUnavailable` naming the
endpoint (:class:`EndpointUnreachable` before the first answer); a missing object →
:class:`NotFound`. Cancelling an operation cancels its request; a cancelled ``put_if_absent`` may
or may not have created the object.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any, NoReturn
from urllib.parse import parse_qsl, urlsplit

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore import exceptions as bce

from ..engine.errors import (
    BackendAuthError,
    BackendError,
    BackendUnavailable,
    EndpointUnreachable,
    NotFound,
    UsageError,
)
from .base import Properties, check_name, check_prefix, is_valid_name

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX = re.compile(r"[A-Za-z0-9._!~()=+-]+(?:/[A-Za-z0-9._!~()=+-]+)*")
_AUTH_CODES = frozenset({
    "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
    "TokenRefreshRequired", "AuthorizationHeaderMalformed", "InvalidSecurity", "AllAccessDisabled",
    "AccountProblem", "NotSignedUp", "MissingSecurityHeader",
})
_TRANSIENT_CODES = frozenset({
    "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeTooSkewed",
    "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests", "OperationAborted",
    "ConditionalRequestConflict",
})
_CREDENTIAL_ERRORS = (
    bce.NoCredentialsError, bce.PartialCredentialsError, bce.CredentialRetrievalError, bce.TokenRetrievalError,
    bce.SSOError,
)
_NETWORK_ERRORS = (
    bce.ConnectionError, bce.HTTPClientError, bce.IncompleteReadError, aiohttp.ClientError, OSError,
)
#: failures to connect at all: before the endpoint has answered once, these are not retried
_UNREACHABLE = (bce.EndpointConnectionError, bce.ConnectTimeoutError)
#: how often a 409 ConditionalRequestConflict is retried inside put_if_absent
CONFLICT_RETRIES = 5


def _code_status(exc: bce.ClientError) -> tuple[str, int]:
    response: dict[str, Any] = exc.response
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


def parse_url(url: str) -> tuple[str, str, dict[str, str]]:
    """Split ``s3://bucket/prefix?opt=v`` into (bucket, prefix without slashes, options).

    Options (all optional): ``endpoint`` (URL), ``region``, ``path_style`` (``true``/``false``).
    Raises UsageError if the URL is malformed or names an unknown option.
    """
    parts = urlsplit(url)
    if parts.scheme != "s3" or parts.fragment or not _BUCKET.fullmatch(parts.netloc):
        raise UsageError(f"invalid S3 URL {url!r}: expected s3://bucket/optional/prefix")
    prefix = parts.path.strip("/")
    if prefix and (not _PREFIX.fullmatch(prefix) or any(p in (".", "..") for p in prefix.split("/"))):
        raise UsageError(f"invalid prefix {prefix!r} in S3 URL {url!r}")
    try:
        options = dict(parse_qsl(parts.query, strict_parsing=bool(parts.query)))
    except ValueError:
        raise UsageError(f"invalid options in S3 URL {url!r}") from None
    unknown = sorted(set(options) - {"endpoint", "region", "path_style"})
    if unknown or options.get("path_style", "false") not in ("true", "false"):
        raise UsageError(f"invalid options in S3 URL {url!r}: use endpoint=, region=, path_style=true|false")
    return parts.netloc, prefix, options


async def _read_capped(stream: Any, cap: int | None) -> bytes:
    """The body, but at most ``cap`` bytes of it: the rest is never downloaded (the connection closes)."""
    if cap is None:
        return bytes(await stream.read())
    parts: list[bytes] = []
    have = 0
    while have < cap:
        piece = await stream.read(min(cap - have, 1 << 20))
        if not piece:
            break
        parts.append(piece)
        have += len(piece)
    return b"".join(parts)


class S3Backend:
    """Objects in an S3 bucket under an optional key prefix. Create with :meth:`from_url`.

    The aiobotocore client is created on first use inside the running event loop, so
    construction does no I/O. Use one instance per event loop; call :meth:`aclose` when done.
    """

    __slots__ = (
        "_answered",
        "_bucket",
        "_bucket_seen",
        "_client",
        "_closed",
        "_config",
        "_endpoint",
        "_lock",
        "_prefix",
        "_profile",
        "_properties",
        "_region",
        "_stack",
    )

    def __init__(
        self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None, region: str | None = None,
        path_style: bool = False, concurrency: int = 16, profile: str | None = None,
        connect_timeout: float = 5.0, read_timeout: float = 60.0, max_attempts: int = 3,
    ) -> None:
        if not _BUCKET.fullmatch(bucket):
            raise UsageError(f"invalid S3 bucket name {bucket!r}")
        if concurrency < 1 or max_attempts < 1:
            raise UsageError("concurrency and max_attempts must be at least 1")
        self._bucket = bucket
        self._prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        self._region = region
        self._profile = profile
        self._properties = Properties(concurrency=concurrency, atomic_create=True, persistent=True)
        self._config = AioConfig(
            region_name=region,
            s3={"addressing_style": "path" if path_style else "auto"},
            max_pool_connections=max(concurrency, 10),
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            # integrity is the AEAD's job; skip CRC32 over every body on both sides
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            user_agent_extra="sigmavault",
        )
        self._lock = asyncio.Lock()
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None
        self._closed = False
        self._bucket_seen = False
        self._answered = False  # has the endpoint ever answered (any HTTP response)?

    @classmethod
    def from_url(
        cls, url: str, *, endpoint_url: str | None = None, region: str | None = None, path_style: bool = False,
        concurrency: int = 16, profile: str | None = None, connect_timeout: float = 5.0,
        read_timeout: float = 60.0, max_attempts: int = 3,
    ) -> S3Backend:
        """A backend for ``s3://bucket/prefix`` (UsageError if the URL is malformed). No I/O.

        Keyword arguments win over the URL's options (``?endpoint=…&region=…&path_style=true``).
        """
        bucket, prefix, options = parse_url(url)
        return cls(
            bucket, prefix, endpoint_url=endpoint_url or options.get("endpoint"),
            region=region or options.get("region"),
            path_style=path_style or options.get("path_style") == "true",
            concurrency=concurrency, profile=profile, connect_timeout=connect_timeout,
            read_timeout=read_timeout, max_attempts=max_attempts,
        )

    @property
    def description(self) -> str:
        """The full location: bucket and prefix, and the endpoint when it is not AWS's (this device's
        state for a vault is keyed by it, so two services with the same bucket name never share it)."""
        where = f"s3://{self._bucket}/{self._prefix}".rstrip("/")
        return f"{where}?endpoint={self._endpoint}" if self._endpoint else where

    @property
    def properties(self) -> Properties:
        return self._properties

    @property
    def _where(self) -> str:
        return self._endpoint or "AWS S3"

    # -- the Backend protocol --------------------------------------------------------------------

    async def put_if_absent(self, name: str, data: bytes | bytearray | memoryview) -> bool:
        key = self._key(name)
        body = bytes(data) if isinstance(data, memoryview) else data
        client = await self._open()
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                await client.put_object(Bucket=self._bucket, Key=key, Body=body, IfNoneMatch="*")
            except bce.ClientError as exc:
                code, status = _code_status(exc)
                if status == 412 or code == "PreconditionFailed":
                    self._bucket_seen = True
                    return False
                if (status == 409 or code == "ConditionalRequestConflict") and attempt < CONFLICT_RETRIES:
                    # another conditional write on this key is in flight: ask again shortly
                    await asyncio.sleep(0.02 * 2**attempt * (1 + secrets.randbelow(1000) / 1000))
                    continue
                self._raise(exc, "writing", name)
            except Exception as exc:
                self._raise(exc, "writing", name)
            self._bucket_seen = True
            return True
        raise AssertionError("unreachable")  # pragma: no cover

    async def get(self, name: str, start: int = 0, end: int | None = None) -> bytes:
        key = self._key(name)
        start = max(start, 0)
        if end is not None and end <= start:
            await self.head(name)  # an empty range of a missing object is still NotFound
            return b""
        ranged = start > 0 or end is not None
        client = await self._open()
        extra = {"Range": f"bytes={start}-{'' if end is None else end - 1}"} if ranged else {}
        try:
            response = await client.get_object(Bucket=self._bucket, Key=key, **extra)
            # never more than asked for, even from a server that ignores Range or pads its answer
            cap = None if end is None else end if response["ResponseMetadata"]["HTTPStatusCode"] == 200 else end - start
            async with response["Body"] as stream:
                data = await _read_capped(stream, cap)
        except bce.ClientError as exc:
            code, status = _code_status(exc)
            if status == 416 or code == "InvalidRange":
                self._bucket_seen = True
                return b""  # the range starts at or past the end: clipped to nothing
            self._raise(exc, "reading", name)
        except Exception as exc:
            self._raise(exc, "reading", name)
        self._bucket_seen = True
        if ranged and response["ResponseMetadata"]["HTTPStatusCode"] == 200:
            return data[start:end]  # the server ignored Range and sent the object from its start
        return data

    async def head(self, name: str) -> int:
        key = self._key(name)
        client = await self._open()
        try:
            response = await client.head_object(Bucket=self._bucket, Key=key)
        except Exception as exc:
            if isinstance(exc, bce.ClientError) and _code_status(exc)[1] == 404 and not self._bucket_seen:
                await self._check_bucket()  # a HEAD 404 has no body: was it the bucket?
            self._raise(exc, "reading", name)
        self._bucket_seen = True
        return int(response["ContentLength"])

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        check_prefix(prefix)
        client = await self._open()
        skip = len(self._prefix)
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=self._prefix + prefix
        ).__aiter__()
        while True:
            with self._edge("listing", prefix or "objects"):
                try:
                    page = await anext(pages)
                except StopAsyncIteration:
                    return
            self._bucket_seen = True
            for entry in page.get("Contents", ()):
                name = str(entry["Key"])[skip:]
                if is_valid_name(name):
                    yield name

    async def delete(self, name: str) -> None:
        key = self._key(name)
        client = await self._open()
        try:
            await client.delete_object(Bucket=self._bucket, Key=key)
        except bce.ClientError as exc:
            code, status = _code_status(exc)
            if code != "NoSuchBucket" and (status == 404 or code == "NoSuchKey"):
                return
            self._raise(exc, "deleting", name)
        except Exception as exc:
            self._raise(exc, "deleting", name)

    async def ensure_bucket(self) -> bool:
        """Create the bucket (in the client's region) if it is missing; True if this call made it.

        An existing bucket is left alone: credentials that may not create buckets still work.
        """
        client = await self._open()
        try:
            await client.head_bucket(Bucket=self._bucket)
            self._bucket_seen = True
            return False
        except bce.ClientError as exc:
            if _code_status(exc)[1] != 404:
                self._raise(exc, "checking", "the bucket")
        except Exception as exc:
            self._raise(exc, "checking", "the bucket")
        region = client.meta.region_name
        where = {} if region in (None, "us-east-1") else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        try:
            await client.create_bucket(Bucket=self._bucket, **where)
        except bce.ClientError as exc:
            code, status = _code_status(exc)
            if code == "BucketAlreadyOwnedByYou":
                return False  # made by a concurrent call of ours
            if code == "BucketAlreadyExists":
                raise BackendError(
                    f"cannot create bucket {self._bucket!r} at {self._where}: the name is taken by another "
                    "account (bucket names are global); choose another name"
                ) from exc
            if code in _AUTH_CODES or status in (401, 403):
                raise BackendAuthError(
                    f"{self._where} refused to create bucket {self._bucket!r} ({code or status}): these "
                    "credentials may not create buckets; create it another way, or use credentials that may"
                ) from exc
            self._raise(exc, "creating", "the bucket")
        except Exception as exc:
            self._raise(exc, "creating", "the bucket")
        self._bucket_seen = True
        return True

    async def aclose(self) -> None:
        """Close the connection pool. Idempotent; the backend cannot be used afterwards."""
        self._closed = True
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            with contextlib.suppress(Exception):  # closing a pool whose server vanished is fine
                await stack.aclose()

    # -- internals -------------------------------------------------------------------------------

    def _key(self, name: str) -> str:
        return self._prefix + check_name(name)

    async def _open(self) -> Any:
        """The client, created on first use (in the running loop) under a lock."""
        if self._closed:
            raise UsageError(f"the backend {self.description} is closed")
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                session = get_session()
                if self._profile is not None:
                    session.set_config_variable("profile", self._profile)
                stack = contextlib.AsyncExitStack()
                with self._edge("connecting", "the bucket"):
                    client = await stack.enter_async_context(
                        session.create_client("s3", endpoint_url=self._endpoint, config=self._config)
                    )
                # first in line, so its False ("do not retry") wins over botocore's retry handler
                client.meta.events.register_first("needs-retry.s3", self._needs_retry)
                self._stack, self._client = stack, client
            return self._client

    def _needs_retry(self, response: Any = None, caught_exception: Any = None, **_: Any) -> bool | None:
        """botocore's retry hook: note the first answer; veto retries while nothing has answered."""
        if response is not None:
            self._answered = True
            return None
        if isinstance(caught_exception, _UNREACHABLE) and not self._answered:
            return False
        return None  # botocore's own rules decide

    async def _check_bucket(self) -> None:
        """Raise the missing-bucket error if the bucket does not exist (else return)."""
        try:
            await self._client.head_bucket(Bucket=self._bucket)
        except bce.ClientError as exc:
            if _code_status(exc)[1] == 404:
                raise self._missing_bucket() from exc
            return
        except Exception:
            return
        self._bucket_seen = True

    def _missing_bucket(self) -> BackendError:
        return BackendError(
            f"bucket {self._bucket!r} does not exist at {self._where}: check the bucket name in "
            f"{self.description}, the endpoint URL and the region (AWS_REGION), or create the bucket "
            "(`sigmavault create --create-bucket` does)"
        )

    @contextlib.contextmanager
    def _edge(self, action: str, name: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            self._raise(exc, action, name)

    def _raise(self, exc: Exception, action: str, name: str) -> NoReturn:
        """Raise ``exc`` translated into the project's error tree (chained to it)."""
        if isinstance(exc, bce.ClientError):
            self._answered = True
            raise self._client_error(exc, action, name) from exc
        if isinstance(exc, _CREDENTIAL_ERRORS):
            raise BackendAuthError(
                f"no usable AWS credentials for {self.description}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE to a profile in ~/.aws/credentials"
            ) from exc
        if isinstance(exc, bce.NoRegionError):
            raise UsageError(f"no region for {self.description}: set AWS_REGION or pass a region") from exc
        if isinstance(exc, _UNREACHABLE) and not (self._answered or self._bucket_seen):
            raise EndpointUnreachable(
                f"nothing answers at the S3 endpoint {self._where} ({type(exc).__name__}): check the "
                "endpoint URL (?endpoint= in the vault URL, or AWS_ENDPOINT_URL) and that the server is running"
            ) from exc
        if isinstance(exc, _NETWORK_ERRORS):
            reason = type(exc).__name__
            raise BackendUnavailable(
                f"cannot reach the S3 endpoint {self._where} while {action} {name} ({reason}): "
                "check the endpoint URL and the network, then retry"
            ) from exc
        if isinstance(exc, bce.BotoCoreError):
            raise BackendError(f"S3 request failed while {action} {name} in {self.description}: {exc}") from exc
        raise exc

    def _client_error(self, exc: bce.ClientError, action: str, name: str) -> BackendError | NotFound:
        code, status = _code_status(exc)
        if code == "NoSuchBucket":
            return self._missing_bucket()
        if status == 404 or code in ("NoSuchKey", "NotFound"):
            return NotFound(f"object {name} not found in {self.description}")
        if code in _AUTH_CODES or status in (401, 403):
            return BackendAuthError(
                f"{self._where} rejected the credentials while {action} {name} ({code or status}): check "
                f"AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and that they may access "
                f"bucket {self._bucket!r}"
            )
        if code in _TRANSIENT_CODES or status >= 500 or status == 429:
            return BackendUnavailable(
                f"the S3 endpoint {self._where} is unavailable while {action} {name} "
                f"({code or 'HTTP ' + str(status)}): retry later"
            )
        return BackendError(f"S3 refused {action} {name} in {self.description}: {code} (HTTP {status})")

