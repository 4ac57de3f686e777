"""S3Backend against a real SeaweedFS on 127.0.0.1: the conformance suite plus S3-specific faults."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conformance import BackendConformance, oname, payload
from servers import SeaweedServer, running

from sigmavault.backends.base import Backend, get_bounded
from sigmavault.backends.s3 import CONFLICT_RETRIES, S3Backend, parse_url
from sigmavault.backends.urls import open_backend
from sigmavault.engine.errors import (
    BackendAuthError,
    BackendError,
    BackendUnavailable,
    IntegrityError,
    NotFound,
    UsageError,
)

_AWS_VARS = (
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
)


def aws_env(monkeypatch: pytest.MonkeyPatch, tmp: Path, key: str | None, secret: str | None) -> None:
    """Point the AWS credential chain at exactly these credentials (no files, no metadata service)."""
    for var in _AWS_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for var, value in (("AWS_ACCESS_KEY_ID", key), ("AWS_SECRET_ACCESS_KEY", secret)):
        if value is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, value)


@pytest.fixture
def s3_env(s3_server: SeaweedServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SeaweedServer:
    aws_env(monkeypatch, tmp_path, s3_server.access_key, s3_server.secret_key)
    return s3_server


def backend_for(server: SeaweedServer, bucket: str, prefix: str = "vault", **opts: Any) -> S3Backend:
    return S3Backend.from_url(f"s3://{bucket}/{prefix}", endpoint_url=server.endpoint, path_style=True, **opts)


class TestS3Conformance(BackendConformance):
    racers = 10  # SeaweedFS serialises contended conditional writes (~1 s waits); 20 clients race below

    @pytest.fixture(autouse=True)
    def _server(self, s3_env: SeaweedServer) -> None:
        self.server = s3_env
        self.bucket = s3_env.new_bucket()

    async def make_backend(self) -> Backend:
        return backend_for(self.server, self.bucket)


class TestS3BucketRootConformance(BackendConformance):
    """No prefix: objects at the top of the bucket; the endpoint comes from AWS_ENDPOINT_URL."""

    racers = 10

    @pytest.fixture(autouse=True)
    def _server(self, s3_env: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3_env.endpoint)
        self.bucket = s3_env.new_bucket()

    async def make_backend(self) -> Backend:
        return open_backend(f"s3://{self.bucket}?path_style=true")


# -- URLs -------------------------------------------------------------------------------------------


def test_parse_url() -> None:
    assert parse_url("s3://my-bucket") == ("my-bucket", "", {})
    assert parse_url("s3://my-bucket/") == ("my-bucket", "", {})
    assert parse_url("s3://my.bucket/a/b/") == ("my.bucket", "a/b", {})
    assert parse_url("s3://bkt/p?region=eu-west-1&path_style=true") == (
        "bkt", "p", {"region": "eu-west-1", "path_style": "true"}
    )
    for bad in ("s3://", "s3://B", "s3://ab", "http://bucket/x", "s3://bucket/a/../b", "s3://bucket/a//b",
                "s3://bucket/x?colour=red", "s3://bucket/x?path_style=yes", "s3://bucket#frag", "s3://bu_cket"):
        with pytest.raises(UsageError):
            parse_url(bad)


def _env_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def test_description_and_properties() -> None:
    backend = S3Backend.from_url("s3://bucket/some/prefix/", endpoint_url="http://127.0.0.1:1", concurrency=24)
    assert backend.description == "s3://bucket/some/prefix?endpoint=http://127.0.0.1:1"
    assert backend.properties.concurrency == 24
    assert backend.properties.atomic_create and backend.properties.persistent
    assert S3Backend.from_url("s3://bucket").description in ("s3://bucket", f"s3://bucket?endpoint={_env_endpoint()}")
    with pytest.raises(UsageError):
        S3Backend("bucket", concurrency=0)


# -- credentials and buckets ----------------------------------------------------------------------


def test_wrong_secret_is_one_auth_error(s3_server: SeaweedServer, monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    bucket = s3_server.new_bucket()

    async def main() -> None:
        for key, secret in ((s3_server.access_key, "not-the-secret"), ("AKNOSUCHKEY", s3_server.secret_key)):
            aws_env(monkeypatch, tmp_path, key, secret)
            backend = backend_for(s3_server, bucket)
            try:
                began = time.monotonic()
                for op in (backend.put_if_absent(oname(1), b"x"), backend.get(oname(1)), backend.head(oname(1))):
                    with pytest.raises(BackendAuthError) as info:
                        await op
                    assert "AWS_ACCESS_KEY_ID" in info.value.message
                    assert secret not in info.value.message
                with pytest.raises(BackendAuthError):
                    [n async for n in backend.list()]
                assert time.monotonic() - began < 5  # rejected once, not retried with backoff
            finally:
                await backend.aclose()

    asyncio.run(main())


def test_missing_credentials(s3_server: SeaweedServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    aws_env(monkeypatch, tmp_path, None, None)

    async def main() -> None:
        backend = backend_for(s3_server, "whatever-bucket")
        try:
            with pytest.raises(BackendAuthError, match=r"no usable AWS credentials.*AWS_ACCESS_KEY_ID"):
                await backend.get(oname(1))
        finally:
            await backend.aclose()

    asyncio.run(main())


def test_missing_bucket_is_named(s3_env: SeaweedServer) -> None:
    async def main() -> None:
        backend = backend_for(s3_env, "no-such-bucket-here")
        try:
            ops = [
                lambda: backend.put_if_absent(oname(1), b"x"), lambda: backend.get(oname(1)),
                lambda: backend.get(oname(1), 3, 3), lambda: backend.head(oname(1)),
                lambda: backend.delete(oname(1)),
            ]
            for op in ops:
                with pytest.raises(BackendError, match="bucket 'no-such-bucket-here' does not exist") as info:
                    await op()
                assert not isinstance(info.value, NotFound)  # a missing bucket is not an empty vault
                assert s3_env.endpoint in info.value.message
            with pytest.raises(BackendError, match="no-such-bucket-here"):
                [n async for n in backend.list("c/")]
        finally:
            await backend.aclose()

    asyncio.run(main())


def test_prefixes_isolate_and_foreign_keys_ignored(s3_env: SeaweedServer) -> None:
    bucket = s3_env.new_bucket()
    s3_env.client().put_object(Bucket=bucket, Key="one/not-an-object", Body=b"junk")  # type: ignore[attr-defined]

    async def main() -> None:
        one, two = backend_for(s3_env, bucket, "one"), backend_for(s3_env, bucket, "two")
        try:
            assert await one.put_if_absent(oname(1), b"in one") is True
            assert await two.put_if_absent(oname(1), b"in two") is True
            assert await one.get(oname(1)) == b"in one"
            assert [n async for n in one.list()] == [oname(1)]
            assert [n async for n in two.list("o/")] == [oname(1)]
        finally:
            await one.aclose()
            await two.aclose()
        keys = s3_env.client().list_objects_v2(Bucket=bucket)["Contents"]  # type: ignore[attr-defined]
        assert sorted(k["Key"] for k in keys) == sorted(["one/not-an-object", "one/" + oname(1), "two/" + oname(1)])

    asyncio.run(main())


def test_closed_backend_refuses(s3_env: SeaweedServer) -> None:
    async def main() -> None:
        backend = backend_for(s3_env, s3_env.new_bucket())
        await backend.put_if_absent(oname(1), b"x")
        await backend.aclose()
        with pytest.raises(UsageError, match="closed"):
            await backend.get(oname(1))

    asyncio.run(main())


# -- races ----------------------------------------------------------------------------------------


def test_twenty_racing_writers_one_winner(s3_env: SeaweedServer) -> None:
    """20 separate clients (own connection pools) race to create one commit name.

    SeaweedFS serialises contended conditional writes with ~1 s waits, so one round takes ~8 s.
    """
    bucket = s3_env.new_bucket()

    async def main() -> None:
        clients = [backend_for(s3_env, bucket) for _ in range(20)]
        try:
            name = "c/0000000000000001"
            bodies = [payload(f"racer {i}", 1100) for i in range(20)]
            results = await asyncio.wait_for(
                asyncio.gather(*(c.put_if_absent(name, body) for c, body in zip(clients, bodies))), 120
            )
            assert results.count(True) == 1
            assert await clients[0].get(name) == bodies[results.index(True)]
        finally:
            for c in clients:
                await c.aclose()

    asyncio.run(main())


class _FakeClient:
    """A client whose put_object fails with the given S3 errors, then succeeds (fault injection)."""

    def __init__(self, errors: list[tuple[str, int]]) -> None:
        self.errors = errors
        self.calls = 0

    async def put_object(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs["IfNoneMatch"] == "*"
        self.calls += 1
        if self.errors:
            code, status = self.errors.pop(0)
            raise ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")
        return {}


def _with_fake(errors: list[tuple[str, int]]) -> tuple[S3Backend, _FakeClient]:
    backend = S3Backend("bucket", endpoint_url="http://127.0.0.1:1")
    fake = _FakeClient(errors)
    backend._client = fake  # type: ignore[attr-defined]
    return backend, fake


def test_conflict_409_is_retried_not_exists() -> None:
    async def main() -> None:
        backend, fake = _with_fake([("ConditionalRequestConflict", 409)] * 2)
        assert await backend.put_if_absent(oname(1), b"x") is True
        assert fake.calls == 3
        backend, fake = _with_fake([("ConditionalRequestConflict", 409)] * 2 + [("PreconditionFailed", 412)])
        assert await backend.put_if_absent(oname(1), b"x") is False
        backend, fake = _with_fake([("ConditionalRequestConflict", 409)] * (CONFLICT_RETRIES + 1))
        with pytest.raises(BackendUnavailable, match="ConditionalRequestConflict"):
            await backend.put_if_absent(oname(1), b"x")
        assert fake.calls == CONFLICT_RETRIES + 1
        for code, status in (("SlowDown", 503), ("InternalError", 500)):
            backend, _ = _with_fake([(code, status)])
            with pytest.raises(BackendUnavailable, match=r"127\.0\.0\.1:1"):
                await backend.put_if_absent(oname(1), b"x")
        backend, _ = _with_fake([("InvalidArgument", 400)])
        with pytest.raises(BackendError) as info:
            await backend.put_if_absent(oname(1), b"x")
        assert type(info.value) is BackendError

    asyncio.run(main())


# -- a server that dies ---------------------------------------------------------------------------


@pytest.fixture
def own_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SeaweedServer]:
    """A SeaweedFS of this test's own, free to kill and restart."""
    server = SeaweedServer(root=tmp_path / "seaweedfs")
    with running(server):
        aws_env(monkeypatch, tmp_path, server.access_key, server.secret_key)
        yield server


