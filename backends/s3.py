"""The S3 backend: objects in an S3-compatible bucket, over aiobotocore (imports only leaf modules).

This module maps the object operations; :mod:`.s3client` holds the connection (client settings,
retry veto, error translation) it builds on.

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

Object Lock (``create --lock-days``, :class:`~.base.Retention`): every ``PutObject`` carries
``x-amz-object-lock-mode`` (GOVERNANCE or COMPLIANCE) and ``-retain-until-date`` with a CRC32
checksum (S3 requires one on locked puts). The bucket must have Object Lock on (``ensure_bucket``
creates it so; :meth:`check_retention` says what to do otherwise), which also versions it: a
``delete`` then removes every version of the key (else nothing would be freed) and a version
still under its lock is refused with :class:`ObjectLocked`.

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
import secrets
from collections.abc import AsyncIterator
from typing import Any

from botocore import exceptions as bce

from ..engine.errors import BackendAuthError, BackendError, ObjectLocked
from .base import LockingStore, Retention, check_prefix, is_valid_name
from .s3client import _AUTH_CODES, S3Client, _code_status
from .s3client import parse_url as parse_url

#: how often a 409 ConditionalRequestConflict is retried inside put_if_absent
CONFLICT_RETRIES = 5


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


class S3Backend(S3Client, LockingStore):
    """Objects in an S3 bucket under an optional key prefix. Create with :meth:`from_url`.

    The connection (client, settings, error translation) is :class:`~.s3client.S3Client`'s;
    this class maps the Backend contract onto S3 requests. Construction does no I/O. Use one
    instance per event loop; call :meth:`aclose` when done.
    """

    __slots__ = ()

    # -- the Backend protocol --------------------------------------------------------------------

    async def put_if_absent(self, name: str, data: bytes | bytearray | memoryview) -> bool:
        key = self._key(name)
        body = bytes(data) if isinstance(data, memoryview) else data
        client = await self._open()
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                await client.put_object(Bucket=self._bucket, Key=key, Body=body, IfNoneMatch="*",
                                        **self._lock_args(name))
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
        versions: list[dict[str, str]] = [{}]
        if self._retention is not None:  # a versioned bucket: the object is gone when its versions are
            with self._edge("listing", name):
                found = await client.list_object_versions(Bucket=self._bucket, Prefix=key)
            versions = [{"VersionId": str(v["VersionId"])} for part in ("Versions", "DeleteMarkers")
                        for v in found.get(part, ()) if v["Key"] == key]
        for version in versions:
            try:
                await client.delete_object(Bucket=self._bucket, Key=key, **version)
            except bce.ClientError as exc:
                code, status = _code_status(exc)
                if code != "NoSuchBucket" and (status == 404 or code == "NoSuchKey"):
                    continue
                if self._retention is not None and (code == "AccessDenied" or status == 403):
                    raise ObjectLocked(f"{name} is under its retention lock at {self._where}") from exc
                self._raise(exc, "deleting", name)
            except Exception as exc:
                self._raise(exc, "deleting", name)

    # -- Object Lock (Lockable) ---------------------------------------------------------------------

    def _locked_put(self, r: Retention) -> dict[str, Any]:
        return {"ObjectLockMode": r.mode.upper(), "ObjectLockRetainUntilDate": r.until(), "ChecksumAlgorithm": "CRC32"}

    async def check_retention(self) -> None:
        client = await self._open()
        try:
            conf = await client.get_object_lock_configuration(Bucket=self._bucket)
        except bce.ClientError as exc:
            code, status = _code_status(exc)
            unset = code in ("ObjectLockConfigurationNotFoundError", "InvalidRequest") or (
                status == 404 and code != "NoSuchBucket")
            if not unset:
                self._raise(exc, "checking", "the bucket's Object Lock")
            conf = {}
        except Exception as exc:
            self._raise(exc, "checking", "the bucket's Object Lock")
        if conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
            raise BackendError(
                f"bucket {self._bucket!r} at {self._where} has no Object Lock, so --lock-days cannot protect "
                "anything: create the vault in a new bucket with --create-bucket (made with Object Lock on), or "
                "turn Object Lock on for this bucket"
            )

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
        where: dict[str, Any] = {} if region in (None, "us-east-1") else {
            "CreateBucketConfiguration": {"LocationConstraint": region}}
        if self._retention is not None:
            where["ObjectLockEnabledForBucket"] = True  # also turns versioning on
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

