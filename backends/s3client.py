"""The S3 backend's connection: URL parsing, the aiobotocore client and its settings, error translation.

:class:`S3Client` is the half of :class:`~.s3.S3Backend` that is not about objects: it builds the
client on first use (inside the running loop) with the connection pool, timeouts and botocore's
retry budget, vetoes botocore's retries while the endpoint has never answered, and translates
every provider failure into the project's error tree (``raise ... from exc``). :mod:`.s3` puts
the object operations of the Backend contract on top; its docstring describes the wire mapping.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Iterator
from typing import Any, NoReturn, Self

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
from .base import Properties, Retention, check_name, split_url

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
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
    bucket, prefix, options = split_url(url, "s3", "S3", _BUCKET, "s3://bucket/optional/prefix")
    unknown = sorted(set(options) - {"endpoint", "region", "path_style"})
    if unknown or options.get("path_style", "false") not in ("true", "false"):
        raise UsageError(f"invalid options in S3 URL {url!r}: use endpoint=, region=, path_style=true|false")
    return bucket, prefix, options


class S3Client:
    """The connection to one bucket (and key prefix): the client, its settings and error translation.

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
        "_retention",
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
        self._retention: Retention | None = None  # every put locked this long (S3 Object Lock)

    @classmethod
    def from_url(
        cls, url: str, *, endpoint_url: str | None = None, region: str | None = None, path_style: bool = False,
        concurrency: int = 16, profile: str | None = None, connect_timeout: float = 5.0,
        read_timeout: float = 60.0, max_attempts: int = 3,
    ) -> Self:
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

