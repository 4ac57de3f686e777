"""Whole vaults on real object stores: SeaweedFS (S3) and Azurite (Azure Blob) on 127.0.0.1.

End to end, through the ``sigmavault`` command (a subprocess with its own SIGMAVAULT_HOME) and the
library: a round trip of a small tree; two processes racing their commits; a server killed in the
middle of an import; wrong credentials and a missing bucket or container; transient failures
injected inside the retrying wrapper. Credentials reach the backends only through the standard
environment variables; the endpoint rides in the vault URL.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gated import Gate
from servers import AZURITE_ACCOUNT, AZURITE_KEY, AzuriteServer, SeaweedServer, free_ports, running

import sigmavault
from sigmavault.backends.base import layers
from sigmavault.backends.faulty import FaultyBackend
from sigmavault.backends.retrying import RetryingBackend
from sigmavault.backends.urls import open_backend
from sigmavault.engine.errors import (
    BackendAuthError,
    BackendError,
    BackendUnavailable,
    EndpointUnreachable,
    VaultNotFound,
)

PASS = "cloud vault test passphrase"
MiB = 1 << 20
#: exit codes of the command (sigmavault/cli/main.py)
EXIT_BACKEND, EXIT_UNREACHABLE, EXIT_CREDENTIALS = 8, 9, 10
#: every variable that could steer a backend somewhere else than the test server
_CLOUD_VARS = (
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_API_VERSION",
)
Server = SeaweedServer | AzuriteServer


# -- where a vault lives, and how to reach it ----------------------------------------------------


@dataclass
class Place:
    """A vault location on a test server: its URL, and the environment that reaches it."""

    server: Server
    namespace: str  # the bucket or container
    url: str
    env: dict[str, str]

    @property
    def kind(self) -> str:
        return "s3" if isinstance(self.server, SeaweedServer) else "azure"

    @property
    def host(self) -> str:
        """``127.0.0.1:port`` of the server, which an unreachable-endpoint error must name."""
        return self.server.endpoint.split("//", 1)[1].split("/", 1)[0]

    def url_for(self, namespace: str) -> str:
        return self.url.replace(self.namespace, namespace, 1)


def cloud_env(server: Server, tmp: Path, **override: str) -> dict[str, str]:
    """Credential variables naming exactly ``server`` (no AWS files, no metadata service)."""
    if isinstance(server, SeaweedServer):
        env = {
            "AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key,
            "AWS_REGION": server.region, "AWS_CONFIG_FILE": str(tmp / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"), "AWS_EC2_METADATA_DISABLED": "true",
        }
    else:
        env = {"AZURE_STORAGE_CONNECTION_STRING": server.connection_string}
    env.update(override)
    return env


def place_on(server: Server, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Place:
    """A fresh bucket/container on ``server``; this process's environment points at it too."""
    if isinstance(server, SeaweedServer):
        namespace = server.new_bucket()
        url = f"s3://{namespace}/vault?endpoint={server.endpoint}&path_style=true"
    else:
        namespace = server.new_container()
        url = f"az://{namespace}/vault"
    place = Place(server, namespace, url, cloud_env(server, tmp))
    use_env(monkeypatch, place.env)
    return place


def use_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for var in _CLOUD_VARS:
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)


