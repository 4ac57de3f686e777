"""The Azure backend's connection: URL parsing, credentials, the aio client and its settings, error translation.

:class:`AzureClient` is the half of :class:`~.azure.AzureBackend` that is not about blobs: it
resolves the credentials, builds the container client on first use (inside the running loop)
and translates every provider failure into the project's error tree. :mod:`.azure` puts the
object operations of the Backend contract on top.

Credentials, first match wins (arguments before environment; read at construction, used at the
first request): a connection string (``AZURE_STORAGE_CONNECTION_STRING``); an account name and
key (``AZURE_STORAGE_ACCOUNT`` / ``AZURE_STORAGE_KEY``); a SAS token
(``AZURE_STORAGE_SAS_TOKEN``, with ``AZURE_STORAGE_ACCOUNT`` or an endpoint). None of them →
:class:`BackendAuthError` on first use. The account URL is ``endpoint_url`` (or the URL's
``?endpoint=``), else ``https://<account>.blob.core.windows.net``.

API version: the argument, else ``AZURE_STORAGE_API_VERSION``, else :data:`EMULATOR_API_VERSION`
for a local endpoint (Azurite 3.35 refuses the SDK's newer default unless started with
``--skipApiVersionCheck``), else the SDK's default for the real service.

Retries inside the SDK are capped at ``max_attempts`` with short backoff (its default waits 15 s
and more), so a dead endpoint fails within seconds; further retrying is the retrying wrapper's
job. Until the endpoint has answered once (any HTTP response, noted by the transport), a failed
connection raises :class:`EndpointUnreachable`, which the retrying wrapper does not retry: a
wrong account URL or a stopped emulator fails in about a second. ``ensure_bucket()`` creates the
container if it does not exist (``create --create-bucket``).

Every provider error is translated here and chained: missing container →
:class:`BackendError` naming it; rejected credentials → :class:`BackendAuthError`; connection
failures, timeouts, 5xx, ``ServerBusy`` → :class:`BackendUnavailable` naming the endpoint; a
missing blob → :class:`NotFound`. Messages carry error codes only, never a URL (a SAS token
would ride in it) or a key.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, Self
from urllib.parse import urlsplit

import aiohttp
from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.transport import AioHttpTransport
from azure.storage.blob.aio import ContainerClient, ExponentialRetry

from ..engine.errors import (
    BackendAuthError,
    BackendError,
    BackendUnavailable,
    EndpointUnreachable,
    NotFound,
    UsageError,
)
from .base import Properties, Retention, check_name, split_url

#: the newest Blob API version Azurite 3.35 accepts without --skipApiVersionCheck
EMULATOR_API_VERSION = "2025-11-05"

_CONTAINER = re.compile(r"(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*")
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1", "azurite")
_AUTH_CODES = frozenset({
    "AuthenticationFailed", "AuthorizationFailure", "AuthorizationPermissionMismatch",
    "AuthorizationProtocolMismatch", "AuthorizationResourceTypeMismatch", "AuthorizationServiceMismatch",
    "AuthorizationSourceIPMismatch", "InsufficientAccountPermissions", "InvalidAuthenticationInfo",
    "NoAuthenticationInformation", "AccountIsDisabled",
})
_TRANSIENT_CODES = frozenset({"ServerBusy", "OperationTimedOut", "InternalError", "IngressOverAccountLimit"})
_NETWORK_ERRORS = (ServiceRequestError, ServiceResponseError, aiohttp.ClientError, OSError)
_CREDENTIAL_HINT = (
    "check AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY, "
    "or that AZURE_STORAGE_SAS_TOKEN is valid, unexpired and grants read/write/list/delete"
)


def parse_url(url: str) -> tuple[str, str, dict[str, str]]:
    """Split ``az://container/prefix?opt=v`` into (container, prefix without slashes, options).

    Options (all optional): ``endpoint`` (the account URL) and ``api_version``. Raises
    UsageError if the URL is malformed or names an unknown option.
    """
    container, prefix, options = split_url(url, "az", "Azure", _CONTAINER, "az://container/optional/prefix")
    if set(options) - {"endpoint", "api_version"}:
        raise UsageError(f"invalid options in Azure URL {url!r}: use endpoint= and api_version=")
    return container, prefix, options


class _QuickRetry(ExponentialRetry):
    """The SDK's retry rules with short, jittered waits: 0.1–0.2 s, then 0.2–0.4 s, … at most 2 s.

    The SDK's default waits 15 s and more between tries, which turns a dead endpoint into a hang.
    """

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        base: float = min(0.1 * 2 ** max(int(settings["count"]) - 1, 0), 2.0)
        return base * (1 + secrets.randbelow(1000) / 1000)


class _NotingTransport(AioHttpTransport):  # type: ignore[misc]  # the SDK exports it untyped
    """The SDK's aiohttp transport, telling the backend when the endpoint first answers."""

    def __init__(self, on_answer: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_answer = on_answer

    async def send(self, request: Any, **config: Any) -> Any:
        response = await super().send(request, **config)
        self._on_answer()  # any HTTP response, even an error, proves the endpoint is there
        return response


def _conn_endpoint(conn_str: str | None) -> str | None:
    """The blob endpoint (or account name) a connection string names; never its key or token."""
    if not conn_str:
        return None
    fields = dict(part.split("=", 1) for part in conn_str.split(";") if "=" in part)
    return fields.get("BlobEndpoint", "").rstrip("/") or fields.get("AccountName") or None


def _error_code(exc: HttpResponseError) -> str:
    code = getattr(exc, "error_code", None)  # set by the storage SDK from x-ms-error-code
    return str(getattr(code, "value", code) or "")


class AzureClient:
    """The connection to one container (and prefix): credentials, the client, error translation.

    The aio client is created on first use inside the running event loop, so construction does
    no I/O. Use one instance per event loop; call :meth:`aclose` when done.
    """

    __slots__ = (
        "_account_url", "_answered", "_api_version", "_client", "_closed", "_conn_str", "_container", "_credential",
        "_lock", "_max_attempts", "_prefix", "_properties", "_retention", "_timeouts",
    )

    def __init__(
        self, container: str, prefix: str = "", *, endpoint_url: str | None = None,
        connection_string: str | None = None, account_name: str | None = None, account_key: str | None = None,
        sas_token: str | None = None, api_version: str | None = None, concurrency: int = 16,
        connect_timeout: float = 5.0, read_timeout: float = 60.0, max_attempts: int = 3,
    ) -> None:
        if not _CONTAINER.fullmatch(container):
            raise UsageError(f"invalid Azure container name {container!r}")
        if concurrency < 1 or max_attempts < 1:
            raise UsageError("concurrency and max_attempts must be at least 1")
        self._container = container
        self._prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._properties = Properties(concurrency=concurrency, atomic_create=True, persistent=True)
        self._timeouts = {"connection_timeout": connect_timeout, "read_timeout": read_timeout}
        self._max_attempts = max_attempts
        self._conn_str: str | None = None
        self._credential: AzureNamedKeyCredential | AzureSasCredential | None = None
        explicit = connection_string is not None or account_key is not None or sas_token is not None
        env = {} if explicit else os.environ
        account = account_name or os.environ.get("AZURE_STORAGE_ACCOUNT")
        key = account_key or env.get("AZURE_STORAGE_KEY")
        sas = sas_token or env.get("AZURE_STORAGE_SAS_TOKEN")
        self._conn_str = connection_string or env.get("AZURE_STORAGE_CONNECTION_STRING")
        if self._conn_str is not None:
            if endpoint_url is not None:
                raise UsageError("give either a connection string or an endpoint URL for Azure, not both")
        else:
            if account and key:
                self._credential = AzureNamedKeyCredential(account, key)
            elif sas:
                self._credential = AzureSasCredential(sas.lstrip("?"))
            if endpoint_url is None and account:
                endpoint_url = f"https://{account}.blob.core.windows.net"
        self._account_url = endpoint_url.rstrip("/") if endpoint_url else None
        self._api_version = api_version or os.environ.get("AZURE_STORAGE_API_VERSION") or self._emulator_version()
        self._lock = asyncio.Lock()
        self._client: ContainerClient | None = None
        self._closed = False
        self._answered = False  # has the endpoint ever answered (any HTTP response)?
        self._retention: Retention | None = None  # every put locked this long (immutability policy)

    @classmethod
    def from_url(
        cls, url: str, *, endpoint_url: str | None = None, connection_string: str | None = None,
        account_name: str | None = None, account_key: str | None = None, sas_token: str | None = None,
        api_version: str | None = None, concurrency: int = 16, connect_timeout: float = 5.0,
        read_timeout: float = 60.0, max_attempts: int = 3,
    ) -> Self:
        """A backend for ``az://container/prefix`` (UsageError if the URL is malformed). No I/O.

        Keyword arguments win over the URL's options (``?endpoint=…&api_version=…``).
        """
        container, prefix, options = parse_url(url)
        return cls(
            container, prefix, endpoint_url=endpoint_url or options.get("endpoint"),
            connection_string=connection_string, account_name=account_name, account_key=account_key,
            sas_token=sas_token, api_version=api_version or options.get("api_version"), concurrency=concurrency,
            connect_timeout=connect_timeout, read_timeout=read_timeout, max_attempts=max_attempts,
        )

    @property
    def description(self) -> str:
        """The full location: container and prefix, and the account's endpoint (this device's state for
        a vault is keyed by it, so two accounts with the same container name never share it)."""
        where = f"az://{self._container}/{self._prefix}".rstrip("/")
        account = self._account_url or _conn_endpoint(self._conn_str)
        return f"{where}?endpoint={account}" if account else where

    @property
    def properties(self) -> Properties:
        return self._properties

    @property
    def _where(self) -> str:
        if self._client is not None:
            return f"{self._client.scheme}://{self._client.primary_hostname}"
        return self._account_url or "Azure Blob Storage"

    async def aclose(self) -> None:
        """Close the connection pool. Idempotent; the backend cannot be used afterwards."""
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # closing a pool whose server vanished is fine
                await client.close()

    # -- internals -------------------------------------------------------------------------------

    def _key(self, name: str) -> str:
        return self._prefix + check_name(name)

    def _emulator_version(self) -> str | None:
        if self._conn_str is not None:
            text = self._conn_str.lower()
            local = "usedevelopmentstorage=true" in text or "devstoreaccount1" in text
            local = local or any(f"//{h}" in text for h in _LOCAL_HOSTS)
        else:
            local = (urlsplit(self._account_url or "").hostname or "") in _LOCAL_HOSTS
        return EMULATOR_API_VERSION if local else None

    async def _open(self) -> ContainerClient:
        """The client, created on first use (in the running loop) under a lock."""
        if self._closed:
            raise UsageError(f"the backend {self.description} is closed")
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> ContainerClient:
        options: dict[str, Any] = {
            **self._timeouts,
            "retry_policy": _QuickRetry(retry_total=self._max_attempts - 1),
            "transport": _NotingTransport(self._note_answer, **self._timeouts),
        }
        if self._api_version is not None:
            options["api_version"] = self._api_version
        try:
            if self._conn_str is not None:
                return ContainerClient.from_connection_string(self._conn_str, self._container, **options)
            if self._credential is None or self._account_url is None:
                raise BackendAuthError(f"no Azure credentials for {self.description}: {_CREDENTIAL_HINT}")
            return ContainerClient(self._account_url, self._container, credential=self._credential, **options)
        except ValueError as exc:  # the SDK's word for a malformed connection string or URL
            raise UsageError(f"invalid Azure connection string or account URL for {self.description}") from exc

    def _note_answer(self) -> None:
        self._answered = True

    def _missing_container(self) -> BackendError:
        return BackendError(
            f"container {self._container!r} does not exist at {self._where}: check the container name in "
            f"{self.description} and the account, or create the container (`sigmavault create --create-bucket` does)"
        )

    @contextlib.contextmanager
    def _edge(self, action: str, name: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            self._raise(exc, action, name)

    def _raise(self, exc: Exception, action: str, name: str) -> NoReturn:
        """Raise ``exc`` translated into the project's error tree (chained to it)."""
        if isinstance(exc, HttpResponseError) and exc.status_code is not None:
            raise self._http_error(exc, action, name) from exc
        if isinstance(exc, ClientAuthenticationError):
            raise BackendAuthError(f"{self._where} rejected the credentials: {_CREDENTIAL_HINT}") from exc
        if isinstance(exc, ServiceRequestError) and not self._answered:  # no request got through, ever
            raise EndpointUnreachable(
                f"nothing answers at the Azure endpoint {self._where} ({type(exc).__name__}): check the "
                "account URL (AZURE_STORAGE_CONNECTION_STRING or ?endpoint=) and that the server is running"
            ) from exc
        if isinstance(exc, _NETWORK_ERRORS):
            raise BackendUnavailable(
                f"cannot reach the Azure endpoint {self._where} while {action} {name} ({type(exc).__name__}): "
                "check the account URL and the network, then retry"
            ) from exc
        if isinstance(exc, AzureError):
            raise BackendError(
                f"Azure request failed while {action} {name} in {self.description} ({type(exc).__name__})"
            ) from exc
        raise exc

    def _http_error(self, exc: HttpResponseError, action: str, name: str) -> BackendError | NotFound:
        code, status = _error_code(exc), int(exc.status_code or 0)
        if code == "ContainerNotFound":
            return self._missing_container()
        if status == 404:
            return NotFound(f"object {name} not found in {self.description}")
        if code in _AUTH_CODES or status in (401, 403):
            return BackendAuthError(
                f"{self._where} rejected the credentials while {action} {name} ({code or status}): "
                f"{_CREDENTIAL_HINT}, for container {self._container!r}"
            )
        if code in _TRANSIENT_CODES or status >= 500 or status in (408, 429):
            return BackendUnavailable(
                f"the Azure endpoint {self._where} is unavailable while {action} {name} "
                f"({code or 'HTTP ' + str(status)}): retry later"
            )
        return BackendError(f"Azure refused {action} {name} in {self.description}: {code} (HTTP {status})")