def test_killed_server_unavailable_then_recovers(own_s3: SeaweedServer) -> None:
    bucket = own_s3.new_bucket()

    async def main() -> None:
        backend = backend_for(own_s3, bucket, connect_timeout=2, read_timeout=10, max_attempts=2)
        try:
            assert await backend.put_if_absent(oname("before"), payload("before", 5000)) is True
            own_s3.kill()
            began = time.monotonic()
            for op in (lambda: backend.get(oname("before")), lambda: backend.put_if_absent(oname(2), b"x"),
                       lambda: backend.head(oname(2))):
                with pytest.raises(BackendUnavailable) as info:
                    await asyncio.wait_for(op(), 30)
                assert own_s3.endpoint in info.value.message
            with pytest.raises(BackendUnavailable):
                await asyncio.wait_for(backend.delete(oname(2)), 30)
            with pytest.raises(BackendUnavailable):
                await asyncio.wait_for(anext(backend.list()), 30)
            assert time.monotonic() - began < 30
            own_s3.start()
            # the same backend object, with its pool of now-dead connections, works again
            assert await asyncio.wait_for(backend.put_if_absent(oname("after"), b"after"), 30) is True
            assert await backend.get(oname("after")) == b"after"
            assert await backend.get(oname("before")) == payload("before", 5000)  # survived the kill
            assert sorted([n async for n in backend.list()]) == sorted([oname("before"), oname("after")])
        finally:
            await backend.aclose()

    asyncio.run(main())