@pytest.fixture(params=["s3", "azure"])
def place(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Place:
    """A fresh namespace on the session's shared server of each kind."""
    server: Server = request.getfixturevalue("s3_server" if request.param == "s3" else "azure_server")
    return place_on(server, tmp_path, monkeypatch)


@pytest.fixture(params=["s3", "azure"])
def own_place(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Place]:
    """A namespace on a server of this test's own, free to kill and restart."""
    root = tmp_path / "server"
    server: Server = SeaweedServer(root=root) if request.param == "s3" else AzuriteServer(root=root)
    with running(server):
        yield place_on(server, tmp_path, monkeypatch)


# -- running the command -------------------------------------------------------------------------


def cli_cmd(place: Place, *args: str) -> list[str]:
    return [sys.executable, "-m", "sigmavault", "--vault", place.url, "--no-agent", *args]


def cli_env(place: Place, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMAVAULT_") and k not in _CLOUD_VARS}
    env.update(place.env, SIGMAVAULT_HOME=str(home), SIGMAVAULT_PASSPHRASE=PASS)
    env.update(extra)
    return env


def cli(place: Place, home: Path, *args: str, timeout: float = 120, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_cmd(place, *args), env=cli_env(place, home, **extra), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def ok(place: Place, home: Path, *args: str) -> str:
    done = cli(place, home, *args)
    assert done.returncode == 0, (args, done.returncode, done.stderr)
    return done.stdout


def one_line_error(stderr: str) -> str:
    """A failed command's stderr: one line ``sigmavault: error: …``, no traceback (notes such as
    the first-use pin may come before it)."""
    lines = [line for line in stderr.strip().splitlines() if not line.startswith("sigmavault: note: ")]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("sigmavault: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def generations(place: Place, home: Path) -> list[int]:
    doc = json.loads(ok(place, home, "--json", "log"))
    return [g["generation"] for g in doc["generations"]]


# -- data ----------------------------------------------------------------------------------------


def make_tree(root: Path, sizes: dict[str, int]) -> dict[str, bytes]:
    """Random files of ``sizes`` under ``root`` (relative names); returns name -> bytes."""
    files = {}
    for rel, size in sizes.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(size)
        path.write_bytes(data)
        files[rel] = data
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


#: the small tree of the issue: 0 B, 1 KiB, 5 KiB, 1 MiB + 1, 3 MiB (vaults use 1 MiB chunks)
SMALL = {"empty": 0, "docs/one-kib": 1024, "docs/five-kib": 5 * 1024, "docs/deep/mib-plus-one": MiB + 1,
         "three-mib": 3 * MiB}


async def stored_names(url: str, prefix: str = "") -> list[str]:
    backend = open_backend(url)
    try:
        return [name async for name in backend.list(prefix)]
    finally:
        await backend.aclose()


def create_vault(url: str) -> str:
    """Create a vault (minimum KDF, 1 MiB chunks) from this process; returns its fingerprint."""

    async def main() -> str:
        async with await sigmavault.create(url, passphrase=PASS, kdf="minimum", chunk_size=MiB) as vault:
            return vault.fingerprint

    return asyncio.run(main())


# -- round trip ----------------------------------------------------------------------------------


def test_round_trip_through_the_command(place: Place, tmp_path: Path) -> None:
    home = tmp_path / "home"
    files = make_tree(tmp_path / "tree", SMALL)
    ok(place, home, "create", "--kdf", "minimum", "--chunk-size", "1")
    assert "→ generation 1" in ok(place, home, "import", str(tmp_path / "tree"))
    ok(place, home, "export", "/tree", str(tmp_path / "out"))
    assert read_tree(tmp_path / "out") == files
    report = json.loads(ok(place, home, "--json", "verify", "--full"))
    assert report["ok"] and report["generation"] == 1 and report["files"] == len(files)
    assert report["bytes_checked"] >= 4 * MiB + 1  # the chunks were read (tiny files are inline)
    assert generations(place, home) == [1, 0]

    names = asyncio.run(stored_names(place.url))
    assert names and all(n[:2] in ("k/", "c/", "o/") for n in names)  # nothing else, no file name
    assert {"c/0000000000000000", "c/0000000000000001"} <= set(names)

    async def fresh_device() -> None:  # the library, on a device that has never seen the vault
        async with await sigmavault.open(place.url, passphrase=PASS) as vault:
            assert (await vault.verify(full=True)).ok
            assert [e.generation for e in await vault.log()] == [1, 0]
            for rel, data in files.items():
                assert await vault.read_bytes("/tree/" + rel) == data

    asyncio.run(fresh_device())


# -- two writers race their commits ----------------------------------------------------------------

WRITER = """
import asyncio, json, os, sys, time
from pathlib import Path
import sigmavault

async def main(url, src, ready, go):
    async with await sigmavault.open(url, passphrase=os.environ["SIGMAVAULT_PASSPHRASE"]) as vault:
        start = vault.generation
        for path in sorted(Path(src).rglob("*")):
            if path.is_file():
                await vault.put("/" + path.relative_to(Path(src).parent).as_posix(), str(path))
        await vault.put("/shared/note.txt", Path(src).joinpath("small").read_bytes())
        Path(ready).touch()
        deadline = time.monotonic() + 60
        while not Path(go).exists():
            if time.monotonic() > deadline:
                sys.exit("no go signal")
            await asyncio.sleep(0.01)
        gen = await vault.commit()
    print(json.dumps({"start": start, "generation": gen}))

asyncio.run(main(*sys.argv[1:]))
"""


def release_together(procs: list[subprocess.Popen[str]], ready: list[Path], go: Path, *, timeout: float = 90
                     ) -> list[Any]:
    """Wait until every writer has touched its ``ready`` file, touch ``go``, and return what each
    printed (one JSON document); a writer that fails or never gets ready fails the test. Every
    writer is gone when this returns."""
    try:
        deadline = time.monotonic() + max(60, timeout)
        while not all(r.exists() for r in ready):
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
            assert time.monotonic() < deadline, "the writers did not get ready"
            time.sleep(0.02)
        go.touch()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            assert p.returncode == 0, err
            results.append(json.loads(out))
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_two_processes_race_their_commits(place: Place, tmp_path: Path) -> None:
    create_vault(place.url)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    expected: dict[str, bytes] = {}
    procs = []
    for who in ("alice", "bob"):
        tree = make_tree(tmp_path / who, {"small": 3000, "big": 2 * MiB + 7, "sub/tiny": 10})
        expected.update({f"{who}/{rel}": data for rel, data in tree.items()})
        cmd = [sys.executable, str(script), place.url, str(tmp_path / who), str(tmp_path / f"{who}.ready"),
               str(tmp_path / "go")]
        procs.append(subprocess.Popen(cmd, env=cli_env(place, tmp_path / f"home-{who}"), stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    # both staged on generation 0: one of them must lose and merge
    results = release_together(procs, [tmp_path / f"{who}.ready" for who in ("alice", "bob")], tmp_path / "go")
    assert [r["start"] for r in results] == [0, 0]
    assert sorted(r["generation"] for r in results) == [1, 2]
    notes = {expected["alice/small"], expected["bob/small"]}  # both wrote /shared/note.txt

    async def check() -> None:
        async with await sigmavault.open(place.url, passphrase=PASS) as vault:
            assert vault.generation == 2
            log = await vault.log()
            assert [e.generation for e in log] == [2, 1, 0]
            assert len({e.client for e in log}) == 3  # the creator and both writers
            paths = sorted(p.lstrip("/") for p, st in [x async for x in vault.walk("/")] if st.type == "file")
            conflicts = [p for p in paths if p.startswith("shared/note.txt (conflict ")]
            # nothing lost: every file, and the same path written by both kept twice (the loser's copy renamed)
            assert sorted(set(paths) - set(conflicts)) == sorted([*expected, "shared/note.txt"])
            assert len(conflicts) == 1 and conflicts[0].startswith(f"shared/note.txt (conflict {log[0].client} ")
            for rel, data in expected.items():
                assert await vault.read_bytes("/" + rel) == data
            assert {await vault.read_bytes("/shared/note.txt"), await vault.read_bytes("/" + conflicts[0])} == notes
            assert (await vault.verify(full=True)).ok

    asyncio.run(check())


# -- a server dies in the middle of an import ------------------------------------------------------


def test_server_killed_mid_import(own_place: Place, tmp_path: Path) -> None:
    place, server, home = own_place, own_place.server, tmp_path / "home"
    first = make_tree(tmp_path / "first", SMALL)
    ok(place, home, "create", "--kdf", "minimum", "--chunk-size", "1")
    ok(place, home, "import", str(tmp_path / "first"))
    if isinstance(server, AzuriteServer):
        # Azurite writes its blob index to disk only every ~5 s, so a SIGKILL forgets the newest
        # blobs (a real store does not). Stop it politely once, so generation 1 is on its disk.
        server.stop()
        server.start()
    big = make_tree(tmp_path / "big", {f"part{i:02}": 4 * MiB + i for i in range(10)})
    before = len(asyncio.run(stored_names(place.url, "o/")))

    # the first uploads go through; the rest wait at the gate, so the import cannot finish (or
    # commit) before the server is dead, however fast or busy the machine
    gate = Gate(tmp_path, allow=2)
    proc = subprocess.Popen(gate.cmd(*cli_cmd(place, "import", str(tmp_path / "big"))[3:]),
                            env=cli_env(place, home), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        gate.wait_held(proc)
        deadline = time.monotonic() + 60
        while len(asyncio.run(stored_names(place.url, "o/"))) < before + gate.allow:  # the ones let through land
            assert time.monotonic() < deadline, "the uploads let through the gate never arrived"
            time.sleep(0.05)
        server.kill()
        killed = time.monotonic()
        gate.release()  # the held uploads now meet a dead server
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == EXIT_UNREACHABLE, err
    line = one_line_error(err)
    assert place.host in line and "reach" in line, line
    assert took < 30, f"the import took {took:.1f} s to give up"

    server.start()
    assert generations(place, home) == [1, 0]  # still the previous generation, intact
    ok(place, home, "export", "/first", str(tmp_path / "out-first"))
    assert read_tree(tmp_path / "out-first") == first
    # Azurite has forgotten blobs it acknowledged in its last ~5 s, which the killed run's dedup
    # cache still lists as provisional: the re-run checks them and uploads them again.
    assert "→ generation 2" in ok(place, home, "import", str(tmp_path / "big"))  # the re-run completes
    ok(place, home, "export", "/big", str(tmp_path / "out-big"))
    assert read_tree(tmp_path / "out-big") == big
    assert json.loads(ok(place, home, "--json", "verify"))["ok"]


# -- wrong credentials, missing bucket -----------------------------------------------------------------


def wrong_credentials(place: Place, tmp: Path) -> dict[str, str]:
    if isinstance(place.server, SeaweedServer):
        return cloud_env(place.server, tmp, AWS_SECRET_ACCESS_KEY=secrets.token_urlsafe(24))
    wrong_key = base64.b64encode(os.urandom(64)).decode()
    return {"AZURE_STORAGE_CONNECTION_STRING": place.server.connection_string.replace(place.server.key, wrong_key)}


def test_wrong_credentials_fail_clearly(place: Place, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    create_vault(place.url)
    wrong = wrong_credentials(place, tmp_path)
    use_env(monkeypatch, wrong)
    secret = next(v for k, v in wrong.items() if k in ("AWS_SECRET_ACCESS_KEY", "AZURE_STORAGE_CONNECTION_STRING"))
    for attempt in (sigmavault.open(place.url, passphrase=PASS),
                    sigmavault.create(place.url, passphrase=PASS, kdf="minimum")):
        with pytest.raises(BackendAuthError) as info:
            asyncio.run(attempt)
        assert "credentials" in info.value.message and secret not in info.value.message
    place.env = wrong
    for args in (("log",), ("create", "--kdf", "minimum")):
        done = cli(place, tmp_path / "home", *args)
        assert done.returncode == EXIT_CREDENTIALS, done.stderr
        line = one_line_error(done.stderr)
        assert "credentials" in line and secret not in line


def test_missing_bucket_fails_clearly(place: Place, tmp_path: Path) -> None:
    missing = "svt-missing-" + secrets.token_hex(4)
    url = place.url_for(missing)
    for attempt in (sigmavault.open(url, passphrase=PASS), sigmavault.create(url, passphrase=PASS, kdf="minimum")):
        with pytest.raises(BackendError) as info:
            asyncio.run(attempt)
        assert not isinstance(info.value, BackendUnavailable | BackendAuthError)
        assert missing in info.value.message
    existing, place.url = place.url, url
    for args in (("log",), ("create", "--kdf", "minimum")):
        done = cli(place, tmp_path / "home", *args)
        assert done.returncode == EXIT_BACKEND, done.stderr
        assert missing in one_line_error(done.stderr)
    assert asyncio.run(stored_names(existing)) == []  # and nothing was written anywhere else


# -- nothing at the endpoint; a server that answered once ---------------------------------------------


def baseline(url: str) -> float:
    """Seconds ``open`` takes to learn there is no vault from a server that answers at once: the
    cost of starting a client on this machine now (a busy machine multiplies it)."""
    began = time.monotonic()
    with pytest.raises(VaultNotFound):
        asyncio.run(sigmavault.open(url, passphrase=PASS))
    return time.monotonic() - began


@pytest.mark.parametrize("kind", ["s3", "azure"])
def test_nothing_at_the_endpoint_fails_fast(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            request: pytest.FixtureRequest) -> None:
    """A wrong endpoint or a server not started: one line, exit 9, at once (no retry schedule,
    which took 11 s on S3), for the library and the command."""
    host = f"127.0.0.1:{free_ports(1)[0]}"  # nothing listens here
    if kind == "s3":
        live = place_on(request.getfixturevalue("s3_server"), tmp_path, monkeypatch)
        url = f"s3://vault/v?endpoint=http://{host}&path_style=true"
        env = cloud_env(live.server, tmp_path, AWS_ACCESS_KEY_ID="AKNOBODYHOME", AWS_SECRET_ACCESS_KEY="none")
    else:
        live = place_on(request.getfixturevalue("azure_server"), tmp_path, monkeypatch)
        url = "az://vault/v"
        env = {"AZURE_STORAGE_CONNECTION_STRING": (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://{host}/{AZURITE_ACCOUNT};")}
    usual = min(baseline(live.url) for _ in range(2))  # the first one also imports the SDK
    use_env(monkeypatch, env)
    for make in (lambda: sigmavault.create(url, passphrase=PASS, kdf="minimum"),
                 lambda: sigmavault.open(url, passphrase=PASS)):
        times = []
        for _ in range(2):  # the better of two: a busy machine may stall one of them for seconds
            began = time.monotonic()
            with pytest.raises(EndpointUnreachable) as info:  # which the retrying wrapper never retries
                asyncio.run(make())
            times.append(time.monotonic() - began)
            assert host in info.value.message and "nothing answers" in info.value.message
        assert min(times) < usual + 2, f"gave up after {times} s (an answering server: {usual:.1f} s)"
    dead = Place(live.server, "vault", url, env)
    for args in (("create", "--kdf", "minimum"), ("log",)):
        done = cli(dead, tmp_path / "home", *args)
        assert done.returncode == EXIT_UNREACHABLE, done.stderr
        line = one_line_error(done.stderr)
        assert host in line and "nothing answers" in line, line


def test_a_server_that_answered_once_is_retried_when_it_dies(own_place: Place) -> None:
    """Once the endpoint has answered, a refused connection is a restart in progress: retried."""
    sleeps: list[float] = []

    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    async def main() -> None:
        backend = RetryingBackend(open_backend(own_place.url, max_attempts=1), attempts=4, sleep=record)
        try:
            assert [n async for n in backend.list("k/")] == []  # the endpoint answers
            own_place.server.kill()
            with pytest.raises(BackendUnavailable) as info:
                await backend.head("k/0000000000000001")
            assert not isinstance(info.value, EndpointUnreachable), info.value
            assert len(sleeps) == 3  # every attempt was made
            own_place.server.start()
            if isinstance(own_place.server, AzuriteServer):
                own_place.server.create_container(own_place.namespace)  # Azurite forgets it when killed
            assert await backend.put_if_absent("l/after-restart", b"x") is True  # the same backend recovers
        finally:
            await backend.aclose()

    asyncio.run(main())


# -- create --create-bucket ------------------------------------------------------------------------


def test_create_bucket_makes_a_missing_bucket(place: Place, tmp_path: Path) -> None:
    existing, missing = place.url, "svt-new-" + secrets.token_hex(4)
    place.url = place.url_for(missing)
    done = cli(place, tmp_path / "home", "create", "--kdf", "minimum")
    assert done.returncode == EXIT_BACKEND, done.stderr
    line = one_line_error(done.stderr)
    assert missing in line and "--create-bucket" in line  # says how
    ok(place, tmp_path / "home", "create", "--kdf", "minimum", "--create-bucket")
    assert "c/0000000000000000" in asyncio.run(stored_names(place.url))  # the vault is in the new bucket
    # an existing bucket is used as it is: a second vault beside the first
    place.url = place.url.replace("/vault", "/second", 1)
    ok(place, tmp_path / "home2", "create", "--kdf", "minimum", "--create-bucket")
    assert "c/0000000000000000" in asyncio.run(stored_names(place.url))
    assert asyncio.run(stored_names(existing)) == []  # nothing written anywhere else


def test_create_bucket_without_the_right_to_fails_clearly(s3_server: SeaweedServer, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials that may read and write but not create buckets: one line that says so, exit 10;
    the same credentials work on a bucket that exists."""
    env = cloud_env(s3_server, tmp_path, AWS_ACCESS_KEY_ID=s3_server.limited_key,
                    AWS_SECRET_ACCESS_KEY=s3_server.limited_secret)
    missing = "svt-new-" + secrets.token_hex(4)
    place = Place(s3_server, missing, f"s3://{missing}/vault?endpoint={s3_server.endpoint}&path_style=true", env)
    use_env(monkeypatch, env)
    done = cli(place, tmp_path / "home", "create", "--kdf", "minimum", "--create-bucket")
    assert done.returncode == EXIT_CREDENTIALS, done.stderr
    line = one_line_error(done.stderr)
    assert missing in line and "may not create buckets" in line and s3_server.limited_secret not in line
    place.url = place.url_for(s3_server.new_bucket())
    ok(place, tmp_path / "home", "create", "--kdf", "minimum", "--create-bucket")


# -- transient failures inside the retrying wrapper ------------------------------------------------

FAULT_TREE = {**SMALL, **{f"many/file{i:02}": 700 * i for i in range(24)}, "five-mib": 5 * MiB + 3}


def inject(vault: sigmavault.Vault, every: int) -> FaultyBackend:
    """Make every ``every``-th call of each backend method fail (BackendUnavailable) below the retries."""
    retrying = next(b for b in layers(vault.backend) if isinstance(b, RetryingBackend))
    faulty = FaultyBackend(retrying.inner)
    faulty.fail("*", BackendUnavailable, every=every)
    retrying.inner = faulty  # the store, the history and the vault all share this one wrapper
    return faulty


async def import_tree(url: str, src: Path, every: int | None) -> FaultyBackend | None:
    """Create a vault at ``url``, put every file of ``src`` under /t, commit (faults after create)."""
    vault = await sigmavault.create(url, passphrase=PASS, kdf="minimum", chunk_size=MiB)
    async with vault:
        faulty = None if every is None else inject(vault, every)
        for path in sorted(src.rglob("*")):
            if path.is_file():
                await vault.put("/t/" + path.relative_to(src).as_posix(), str(path))
        assert await vault.commit() == 1
    return faulty


def test_transient_failures_are_retried_without_duplicates(place: Place, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "src", FAULT_TREE)
    server = place.server
    clean_url = place.url_for(server.new_bucket() if isinstance(server, SeaweedServer) else server.new_container())

    faulty = asyncio.run(import_tree(place.url, tmp_path / "src", every=3))
    assert faulty is not None and faulty.calls["put_if_absent"] >= 6  # faults did fire (every 3rd call)
    asyncio.run(import_tree(clean_url, tmp_path / "src", every=None))

    names = asyncio.run(stored_names(place.url))
    clean = asyncio.run(stored_names(clean_url))
    objects = [n for n in names if n.startswith("o/")]
    assert len(objects) == len(set(objects))
    assert len(objects) == len([n for n in clean if n.startswith("o/")])  # nothing stored twice, nothing lost
    assert sorted(n for n in names if not n.startswith("o/")) == sorted(n for n in clean if not n.startswith("o/"))

    async def read_back() -> None:  # and read it all back through failing calls too
        async with await sigmavault.open(place.url, passphrase=PASS) as vault:
            faulty = inject(vault, every=3)
            assert vault.generation == 1
            for rel, data in files.items():
                assert await vault.read_bytes("/t/" + rel) == data
            report = await vault.verify(full=True)  # every referenced object is there and intact
            assert report.ok and report.files == len(files)
            assert faulty.calls["get"] >= 6

    asyncio.run(read_back())


def test_rerun_after_uncommitted_uploads_vanished(place: Place, tmp_path: Path) -> None:
    """An import that never committed, whose uploads the store then lost (Azurite after a SIGKILL,
    or garbage collection of stale uncommitted uploads): a re-run must upload them again."""
    files = make_tree(tmp_path / "src", {"a": 2 * MiB + 5, "b": 40_000})
    create_vault(place.url)

    async def put_all(commit: bool) -> None:
        vault = await sigmavault.open(place.url, passphrase=PASS)
        try:
            for rel in files:
                await vault.put("/" + rel, str(tmp_path / "src" / rel))
            if commit:
                await vault.commit()
        finally:
            await vault.aclose()  # without commit: the run "crashed"

    asyncio.run(put_all(commit=False))
    uploaded = asyncio.run(stored_names(place.url, "o/"))
    assert uploaded

    async def lose(names: list[str]) -> None:
        backend = open_backend(place.url)
        try:
            for name in names:
                await backend.delete(name)
        finally:
            await backend.aclose()

    asyncio.run(lose(uploaded))
    asyncio.run(put_all(commit=True))

    async def check() -> None:
        async with await sigmavault.open(place.url, passphrase=PASS) as vault:
            assert (await vault.verify(full=True)).ok

    asyncio.run(check())
