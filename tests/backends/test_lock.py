"""Retention locks (``create --lock-days``): S3 Object Lock on SeaweedFS, Azure immutability request shape.

SeaweedFS enforces GOVERNANCE retention on versioned deletes, so the S3 side is tested for real:
a locked object survives a delete from the vault's own credentials. Azurite accepts the Azure
immutability headers but enforces nothing (and has no version-level immutable containers), so
the Azure side checks what is sent and how the answers are read.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob.aio import BlobClient
from conformance import oname, payload
from servers import AzuriteServer, SeaweedServer
from test_azure import az_env as az_env
from test_cloud_vault import PASS, Place, cli, ok, one_line_error, place_on, stored_names
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


# -- whole vaults: create --lock-days through the command --------------------------------------------


def test_a_locked_vault_on_s3_locks_what_every_client_writes(s3_server: SeaweedServer, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = "locked-" + secrets.token_hex(6)
    place = place_on(s3_server, tmp_path, monkeypatch)
    place = Place(place.server, bucket, place.url_for(bucket), place.env)
    home = tmp_path / "home"
    made = json.loads(ok(place, home, "--json", "create", "--kdf", "minimum", "--create-bucket", "--lock-days", "3"))
    assert made["lock_days"] == 3 and made["lock_mode"] == "governance"
    (tmp_path / "f.txt").write_bytes(b"kept for three days")
    ok(place, home, "import", str(tmp_path / "f.txt"))
    second = tmp_path / "second-device"  # another client: the lock comes from the vault, not from its options
    ok(place, second, "--fingerprint", made["fingerprint"], "mkdir", "/from-elsewhere")
    info = json.loads(ok(place, second, "--json", "info"))
    assert info["lock"] == {"days": 3, "mode": "governance"}
    raw: Any = s3_server.client()
    keys = [o["Key"] for o in raw.list_objects_v2(Bucket=bucket)["Contents"]]
    assert any(k.startswith("vault/c/") for k in keys) and any(k.startswith("vault/o/") for k in keys)
    for key in keys:
        head = raw.head_object(Bucket=bucket, Key=key)
        assert head["ObjectLockMode"] == "GOVERNANCE", key
        assert head["ObjectLockRetainUntilDate"] > datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=2)
    keys = [o["Key"] for o in raw.list_objects_v2(Bucket=bucket)["Contents"]]
    assert not [k for k in keys if k.startswith("vault/l/")]  # leases are never locked: they went when done
    ok(place, home, "rm", "/f.txt")
    ok(place, home, "forget", "--keep-last", "1")
    pruned = json.loads(ok(place, home, "--json", "prune").splitlines()[-1])  # JSON lines: the report is last
    assert pruned["locked"] >= 1 and pruned["deleted"] == 0  # garbage, but locked: skipped and said so
    assert {o["Key"] for o in raw.list_objects_v2(Bucket=bucket)["Contents"]} >= {k for k in keys if "/o/" in k}
    (tmp_path / "new").write_text("a new passphrase\n")
    changed = cli(place, home, "key", "passwd", "--new-passphrase-file", str(tmp_path / "new"))
    assert changed.returncode == 0 and "older keystore copies could not be deleted" in changed.stderr
    # the old keystore stays until its lock ends; the new passphrase opens the newest one, the old one no longer
    after = cli(place, home, "--json", "log", SIGMAVAULT_PASSPHRASE="a new passphrase")
    # generation 5 is the prune run's record, 6 the passphrase change's (audit names both)
    assert after.returncode == 0 and json.loads(after.stdout)["generations"][0]["generation"] == 6
    assert cli(place, home, "log").returncode == 3


@pytest.mark.parametrize("where", ["local", "plain-bucket", "azurite"])
def test_a_lock_that_cannot_hold_is_refused_and_nothing_is_written(where: str, request: pytest.FixtureRequest,
                                                                   tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    if where == "local":
        home = tmp_path / "home"
        run = subprocess.run([sys.executable, "-m", "sigmavault", "--vault", str(tmp_path / "v"), "create", "--kdf",
                              "minimum", "--lock-days", "7"], env={**os.environ, "SIGMAVAULT_HOME": str(home),
                                                                   "SIGMAVAULT_PASSPHRASE": PASS},
                             capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert run.returncode == 2 and "cannot lock objects" in one_line_error(run.stderr)
        assert not (tmp_path / "v" / "k").exists() or not list((tmp_path / "v" / "k").iterdir())
        return
    server = request.getfixturevalue("s3_server" if where == "plain-bucket" else "azure_server")
    place = place_on(server, tmp_path, monkeypatch)  # an ordinary bucket / container
    run = cli(place, tmp_path / "home", "create", "--kdf", "minimum", "--lock-days", "7")
    want = "has no Object Lock" if where == "plain-bucket" else "version-level immutability"
    assert run.returncode == 8 and want in one_line_error(run.stderr)
    assert asyncio.run(stored_names(place.url)) == []
