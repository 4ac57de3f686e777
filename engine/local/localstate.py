"""Per-vault local state (pin and high-water marks, CRYPTO.md §5.3) and the device-secret file.

The one engine module that touches local files, and only these two small ones. Its functions
block (fsync): async callers run them with ``asyncio.to_thread``. Byte layout of the state file::

    file = {"payload":"<b64u(S)>","mac":"<b64u(HMAC-SHA256(K_ls, "vault/v1/local-state\\0" ‖ S))>"}
    S    = canonical JSON {"client_id":"<16 B>","fingerprint":"<16 B>","format":"vault-local-state/v1",
                           "head_hash":"<32 B>"|null,"keystore_gen":kg,"max_epoch":e,"max_gen":g|null,
                           "vault_id":"<32 B>"}
    K_ls = Expand(VAK, "local-state")

``max_gen`` and ``head_hash`` are null together until a commit has been seen. The pin is needed
before the vault is unlocked (it authenticates the keystore) but the MAC key comes from the
VAK, so :func:`peek` reads the state unverified for the pin and :func:`decode` verifies it once
the key is known; a mismatch is an IntegrityError. The local disk is trusted; the MAC catches
corruption and mix-ups. Writes go to a temp file (mode 0600), fsync, rename, fsync the directory.
The device secret is 32 raw bytes in its own file, mode 0600, never uploaded.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import AlreadyExists, AuthError, IntegrityError, LocalIOError
from ..format.canonical import b64u, dumps, fail, integer, loads, obj, string, unb64u
from ..keys.secret import Secret

FORMAT = "vault-local-state/v1"
MAC_LABEL = b"vault/v1/local-state\x00"
MAX_FILE = 64 * 1024
DEVICE_SECRET_LEN = 32


@dataclass(frozen=True, slots=True)
class LocalState:
    vault_id: bytes
    fingerprint: bytes
    keystore_gen: int
    max_epoch: int
    max_gen: int | None
    head_hash: bytes | None
    client_id: bytes

    def __post_init__(self) -> None:
        if (self.max_gen is None) != (self.head_hash is None):
            raise ValueError("max_gen and head_hash are set together")

    @classmethod
    def new(cls, vault_id: bytes, fingerprint: bytes, keystore_gen: int, max_epoch: int) -> LocalState:
        """First contact with a vault: a fresh random client id, no commit seen yet."""
        return cls(vault_id, fingerprint, keystore_gen, max_epoch, None, None, secrets.token_bytes(16))


def _payload(state: LocalState) -> bytes:
    return dumps(
        {
            "format": FORMAT,
            "vault_id": b64u(state.vault_id),
            "fingerprint": b64u(state.fingerprint),
            "keystore_gen": state.keystore_gen,
            "max_epoch": state.max_epoch,
            "max_gen": state.max_gen,
            "head_hash": None if state.head_hash is None else b64u(state.head_hash),
            "client_id": b64u(state.client_id),
        }
    )


def _mac(key: Secret, payload: bytes) -> bytes:
    return hmac.digest(key.reveal(), MAC_LABEL + payload, "sha256")


def encode(state: LocalState, key: Secret) -> bytes:
    payload = _payload(state)
    return b'{"payload":"' + b64u(payload).encode() + b'","mac":"' + b64u(_mac(key, payload)).encode() + b'"}'


def _split(data: bytes) -> tuple[bytes, bytes, LocalState]:
    outer = obj(loads(data, MAX_FILE), {"payload", "mac"})
    payload = unb64u(outer["payload"])
    mac = unb64u(outer["mac"], 32)
    fields = {"format", "vault_id", "fingerprint", "keystore_gen", "max_epoch", "max_gen", "head_hash", "client_id"}
    v = obj(loads(payload, MAX_FILE), fields)
    if string(v["format"], 64) != FORMAT:
        fail("format")
    max_gen = None if v["max_gen"] is None else integer(v["max_gen"])
    head = None if v["head_hash"] is None else unb64u(v["head_hash"], 32)
    if (max_gen is None) != (head is None):
        fail("head")
    state = LocalState(
        vault_id=unb64u(v["vault_id"], 32),
        fingerprint=unb64u(v["fingerprint"], 16),
        keystore_gen=integer(v["keystore_gen"]),
        max_epoch=integer(v["max_epoch"], 0, 0xFFFFFFFF),
        max_gen=max_gen,
        head_hash=head,
        client_id=unb64u(v["client_id"], 16),
    )
    return payload, mac, state


def peek(data: bytes) -> LocalState:
    """Strict parse WITHOUT the MAC: only for taking the pin before unlock; call :func:`decode` after."""
    return _split(data)[2]


def decode(data: bytes, key: Secret) -> LocalState:
    """Strict parse and MAC check (constant time). IntegrityError on any failure."""
    payload, mac, state = _split(data)
    if not hmac.compare_digest(_mac(key, payload), mac):
        fail("local state mac")
    return state


# --- files -------------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_private(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``: temp file 0600 → fsync → rename → fsync dir."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def save(path: Path, state: LocalState, key: Secret) -> None:
    """Write the MAC'd state atomically (mode 0600). Raises LocalIOError."""
    try:
        _write_private(path, encode(state, key))
    except OSError as exc:
        raise LocalIOError(f"cannot write the local vault state {path}: {exc.strerror}") from exc


def _read(path: Path, limit: int) -> bytes | None:
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LocalIOError(f"cannot read {path}: {exc.strerror}") from exc
    if len(data) > limit:
        fail("too large")
    return data


def load(path: Path, key: Secret) -> LocalState | None:
    """The verified state, or None if there is none yet. IntegrityError if corrupt; LocalIOError."""
    data = _read(path, MAX_FILE)
    return None if data is None else decode(data, key)


def load_unverified(path: Path) -> LocalState | None:
    """The state without its MAC check (for the pin before unlock), or None if there is none."""
    data = _read(path, MAX_FILE)
    return None if data is None else peek(data)


def create_device_secret(path: Path, what: str = "device secret") -> Secret:
    """Generate a 32-byte device secret (``what``: the device key too) into a new file (mode 0600).
    AlreadyExists if present."""
    secret = Secret(secrets.token_bytes(DEVICE_SECRET_LEN), what)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise AlreadyExists(f"a {what} already exists at {path}") from exc
    except OSError as exc:
        raise LocalIOError(f"cannot create the {what} {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secret.reveal())
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(path.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            path.unlink()
        raise LocalIOError(f"cannot write the {what} {path}: {exc.strerror}") from exc
    return secret


def read_device_secret(path: Path, what: str = "device secret") -> Secret:
    """Read the device secret (``what``: or the device key).

    AuthError if missing (a missing credential); LocalIOError if others can read it or it is not 32 bytes.
    """
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        needed = " (needed as the second factor)" if what == "device secret" else ""
        raise AuthError(f"this device has no {what} at {path}{needed}") from exc
    except OSError as exc:
        raise LocalIOError(f"cannot read the {what} {path}: {exc.strerror}") from exc
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise LocalIOError(f"the {what} {path} is accessible by other users; run: chmod 600 {path}")
    try:
        data = _read(path, DEVICE_SECRET_LEN)
    except IntegrityError as exc:
        raise LocalIOError(f"the {what} {path} is not 32 bytes") from exc
    if data is None or len(data) != DEVICE_SECRET_LEN:
        raise LocalIOError(f"the {what} {path} is not 32 bytes")
    return Secret(data, what)
