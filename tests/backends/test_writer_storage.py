"""A write-only client's storage credential (issue 18, docs/writers.md) against the real test servers.

What each server enforces, shown with the project's backends holding the writer's own credential:

* SeaweedFS 4.48: an identity whose actions are scoped to ``bucket/vault/d/<w>/*`` may write, read
  and list there and nowhere else; its "Write" also deletes, which a bucket policy denies (the
  single and the batch delete, and by version). It has no ``s3:if-none-match`` condition key, so a
  policy cannot make a plain ``PutObject`` create-only: the writer can overwrite its own objects
  (the versioned bucket keeps the earlier version). Those limitations are asserted as they are, so
  this file fails when the server changes and docs/writers.md has to follow.
* Azurite 3.35: a container SAS with create (+ list) creates new blobs, refuses to overwrite one,
  to delete and to read; it covers the whole container (Azure cannot scope a SAS to a prefix
  without a hierarchical namespace, which Azurite does not have).

The writer's objects live under ``vault/d/<w>/``: its backend is opened on that prefix and names
them ``o/<64 hex>``, so the keys the server sees are exactly a drop's ``d/<w>/o/…``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import ContainerSasPermissions, generate_container_sas
from conformance import oname
from servers import AzuriteServer, SeaweedServer
from test_azure import az_env as az_env
from test_s3 import aws_env, backend_for

from sigmavault.backends.azure import AzureBackend
from sigmavault.backends.s3 import S3Backend
from sigmavault.engine.errors import BackendAuthError

# -- SeaweedFS ---------------------------------------------------------------------------------------

WRITER_ARN = "arn:aws:iam::000000000000:user/sigmavault-writer"  # SeaweedFS names an identity so


def seaweed_policy(bucket: str, prefix: str) -> dict[str, Any]:
    """The part of docs/writers.md's policy that SeaweedFS evaluates: no deletes, no retention changes.

    The last statement is AWS's create-only rule, confined to ``probe/`` under the writer's prefix:
    SeaweedFS does not know the key, so it treats every put there as lacking the header.
    """
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "WriterNeverDeletes", "Effect": "Deny", "Principal": {"AWS": WRITER_ARN},
         "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectRetention", "s3:PutObjectLegalHold",
                    "s3:BypassGovernanceRetention"],
         "Resource": f"arn:aws:s3:::{bucket}/*"},
        {"Sid": "CreateOnlyProbe", "Effect": "Deny", "Principal": {"AWS": WRITER_ARN}, "Action": "s3:PutObject",
         "Resource": f"arn:aws:s3:::{bucket}/{prefix}probe/*", "Condition": {"Null": {"s3:if-none-match": "true"}}},
    ]}


@pytest.fixture(scope="module")
def seaweed(s3_server: SeaweedServer) -> SeaweedServer:
    """The session's SeaweedFS with the writer's bucket: versioned (Object Lock on), under the policy."""
    owner: Any = s3_server.client()
    owner.create_bucket(Bucket=s3_server.writer_bucket, ObjectLockEnabledForBucket=True)
    policy = seaweed_policy(s3_server.writer_bucket, s3_server.writer_prefix)
    owner.put_bucket_policy(Bucket=s3_server.writer_bucket, Policy=json.dumps(policy))
    return s3_server


@pytest.fixture
def writer_env(seaweed: SeaweedServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SeaweedServer:
    """The AWS variables hold exactly the writer's keys (as on the writer's own machine)."""
    aws_env(monkeypatch, tmp_path, seaweed.writer_key, seaweed.writer_secret)
    return seaweed


def drop_backend(server: SeaweedServer) -> S3Backend:
    """The writer's backend on its own prefix ``vault/d/<w>``."""
    return backend_for(server, server.writer_bucket, server.writer_prefix.rstrip("/"))


def owner_get(server: SeaweedServer, key: str, **version: str) -> bytes:
    body: bytes = server.client().get_object(  # type: ignore[attr-defined]
        Bucket=server.writer_bucket, Key=key, **version)["Body"].read()
    return body


def owner_put(server: SeaweedServer, key: str, data: bytes) -> str:
    """Put ``key`` as the owner; its version id."""
    put = server.client().put_object(Bucket=server.writer_bucket, Key=key, Body=data)  # type: ignore[attr-defined]
    return str(put["VersionId"])


def denied(call: Any) -> str:
    """The error code of a raw request that must fail."""
    with pytest.raises(Exception) as info:
        call()
    return str(getattr(info.value, "response", {}).get("Error", {}).get("Code"))