def test_a_server_that_ignores_range_is_read_only_up_to_the_bound(s3_env: SeaweedServer) -> None:
    """Issue 10 item 7: a provider answering a ranged GET with the whole (inflated) object (200) must
    not make the reader download it: the body is read up to the asked end, then dropped."""
    size = 8 << 20

    async def main() -> None:
        backend = backend_for(s3_env, s3_env.new_bucket())
        try:
            data = payload("ignores-range", size)
            await backend.put_if_absent(oname("big"), data)
            client = await backend._open()
            real_get = client.get_object
            read = 0

            async def ignore_range(**kw: Any) -> Any:
                kw.pop("Range", None)  # the fault: the server sends everything, status 200
                response = await real_get(**kw)
                body = response["Body"]
                real_read = body.read

                async def counting(amt: int | None = None) -> bytes:
                    nonlocal read
                    piece: bytes = await real_read(amt)
                    read += len(piece)
                    return piece

                body.read = counting
                return response

            client.get_object = ignore_range
            assert await backend.get(oname("big"), 0, 1000) == data[:1000]
            assert await backend.get(oname("big"), 500, 1500) == data[500:1500]
            with pytest.raises(IntegrityError, match="larger than"):
                await get_bounded(backend, oname("big"), 4096)
            assert read < 64 << 10, read  # never the 8 MiB the server offered
        finally:
            await backend.aclose()

    asyncio.run(main())
