"""Retention locks (``create --lock-days``): S3 Object Lock on SeaweedFS, Azure immutability request shape.

SeaweedFS enforces GOVERNANCE retention on versioned deletes, so the S3 side is tested for real:
a locked object survives a delete from the vault's own credentials. Azurite accepts the Azure
immutability headers but enforces nothing (and has no version-level immutable containers), so
the Azure side checks what is sent and how the answers are read.
"""

from __future__ import annotations

import datetime
import secrets
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob.aio import BlobClient
from conformance import oname, payload
from servers import AzuriteServer, SeaweedServer
from test_azure import az_env as az_env
from test_s3 import backend_for
from test_s3 import s3_env as s3_env

from sigmavault.backends.azure import AzureBackend
from sigmavault.backends.base import Lockable, Retention, lockable
from sigmavault.backends.local import LocalBackend
from sigmavault.backends.retrying import RetryingBackend
from sigmavault.engine.errors import BackendError, ObjectLocked, UsageError


def test_a_retention_is_one_to_36500_days_of_governance_or_compliance() -> None:
    for days, mode in ((0, "governance"), (36501, "governance"), (1, "legal-hold")):
        with pytest.raises(UsageError):
            Retention(days, mode)  # type: ignore[arg-type]
    until = Retention(30).until()
    now = datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(days=29, hours=23) < until - now <= datetime.timedelta(days=30)


def test_only_object_stores_can_lock(tmp_path: Path) -> None:
    assert lockable(LocalBackend(tmp_path / "v", create=True)) is None
    az = AzureBackend("locked")
    assert lockable(RetryingBackend(az)) is az and isinstance(az, Lockable)


async def test_s3_locked_objects_survive_a_delete(s3_env: SeaweedServer) -> None:
    bucket = "locked-" + secrets.token_hex(6)
    backend = backend_for(s3_env, bucket)
    backend.set_retention(Retention(2, "governance"))
    try:
        assert await backend.ensure_bucket()  # made with Object Lock on
        await backend.check_retention()
        name, data = oname(secrets.token_hex(4)), payload(5000)
        assert await backend.put_if_absent(name, data)
        assert not await backend.put_if_absent(name, b"other")  # still create-only
        raw: Any = s3_env.client()
        head = raw.head_object(Bucket=bucket, Key="vault/" + name)
        assert head["ObjectLockMode"] == "GOVERNANCE"
        left = head["ObjectLockRetainUntilDate"] - datetime.datetime.now(datetime.UTC)
        assert datetime.timedelta(days=1, hours=23) < left <= datetime.timedelta(days=2)
        with pytest.raises(ObjectLocked, match="retention lock"):
            await backend.delete(name)
        assert await backend.get(name) == data  # the vault's own credentials could not destroy it
        assert [n async for n in backend.list("o/")] == [name]
    finally:
        await backend.aclose()


async def test_s3_delete_in_a_locked_bucket_removes_every_version(s3_env: SeaweedServer) -> None:
    bucket = "locked-" + secrets.token_hex(6)
    backend = backend_for(s3_env, bucket)
    backend.set_retention(Retention(1))
    plain = backend_for(s3_env, bucket)  # writes without a lock (e.g. before the vault was locked)
    try:
        await backend.ensure_bucket()
        name = oname(secrets.token_hex(4))
        assert await plain.put_if_absent(name, payload(100))
        await backend.delete(name)
        raw: Any = s3_env.client()
        versions = raw.list_object_versions(Bucket=bucket, Prefix="vault/" + name)
        assert not versions.get("Versions") and not versions.get("DeleteMarkers")  # space freed, not hidden
    finally:
        await backend.aclose()
        await plain.aclose()


async def test_s3_bucket_without_object_lock_is_refused_with_the_fix(s3_env: SeaweedServer) -> None:
    backend = backend_for(s3_env, s3_env.new_bucket())  # an ordinary bucket
    backend.set_retention(Retention(7))
    try:
        with pytest.raises(BackendError, match=r"has no Object Lock.*--create-bucket"):
            await backend.check_retention()
    finally:
        await backend.aclose()


async def test_azure_puts_carry_the_immutability_policy(az_env: AzuriteServer, monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    sent: list[dict[str, str]] = []
    original = BlobClient.upload_blob

    async def recording(self: BlobClient, *args: Any, **kwargs: Any) -> Any:
        def hook(request: Any) -> None:
            sent.append(dict(request.http_request.headers))

        return await original(self, *args, raw_request_hook=hook, **kwargs)

    monkeypatch.setattr(BlobClient, "upload_blob", recording)
    container = az_env.new_container()
    for mode, wire in (("governance", "Unlocked"), ("compliance", "Locked")):
        backend = AzureBackend.from_url(f"az://{container}/{mode}")
        backend.set_retention(Retention(3, mode))  # type: ignore[arg-type]
        try:
            assert await backend.put_if_absent(oname(secrets.token_hex(4)), payload(10))
        finally:
            await backend.aclose()
        headers = {k.lower(): v for k, v in sent[-1].items()}
        assert headers["x-ms-immutability-policy-mode"] == wire
        until = datetime.datetime.strptime(headers["x-ms-immutability-policy-until-date"], "%a, %d %b %Y %H:%M:%S GMT")
        left = until.replace(tzinfo=datetime.UTC) - datetime.datetime.now(datetime.UTC)
        assert datetime.timedelta(days=2, hours=23) < left <= datetime.timedelta(days=3)
    plain = AzureBackend.from_url(f"az://{container}/plain")
    try:
        await plain.put_if_absent(oname(secrets.token_hex(4)), payload(10))
    finally:
        await plain.aclose()
    assert not any("immutability" in k.lower() for k in sent[-1])  # no lock asked for, none sent


async def test_azure_container_without_immutability_is_refused_and_a_refused_delete_is_locked(
        az_env: AzuriteServer, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = AzureBackend.from_url(f"az://{az_env.new_container()}/vault")
    backend.set_retention(Retention(7))
    try:
        with pytest.raises(BackendError, match="version-level immutability"):
            await backend.check_retention()  # Azurite has no such containers
        name = oname(secrets.token_hex(4))
        await backend.put_if_absent(name, payload(10))

        async def refused(self: BlobClient, **kwargs: Any) -> None:  # what Azure answers under a policy
            error = HttpResponseError(message="The blob is immutable due to a policy.")
            error.status_code = 409
            error.error_code = "BlobImmutableDueToPolicy"
            raise error

        monkeypatch.setattr(BlobClient, "delete_blob", refused)
        with pytest.raises(ObjectLocked, match="immutability policy"):
            await backend.delete(name)
    finally:
        await backend.aclose()