def test_seaweed_writer_creates_and_reads_back_but_never_overwrites(writer_env: SeaweedServer) -> None:
    server = writer_env
    name = oname(secrets.token_hex(8))

    async def main() -> None:
        backend = drop_backend(server)
        try:
            assert await backend.put_if_absent(name, b"first drop") is True
            assert await backend.put_if_absent(name, b"a second try") is False
            assert await backend.get(name) == b"first drop"  # it reads back what it wrote
            assert name in [n async for n in backend.list("o/")]
        finally:
            await backend.aclose()

    asyncio.run(main())
    assert owner_get(server, server.writer_prefix + name) == b"first drop"


def test_seaweed_writer_cannot_delete(writer_env: SeaweedServer) -> None:
    server = writer_env
    name = oname(secrets.token_hex(8))
    key = server.writer_prefix + name
    version = owner_put(server, key, b"an earlier drop")

    async def main() -> None:
        backend = drop_backend(server)
        try:
            with pytest.raises(BackendAuthError):
                await backend.delete(name)
        finally:
            await backend.aclose()

    asyncio.run(main())
    raw: Any = server.client(server.writer_key, server.writer_secret)
    batch = raw.delete_objects(Bucket=server.writer_bucket, Delete={"Objects": [{"Key": key}]})
    assert [(e["Key"], e["Code"]) for e in batch.get("Errors", [])] == [(key, "AccessDenied")]
    assert not batch.get("Deleted")
    assert denied(lambda: raw.delete_object(Bucket=server.writer_bucket, Key=key, VersionId=version)) == "AccessDenied"
    retention = {"Mode": "GOVERNANCE", "RetainUntilDate": datetime.now(UTC) + timedelta(days=1)}
    assert denied(lambda: raw.put_object_retention(Bucket=server.writer_bucket, Key=key, Retention=retention)) == (
        "AccessDenied")
    assert owner_get(server, key) == b"an earlier drop"


def test_seaweed_writer_is_confined_to_its_prefix(writer_env: SeaweedServer) -> None:
    server = writer_env
    secret_name = oname(secrets.token_hex(8))
    owner_put(server, "vault/" + secret_name, b"the owner's object")
    other_writer = f"vault/d/{secrets.token_hex(16)}"

    async def main() -> None:
        vault = backend_for(server, server.writer_bucket, "vault")
        other = backend_for(server, server.writer_bucket, other_writer)
        try:
            for attempt in (vault.get(secret_name), vault.head(secret_name),
                            vault.put_if_absent("c/00000000000000a2", b"squatting the next commit"),
                            other.put_if_absent(oname(1), b"into another writer's drops")):
                with pytest.raises(BackendAuthError):
                    await attempt
            with pytest.raises(BackendAuthError):
                _ = [n async for n in vault.list("o/")]
        finally:
            await vault.aclose()
            await other.aclose()

    asyncio.run(main())
    raw: Any = server.client()
    listed = raw.list_objects_v2(Bucket=server.writer_bucket, Prefix="vault/c/").get("Contents", [])
    assert listed == []


def test_seaweed_cannot_make_a_plain_put_create_only(writer_env: SeaweedServer) -> None:
    """Documented limitation (docs/writers.md): no ``s3:if-none-match`` condition key in SeaweedFS 4.48.

    A writer that skips the header overwrites its own object (in a versioned bucket the earlier
    version stays, for the owner to find); the create-only rule refuses even a put that sends it.
    """
    server = writer_env
    key = server.writer_prefix + oname(secrets.token_hex(8))
    first = owner_put(server, key, b"original")
    raw: Any = server.client(server.writer_key, server.writer_secret)
    raw.put_object(Bucket=server.writer_bucket, Key=key, Body=b"replaced")  # not refused: no header asked for
    assert owner_get(server, key) == b"replaced"
    assert owner_get(server, key, VersionId=first) == b"original"
    probe = server.writer_prefix + "probe/" + secrets.token_hex(8)
    assert denied(lambda: raw.put_object(Bucket=server.writer_bucket, Key=probe, Body=b"x", IfNoneMatch="*")) == (
        "AccessDenied")


# -- Azurite -----------------------------------------------------------------------------------------------


def container_sas(server: AzuriteServer, container: str, **permissions: bool) -> str:
    return generate_container_sas(server.account, container, account_key=server.key,
                                  permission=ContainerSasPermissions(**permissions),
                                  expiry=datetime.now(UTC) + timedelta(hours=1))


