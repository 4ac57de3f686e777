"""Regression tests for what fuzzing the parsers found (fuzz/README.md lists each finding).

Each input here once made a parser of provider- or co-writer-controlled bytes raise something
other than a VaultError (a crash with a traceback and exit 1), or accept a value that every
later write would choke on.
"""

from __future__ import annotations

import contextlib
import json
import time

import pytest

from sigmavault.engine.errors import IntegrityError, UsageError
from sigmavault.engine.format import canonical, commits
from sigmavault.engine.format.pages import BlobRef
from sigmavault.engine.keys import keystore, xwing
from sigmavault.engine.keys.credentials import Passphrase, Pin
from sigmavault.engine.keys.slots import MINIMUM


@pytest.fixture(scope="module")
def made() -> keystore.Written:
    written, _ = keystore.create(Passphrase.of("pw for the fuzz findings"), profile=MINIMUM)
    return written


def _cowriter_relabels(w: keystore.Written, label: str) -> bytes:
    """A keystore a co-writer (who holds the KSK) wrote with ``label`` on the first slot, MAC'd.

    ``json.dumps`` with its default ASCII escapes is how a hostile writer gets a lone surrogate in.
    """
    u = w.vault
    slot_list = [s.to_json() for s in u.slots]
    slot_list[0]["label"] = label
    payload = json.dumps({
        "format": keystore.FORMAT, "vault_id": canonical.b64u(u.vault_id), "generation": u.generation,
        "slots": slot_list, "keyring": json.loads(canonical.unb64u(json.loads(w.data)["payload"]))["keyring"],
    }, sort_keys=True, separators=(",", ":")).encode()
    mac = keystore._mac(u.ksk, payload)
    return b'{"payload":"' + canonical.b64u(payload).encode() + b'","mac":"' + canonical.b64u(mac).encode() + b'"}'


def test_canonical_loads_refuses_a_lone_surrogate() -> None:
    # found by fuzz_canonical: "\ud800" parses to a str with no UTF-8 form; the canonical check crashed
    with pytest.raises(IntegrityError):
        canonical.loads(b'"\\ud800"', canonical=True)
    with pytest.raises(IntegrityError):
        canonical.string(canonical.loads(b'"\\udcff"'))
    assert canonical.string(canonical.loads(b'"\\ud83d\\ude00"')) == "\U0001f600"  # a real pair is text


def test_canonical_loads_deep_nesting_ends_in_integrity_error() -> None:
    # The parser and the canonical re-encoder hit the recursion limit at slightly different depths:
    # a document just shallow enough to parse made the re-encode raise RecursionError.
    for depth in range(700, 1100):
        with contextlib.suppress(IntegrityError):
            canonical.loads(b"[" * depth + b"]" * depth, canonical=True)


@pytest.mark.parametrize("label", ["\ud800", "a\udcffb", "\x1b[2J\x1b[31mclick here", "tab\there", "\x9b31m"])
def test_keystore_slot_label_must_be_printable_text(made: keystore.Written, label: str) -> None:
    # A lone surrogate used to be accepted, and then every key operation crashed re-encoding the
    # keystore (UnicodeEncodeError, a traceback); control characters reached the terminal in `key list`.
    data = _cowriter_relabels(made, label)
    pin = Pin(made.vault.fingerprint, made.vault.generation)
    with pytest.raises(IntegrityError):
        keystore.unlock_with_ksk(data, made.name, made.vault.ksk, pin)
    with pytest.raises(IntegrityError):
        keystore.list_slots(data, made.name)


def test_keystore_printable_label_from_a_cowriter_still_opens(made: keystore.Written) -> None:
    data = _cowriter_relabels(made, "Ünïcode label 🔑")
    pin = Pin(made.vault.fingerprint, made.vault.generation)
    assert keystore.unlock_with_ksk(data, made.name, made.vault.ksk, pin).slots[0].label == "Ünïcode label 🔑"


@pytest.mark.parametrize("label", ["\udcff", "bell\x07"])
def test_new_slot_label_must_be_printable_text(made: keystore.Written, label: str) -> None:
    # `key add --label $'\xff'`: argv decodes with surrogateescape; writing the keystore crashed
    pk = xwing.public_key(xwing.generate())
    with pytest.raises(UsageError):
        keystore.add_device(made.vault, pk, label)


def _commit_body(time_field: bytes) -> bytes:
    root = BlobRef(1, 2, bytes(32), "o/" + "ab" * 32, 0, 10, None)
    body = commits.encode_commit(commits.Commit(bytes(32), 1, bytes(32), 1, 1, (root,), bytes(16), 1))
    return body.replace(b'"time":1', b'"time":' + time_field)


def test_commit_time_is_one_every_reader_can_show() -> None:
    # A co-writer's commit with "time": 2**62 was accepted; `sigmavault log` then failed on the
    # whole history (time.gmtime: "Value too large"), an unexpected error with exit 1.
    for bad in (b"4611686018427387904", b"253402300800", b"9223372036854775807"):
        with pytest.raises(IntegrityError):
            commits.decode_commit(_commit_body(bad))
    last = commits.decode_commit(_commit_body(str(commits.MAX_TIME).encode()))
    assert time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last.time)) == "9999-12-31T23:59:59Z"
