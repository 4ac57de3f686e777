"""The Azure Blob backend: block blobs in one container, over azure-storage-blob's aio client.

(Imports only leaf modules of the project.) URL ``az://container/prefix``; object
``c/00000000000000a1`` is the blob ``prefix/c/00000000000000a1`` (no prefix: ``c/…``). Blobs
under the prefix whose names are not valid object names are ignored by ``list``.

Wire mapping of the :class:`~sigmavault.backends.base.Backend` contract:

* ``put_if_absent`` → ``Put Blob`` with ``If-None-Match: *`` (``overwrite=False``). An existing
  blob answers ``409 BlobAlreadyExists`` — that one IS "exists" on Azure (CRYPTO.md §4.2), so
  ``False``; a ``412`` can only mean the same thing here, since ``*`` is the only condition sent.
  A create-only SAS (permission ``c`` without ``w``, a write-only client's: docs/writers.md) may
  not overwrite, so an existing blob answers ``403`` instead: ``UnauthorizedBlobOverwrite`` (Azure)
  is "exists"; ``AuthorizationPermissionMismatch`` (Azurite; also any SAS that may not create) is
  "exists" only if a listing (permission ``l``) shows the blob, else a BackendAuthError saying so.
* ``get`` → ``Get Blob`` with ``x-ms-range`` for a partial read; ``416`` (start at or past the
  end) is the clipped empty range; an empty requested range still checks that the blob exists.
* ``head`` → ``Get Blob Properties``; ``list`` → ``List Blobs`` by prefix (paged by the SDK);
  ``delete`` → ``Delete Blob`` (a missing blob is fine).

Immutability (``create --lock-days``, :class:`~.base.Retention`): every ``Put Blob`` carries
``x-ms-immutability-policy-until-date`` and ``-mode`` (``Unlocked`` for governance, ``Locked`` for
compliance). That needs a container with version-level immutability support, a management-plane
setting that :meth:`check_retention` reads; a delete the policy refuses (``409
BlobImmutableDueToPolicy``) raises :class:`ObjectLocked`. Azurite accepts the headers but
enforces nothing and has no such containers, so against it only the request shape is tested.

The connection — credentials, API version, the SDK's retry budget, error translation — is
:class:`~.azureclient.AzureClient`'s (see :mod:`.azureclient`); this module maps the object
operations onto it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError
from azure.storage.blob import ImmutabilityPolicy

from ..engine.errors import BackendAuthError, BackendError, ObjectLocked, UsageError
from .azureclient import _AUTH_CODES, _NETWORK_ERRORS, AzureClient, _error_code
from .azureclient import EMULATOR_API_VERSION as EMULATOR_API_VERSION
from .azureclient import parse_url as parse_url
from .base import LockingStore, Retention, check_name, check_prefix


class AzureBackend(AzureClient, LockingStore):
    """Blobs in an Azure container under an optional prefix. Create with :meth:`from_url`.

    The connection (credentials, client, error translation) is :class:`~.azureclient.AzureClient`'s;
    this class maps the Backend contract onto Blob requests. Construction does no I/O. Use one
    instance per event loop; call :meth:`aclose` when done.
    """

    __slots__ = ()

    # -- the Backend protocol --------------------------------------------------------------------

    async def put_if_absent(self, name: str, data: bytes | bytearray | memoryview) -> bool:
        key = self._key(name)
        body = data if isinstance(data, bytes) else bytes(data)
        client = await self._open()
        try:
            await client.get_blob_client(key).upload_blob(
                body, blob_type="BlockBlob", length=len(body), overwrite=False, max_concurrency=1,
                **self._lock_args(name),
            )
        except HttpResponseError as exc:
            code = _error_code(exc)
            if code == "BlobAlreadyExists" or (exc.status_code == 409 and not code):
                return False
            if exc.status_code == 412 and code in ("ConditionNotMet", ""):
                return False  # If-None-Match: * was the only condition: the blob exists
            if code == "UnauthorizedBlobOverwrite":
                return False  # a create-only SAS, refused only because the blob exists
            if code == "AuthorizationPermissionMismatch":
                if await self._listed(key):
                    return False  # a create-only SAS (Azurite's answer), and the blob is there
                raise BackendAuthError(
                    f"{self._where} refused to write {name} ({code}): these credentials may not create blobs, or "
                    "the blob exists and they may not overwrite it (a create-only SAS); a SAS that may also list "
                    "(permission l) lets the two be told apart"
                ) from exc
            self._raise(exc, "writing", name)
        except Exception as exc:
            self._raise(exc, "writing", name)
        return True

    async def get(self, name: str, start: int = 0, end: int | None = None) -> bytes:
        key = self._key(name)
        start = max(start, 0)
        if end is not None and end <= start:
            await self.head(name)  # an empty range of a missing blob is still NotFound
            return b""
        client = await self._open()
        length = None if end is None else end - start
        try:
            stream = await client.get_blob_client(key).download_blob(offset=start, length=length, max_concurrency=1)
            if length is None:
                return bytes(await stream.readall())
            out = bytearray()
            async for piece in stream.chunks():  # capped: stop at the asked length, whatever is sent
                out += piece[: length - len(out)]
                if len(out) >= length:
                    break
            return bytes(out)
        except HttpResponseError as exc:
            if exc.status_code == 416 or _error_code(exc) == "InvalidRange":
                return b""  # the range starts at or past the end: clipped to nothing
            self._raise(exc, "reading", name)
        except Exception as exc:
            self._raise(exc, "reading", name)

    async def _listed(self, key: str) -> bool:
        """Whether a listing shows the blob ``key`` (False if it does not, or if listing is refused too)."""
        client = await self._open()
        try:
            async for found in client.list_blob_names(name_starts_with=key):
                if found == key:
                    return True
        except (AzureError, *_NETWORK_ERRORS):
            return False  # the caller raises the refusal it already has
        return False

    async def head(self, name: str) -> int:
        key = self._key(name)
        client = await self._open()
        try:
            props = await client.get_blob_client(key).get_blob_properties()
        except Exception as exc:
            self._raise(exc, "reading", name)
        return int(props.size)

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        check_prefix(prefix)
        client = await self._open()
        skip = len(self._prefix)
        names = client.list_blob_names(name_starts_with=self._prefix + prefix).__aiter__()
        while True:
            with self._edge("listing", prefix or "objects"):
                try:
                    blob = await anext(names)
                except StopAsyncIteration:
                    return
            name = str(blob)[skip:]
            try:
                check_name(name)
            except UsageError:
                continue  # not ours: a foreign blob under the prefix
            yield name

    async def delete(self, name: str) -> None:
        key = self._key(name)
        client = await self._open()
        try:
            await client.get_blob_client(key).delete_blob()
        except HttpResponseError as exc:
            if exc.status_code == 404 and _error_code(exc) != "ContainerNotFound":
                return
            if _error_code(exc).startswith("BlobImmutable"):
                raise ObjectLocked(f"{name} is under its immutability policy at {self._where}") from exc
            self._raise(exc, "deleting", name)
        except Exception as exc:
            self._raise(exc, "deleting", name)

    # -- immutability (Lockable) ---------------------------------------------------------------------

    def _locked_put(self, r: Retention) -> dict[str, Any]:
        mode = "Locked" if r.mode == "compliance" else "Unlocked"
        return {"immutability_policy": ImmutabilityPolicy(expiry_time=r.until(), policy_mode=mode)}

    async def check_retention(self) -> None:
        client = await self._open()
        try:
            props = await client.get_container_properties()
        except Exception as exc:
            self._raise(exc, "checking", "the container's immutability support")
        if not getattr(props, "immutable_storage_with_versioning_enabled", False):
            raise BackendError(
                f"container {self._container!r} at {self._where} has no version-level immutability support, so "
                "--lock-days cannot protect anything: enable it on the container (Azure portal or CLI: "
                "az storage container-rm create --enable-vlw) and create the vault again"
            )

    async def ensure_bucket(self) -> bool:
        """Create the container if it does not exist; True if this call made it.

        An existing container is left alone (a SAS that may not create containers still works);
        credentials that may not create one raise BackendAuthError saying so.
        """
        client = await self._open()
        try:
            await client.get_container_properties()
            return False
        except HttpResponseError as exc:
            if exc.status_code != 404:
                self._raise(exc, "checking", "the container")
        except Exception as exc:
            self._raise(exc, "checking", "the container")
        try:
            await client.create_container()
        except HttpResponseError as exc:
            code = _error_code(exc)
            if code == "ContainerAlreadyExists" or (exc.status_code == 409 and not code):
                return False  # made by a concurrent call
            if code in _AUTH_CODES or exc.status_code in (401, 403):
                raise BackendAuthError(
                    f"{self._where} refused to create container {self._container!r} ({code or exc.status_code}): "
                    "these credentials may not create containers; create it another way, or use credentials "
                    "that may"
                ) from exc
            self._raise(exc, "creating", "the container")
        except Exception as exc:
            self._raise(exc, "creating", "the container")
        return True

