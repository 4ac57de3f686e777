"""Local state (pin and high-water marks, CRYPTO.md §5.3) and the device-secret file, on real files."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sigmavault.engine.errors import AlreadyExists, AuthError, IntegrityError, LocalIOError
from sigmavault.engine.format.canonical import b64u, unb64u
from sigmavault.engine.keys.schedule import expand
from sigmavault.engine.keys.secret import Secret
from sigmavault.engine.local import localstate
from sigmavault.engine.local.localstate import LocalState

KEY = Secret(expand(b"\xbb" * 32, "local-state"), "local-state key")
STATE = LocalState(
    vault_id=bytes(range(32)),
    fingerprint=bytes.fromhex("7d91cfb9d4e6915487fab4fccd6b7cba"),
    keystore_gen=3,
    max_epoch=1,
    max_gen=17,
    head_hash=b"\x42" * 32,
    client_id=b"\x09" * 16,
)


def test_local_state_key_kat(kat: dict[str, object]) -> None:
    assert KEY.reveal().hex() == kat["local_state_key"]


def test_roundtrip_and_layout() -> None:
    data = localstate.encode(STATE, KEY)
    assert data.startswith(b'{"payload":"')
    assert localstate.decode(data, KEY) == STATE
    assert localstate.peek(data) == STATE
    payload = json.loads(unb64u(json.loads(data)["payload"]))
    assert list(payload) == sorted(payload)  # canonical JSON
    assert payload["format"] == "vault-local-state/v1"


def test_new_state_has_no_head_and_random_client() -> None:
    a = LocalState.new(STATE.vault_id, STATE.fingerprint, 1, 1)
    b = LocalState.new(STATE.vault_id, STATE.fingerprint, 1, 1)
    assert a.max_gen is None and a.head_hash is None and a.client_id != b.client_id
    assert localstate.decode(localstate.encode(a, KEY), KEY) == a


def test_wrong_key_is_integrity_error() -> None:
    data = localstate.encode(STATE, KEY)
    with pytest.raises(IntegrityError):
        localstate.decode(data, Secret(b"\x00" * 32))


def test_edited_state_is_integrity_error() -> None:
    outer = json.loads(localstate.encode(STATE, KEY))
    payload = json.loads(unb64u(outer["payload"]))
    payload["max_gen"] = 5  # roll back the high-water mark
    forged = json.dumps({"payload": b64u(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()),
                         "mac": outer["mac"]}).encode()
    assert localstate.peek(forged).max_gen == 5  # peek does not authenticate...
    with pytest.raises(IntegrityError):  # ...decode does
        localstate.decode(forged, KEY)


def test_half_set_head_is_rejected() -> None:
    outer = json.loads(localstate.encode(STATE, KEY))
    payload = json.loads(unb64u(outer["payload"]))
    payload["head_hash"] = None
    data = json.dumps({"payload": b64u(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()),
                       "mac": outer["mac"]}).encode()
    with pytest.raises(IntegrityError):
        localstate.peek(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_end_in_integrity_error(data: bytes) -> None:
    with pytest.raises(IntegrityError):
        localstate.decode(data, KEY)


@settings(max_examples=200, deadline=None)
@given(pos=st.integers(min_value=0), bit=st.integers(0, 7))
def test_any_bit_flip_is_detected(pos: int, bit: int) -> None:
    data = bytearray(localstate.encode(STATE, KEY))
    data[pos % len(data)] ^= 1 << bit
    try:
        state = localstate.decode(bytes(data), KEY)
    except IntegrityError:
        return
    assert state == STATE  # only a flip that base64/JSON ignores could pass, and it must change nothing


def test_save_and_load_file(tmp_path: Path) -> None:
    path = tmp_path / "vaults" / "abc" / "state.json"
    assert localstate.load(path, KEY) is None
    assert localstate.load_unverified(path) is None
    localstate.save(path, STATE, KEY)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert localstate.load(path, KEY) == STATE
    assert localstate.load_unverified(path) == STATE
    newer = replace(STATE, max_gen=18, head_hash=b"\x43" * 32)
    localstate.save(path, newer, KEY)
    assert localstate.load(path, KEY) == newer
    assert sorted(os.listdir(path.parent)) == ["state.json"]  # no temp files left behind


def test_corrupt_file_is_integrity_error(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    localstate.save(path, STATE, KEY)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(IntegrityError):
        localstate.load(path, KEY)
    path.write_bytes(b"x" * (localstate.MAX_FILE + 1))
    with pytest.raises(IntegrityError):
        localstate.load(path, KEY)


def test_unwritable_directory_is_local_io_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        blocker = tmp_path / "file"
        blocker.write_bytes(b"")
        path = blocker / "state.json"  # a file where a directory should be: fails even for root
    else:
        tmp_path.chmod(0o500)
        path = tmp_path / "state.json"
    with pytest.raises(LocalIOError):
        localstate.save(path, STATE, KEY)


def test_device_secret_file(tmp_path: Path) -> None:
    path = tmp_path / "config" / "device.key"
    with pytest.raises(AuthError):
        localstate.read_device_secret(path)
    made = localstate.create_device_secret(path)
    assert len(made) == 32 and path.read_bytes() == made.reveal()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert localstate.read_device_secret(path) == made
    with pytest.raises(AlreadyExists):
        localstate.create_device_secret(path)
    assert localstate.create_device_secret(tmp_path / "other.key") != made


def test_device_secret_file_checks(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    localstate.create_device_secret(path)
    path.chmod(0o644)
    with pytest.raises(LocalIOError):
        localstate.read_device_secret(path)
    path.chmod(0o600)
    path.write_bytes(b"\x00" * 31)
    with pytest.raises(LocalIOError):
        localstate.read_device_secret(path)
    path.write_bytes(b"\x00" * 33)
    with pytest.raises(LocalIOError):
        localstate.read_device_secret(path)