def azure_drops(server: AzuriteServer, container: str, sas: str, prefix: str = "vault/d/" + "ab" * 16) -> AzureBackend:
    return AzureBackend.from_url(f"az://{container}/{prefix}", endpoint_url=server.endpoint, sas_token=sas)


def azure_owner(server: AzuriteServer, container: str, prefix: str = "vault/d/" + "ab" * 16) -> AzureBackend:
    return AzureBackend.from_url(f"az://{container}/{prefix}", connection_string=server.connection_string)


@pytest.mark.parametrize("can_list", [True, False], ids=["sas-cl", "sas-c"])
def test_azurite_writer_creates_but_never_overwrites(az_env: AzuriteServer, can_list: bool) -> None:
    """With ``l``, an existing blob is "exists" (the 403 and a listing that shows it); with ``c``
    alone the writer cannot tell that from a refusal, and says so. Never replaced either way."""
    container = az_env.new_container()
    name = oname("drop")
    sas = container_sas(az_env, container, create=True, list=can_list)

    async def main() -> None:
        writer, owner = azure_drops(az_env, container, sas), azure_owner(az_env, container)
        try:
            assert await writer.put_if_absent(name, b"first drop") is True
            if can_list:
                assert await writer.put_if_absent(name, b"a second try") is False
                assert [n async for n in writer.list("o/")] == [name]
            else:
                with pytest.raises(BackendAuthError) as info:
                    await writer.put_if_absent(name, b"a second try")
                assert "permission l" in info.value.message and sas not in info.value.message
            assert await owner.get(name) == b"first drop"
        finally:
            await writer.aclose()
            await owner.aclose()

    asyncio.run(main())


def test_azurite_writer_cannot_delete_or_read(az_env: AzuriteServer) -> None:
    container = az_env.new_container()
    mine, theirs = oname("earlier drop"), oname("the owner's")

    async def main() -> None:
        owner, owner_vault = azure_owner(az_env, container), azure_owner(az_env, container, "vault")
        writer = azure_drops(az_env, container, container_sas(az_env, container, create=True, list=True))
        writer_vault = azure_drops(az_env, container, container_sas(az_env, container, create=True, list=True), "vault")
        try:
            assert await owner.put_if_absent(mine, b"an earlier drop") is True
            assert await owner_vault.put_if_absent(theirs, b"the owner's data") is True
            for attempt in (writer.delete(mine), writer.get(mine), writer.head(mine), writer_vault.delete(theirs),
                            writer_vault.get(theirs), writer_vault.get(theirs, 0, 10)):
                with pytest.raises(BackendAuthError):
                    await attempt
            assert await owner.get(mine) == b"an earlier drop"
            assert await owner_vault.get(theirs) == b"the owner's data"
        finally:
            for backend in (owner, owner_vault, writer, writer_vault):
                await backend.aclose()

    asyncio.run(main())


def test_azurite_container_sas_is_not_confined_to_a_prefix(az_env: AzuriteServer) -> None:
    """Documented limitation (docs/writers.md): a container SAS covers every name in the container.

    The writer cannot read, overwrite or delete anywhere, but it can create a name the owner has
    not written yet — here the vault's next commit — which only a directory SAS (hierarchical
    namespace) or a role assignment with a path condition can prevent.
    """
    container = az_env.new_container()

    async def main() -> None:
        sas = container_sas(az_env, container, create=True, list=True)
        writer_vault = azure_drops(az_env, container, sas, "vault")
        try:
            assert await writer_vault.put_if_absent("c/00000000000000a2", b"squatting the next commit") is True
            assert [n async for n in writer_vault.list("c/")] == ["c/00000000000000a2"]  # and lists every name
        finally:
            await writer_vault.aclose()

    asyncio.run(main())


def test_unauthorized_overwrite_is_exists(az_env: AzuriteServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Azure itself answers a create-only SAS's overwrite with 403 UnauthorizedBlobOverwrite (Azurite
    does not): that is "exists", with no listing needed. The answer is injected at the SDK's edge."""
    from azure.storage.blob.aio import BlobClient

    class Refusal(HttpResponseError):
        status_code = 403
        error_code = "UnauthorizedBlobOverwrite"

    async def refuse(*_: Any, **__: Any) -> None:
        raise Refusal(message="This request is not authorized to perform blob overwrites.")

    container = az_env.new_container()
    monkeypatch.setattr(BlobClient, "upload_blob", refuse)

    async def main() -> None:
        writer = azure_drops(az_env, container, container_sas(az_env, container, create=True))
        try:
            assert await writer.put_if_absent(oname("drop"), b"refused as existing") is False
        finally:
            await writer.aclose()

    asyncio.run(main())
