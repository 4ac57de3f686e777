"""Write-only clients in the keys layer (issue 18): writer slots, keyring tombstones, writer credentials."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from vaulttools import PASS, new_vault, object_files, reopen

import sigmavault
from sigmavault.engine.errors import AuthError, IntegrityError, UsageError
from sigmavault.engine.format import aead as chunked
from sigmavault.engine.format.canonical import b64u, dumps
from sigmavault.engine.format.envelope import KINDS, Sealer, context
from sigmavault.engine.keys import keystore, ksfile, sign, xwing
from sigmavault.engine.keys.credentials import Passphrase, Pin, XwingKey
from sigmavault.engine.keys.keyring import Keyring, fingerprint
from sigmavault.engine.keys.params import Dispersal, Params
from sigmavault.engine.keys.schedule import EpochKeys
from sigmavault.engine.keys.secret import Secret
from sigmavault.engine.keys.slots import MINIMUM, WriterSlot
from sigmavault.engine.keys.writers import CREDENTIAL_FORMAT, Writer, WriterCredential, normalize_prefix

PW = Passphrase.of("correct horse battery staple")


@pytest.fixture(scope="module")
def base() -> keystore.Written:
    written, _ = keystore.create(PW, profile=MINIMUM)
    return written


@pytest.fixture(scope="module")
def with_writer(base: keystore.Written) -> tuple[keystore.Written, WriterCredential]:
    return keystore.add_writer(base.vault, "web-1", "/web-1")


def payload(data: bytes) -> dict[str, Any]:
    raw = json.loads(data)["payload"]
    doc: dict[str, Any] = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    return doc


def with_payload(data: bytes, p: dict[str, Any]) -> bytes:
    """A new payload under the old MAC (what a storage provider could do)."""
    mac: str = json.loads(data)["mac"]
    return b'{"payload":"' + b64u(dumps(p)).encode() + b'","mac":"' + mac.encode() + b'"}'


def reopen_ks(w: keystore.Written) -> keystore.Unlocked:
    return keystore.unlock(w.data, w.name, PW, Pin(w.vault.fingerprint, w.vault.generation))


# --- prefixes ------------------------------------------------------------------------------------


def test_normalize_prefix_keeps_one_form() -> None:
    assert normalize_prefix("/web-1") == "/web-1"
    assert normalize_prefix("/web-1/") == "/web-1"
    assert normalize_prefix("/srv/web 1/é") == "/srv/web 1/é"


@pytest.mark.parametrize("bad", ["/", "", "a", "web-1/", "/a/../b", "/a/./b", "/a//b", "//", "/a//", "/..", "/.",
                                 "/a\x00b", "/a\x1bb", "/a\x9bb", "/\ud800", "/" + "x" * 4096])
def test_normalize_prefix_refuses_hostile_paths(bad: str) -> None:
    with pytest.raises(UsageError, match="writer's folder"):
        normalize_prefix(bad)


# --- adding, the keystore and the keyring -----------------------------------------------------------


def test_vault_without_writers_stays_v1(base: keystore.Written) -> None:
    assert payload(base.data)["format"] == "vault-keystore/v1"
    assert b"writers" not in base.vault.keyring.to_bytes()
    assert base.vault.writers == ()


def test_add_writer_makes_a_v2_keystore_with_slot_and_keyring_entry(
        with_writer: tuple[keystore.Written, WriterCredential]) -> None:
    w, cred = with_writer
    assert w.name == "k/0000000000000002" and payload(w.data)["format"] == "vault-keystore/v2"
    u = reopen_ks(w)
    (writer,) = u.writers
    assert (writer.id, writer.label, writer.prefix, writer.state) == (cred.writer_id, "web-1", "/web-1", "active")
    assert writer.verify_key == cred.verify_key == sign.verify_key(cred.signing)
    assert writer.key == cred.key
    slot = [s for s in u.slots if isinstance(s, WriterSlot)]
    assert slot == [WriterSlot(cred.writer_id, "web-1", "/web-1")]
    assert slot[0].to_json() == {"id": b64u(cred.writer_id), "type": "writer", "label": "web-1", "prefix": "/web-1"}
    info = [i for i in u.list_slots() if i.type == "writer"]
    assert [(i.id, i.kind, i.label, i.prefix) for i in info] == [(cred.writer_id, None, "web-1", "/web-1")]
    assert keystore.list_slots(w.data, w.name) == u.list_slots()
    # the credential: this vault, this epoch, the epoch's drop public key
    assert (cred.vault_id, cred.fingerprint, cred.epoch, cred.params) == (u.vault_id, u.fingerprint, 1, u.params)
    assert cred.drop_pk == u.drop_public_key() == u.drop_public_key(1)
    assert cred.drop_pk == xwing.public_key(u.epoch_keys().drop_kem)  # type: ignore[arg-type]
    assert len(cred.drop_pk) == 1216 and len(cred.signing) == 64 and len(cred.key) == 32


def test_writer_slot_never_unlocks_and_is_never_a_candidate(
        with_writer: tuple[keystore.Written, WriterCredential]) -> None:
    w, cred = with_writer
    _, opened = keystore.open_slots(keystore.parse(w.data, w.name), PW)
    assert opened.type == "argon2id"
    signing = cred.signing.reveal()
    for seed in (cred.key, Secret(signing[:32]), Secret(signing[32:])):
        with pytest.raises(AuthError):
            keystore.unlock(w.data, w.name, XwingKey(seed), Pin(w.vault.fingerprint))


def test_reprs_show_no_secret(with_writer: tuple[keystore.Written, WriterCredential]) -> None:
    w, cred = with_writer
    (writer,) = w.vault.writers
    for text in (repr(cred), repr(writer), repr(w.vault), str(cred)):
        for secret in (cred.key.reveal(), cred.signing.reveal(), cred.signing.reveal()[32:]):
            assert secret.hex() not in text and b64u(secret) not in text
        assert "redacted" in text or "Secret" not in text


def test_two_writers_and_the_limits(with_writer: tuple[keystore.Written, WriterCredential]) -> None:
    w, _ = with_writer
    w2, _ = keystore.add_writer(w.vault, "db", "/srv/db")
    assert [x.prefix for x in reopen_ks(w2).writers] == ["/web-1", "/srv/db"]
    for label, prefix in [("x", "/"), ("x", "relative"), ("x", "/a/../b"), ("bad\x1b[2J", "/ok"), ("y" * 300, "/ok")]:
        with pytest.raises(UsageError):
            keystore.add_writer(w2.vault, label, prefix)
    full = replace(w2.vault, keyring=replace(w2.vault.keyring, writers=w2.vault.writers * 32))
    with pytest.raises(UsageError, match="at most 64 writers"):
        keystore.add_writer(full, "one more", "/more")


def test_dispersed_vault_refuses_writers(base: keystore.Written) -> None:
    spread = Params(dispersal=Dispersal(2, (b"a" * 16, b"b" * 16, b"c" * 16, b"d" * 16)))
    assert spread.valid()
    u = replace(base.vault, keyring=replace(base.vault.keyring, params=spread))
    with pytest.raises(UsageError, match="not supported on dispersed vaults yet"):
        keystore.add_writer(u, "web-1", "/web-1")


# --- removal: a tombstone -------------------------------------------------------------------------


def test_remove_writer_keeps_a_tombstone_and_v2(with_writer: tuple[keystore.Written, WriterCredential]) -> None:
    w, cred = with_writer
    gone = keystore.remove_slot(w.vault, cred.writer_id)
    assert payload(gone.data)["format"] == "vault-keystore/v2"
    u = reopen_ks(gone)
    assert not any(isinstance(s, WriterSlot) for s in u.slots)
    (tomb,) = u.writers
    assert (tomb.id, tomb.state, tomb.verify_key, tomb.key) == (cred.writer_id, "removed", cred.verify_key, cred.key)
    assert [i.type for i in u.list_slots()] == ["argon2id", "xwing"]
    # a new writer after a tombstone: both kept
    again, cred2 = keystore.add_writer(u, "web-1", "/web-1")
    assert [(x.id, x.state) for x in reopen_ks(again).writers] == [(cred.writer_id, "removed"),
                                                                    (cred2.writer_id, "active")]


def test_writer_slots_do_not_count_for_the_last_slot_rule(
        with_writer: tuple[keystore.Written, WriterCredential]) -> None:
    w, cred = with_writer
    recovery = next(s.id for s in w.vault.slots if s.type == "xwing")
    only_pass = keystore.remove_slot(w.vault, recovery).vault  # passphrase + writer remain
    assert len(only_pass.slots) == 2
    fake = replace(only_pass, opened_slot=b"")  # e.g. opened through the agent: not the "opened" rule
    with pytest.raises(UsageError, match="last key slot"):
        keystore.remove_slot(fake, only_pass.slots[0].id)
    with pytest.raises(UsageError, match="used to unlock"):
        keystore.remove_slot(only_pass, only_pass.opened_slot)
    assert keystore.remove_slot(only_pass, cred.writer_id).vault.slots == (only_pass.slots[0],)


# --- the keystore MAC and the v2 rules ------------------------------------------------------------


def test_mac_covers_writer_slots(with_writer: tuple[keystore.Written, WriterCredential]) -> None:
    w, _ = with_writer
    for field, value in [("label", "web-2"), ("prefix", "/"), ("prefix", "/web-2")]:
        p = payload(w.data)
        slot = next(s for s in p["slots"] if s["type"] == "writer")
        slot[field] = value
        with pytest.raises(IntegrityError):
            keystore.unlock(with_payload(w.data, p), w.name, PW)
    # one byte of the label flipped in the stored bytes (the payload's base64 re-encoded)
    p = payload(w.data)
    raw = dumps(p).replace(b'"label":"web-1"', b'"label":"web-3"')
    mac: str = json.loads(w.data)["mac"]
    flipped = b'{"payload":"' + b64u(raw).encode() + b'","mac":"' + mac.encode() + b'"}'
    with pytest.raises(IntegrityError):
        keystore.unlock(flipped, w.name, PW)


def _rewrite(u: keystore.Unlocked, slot_list: tuple[Any, ...], ring: Keyring, version: int) -> bytes:
    """A keystore correctly MAC'd and sealed by the vault's own key (a buggy or hostile writer of keystores)."""
    from sigmavault.engine.keys.keyring import seal_keyring

    return ksfile.encode(u.ksk, u.vault_id, ring.generation, slot_list, seal_keyring(u.ksk, ring), version)


def test_v2_rules_after_unlock(with_writer: tuple[keystore.Written, WriterCredential]) -> None:
    w, cred = with_writer
    u = w.vault
    ring = u.keyring
    plain = tuple(s for s in u.slots if not isinstance(s, WriterSlot))
    tomb = replace(ring, writers=tuple(replace(x, state="removed") for x in ring.writers))
    cases = [
        (u.slots, ring, 1),  # writer slot in v1: refused at parse
        (plain, replace(ring, writers=()), 2),  # v2 without writers
        (plain, ring, 2),  # an active writer without its slot
        (u.slots, tomb, 2),  # a slot for a removed writer
        (plain + (WriterSlot(cred.writer_id, "other", "/web-1"),), ring, 2),  # label differs
        (plain + (WriterSlot(cred.writer_id, "web-1", "/web-2"),), ring, 2),  # prefix differs
        (plain + (WriterSlot(b"\x01" * 16, "web-1", "/web-1"),), ring, 2),  # id differs
        (plain, ring, 1),  # writers in the keyring of a v1 keystore
    ]
    for slot_list, r, version in cases:
        data = _rewrite(u, slot_list, r, version)
        with pytest.raises(IntegrityError):
            keystore.unlock(data, w.name, PW)
        with pytest.raises(IntegrityError):
            keystore.unlock_with_ksk(data, w.name, u.ksk, Pin(u.fingerprint))
    # the control: the same path with consistent data opens
    assert keystore.unlock(_rewrite(u, plain, tomb, 2), w.name, PW).writers == tomb.writers


def test_newer_format_asks_for_an_upgrade(with_writer: tuple[keystore.Written, WriterCredential],
                                          base: keystore.Written, monkeypatch: pytest.MonkeyPatch) -> None:
    w, _ = with_writer
    p = payload(base.data)
    p["format"] = "vault-keystore/v3"
    with pytest.raises(UsageError, match="format v3, which needs a newer sigmavault; upgrade"):
        keystore.unlock(with_payload(base.data, p), base.name, PW)
    # an older client that knows only v1 meets a vault with writers
    monkeypatch.setattr(ksfile, "SUPPORTED", (1,))
    with pytest.raises(UsageError, match="this vault uses format v2, which needs a newer sigmavault; upgrade"):
        keystore.unlock(w.data, w.name, PW)
    assert keystore.unlock(base.data, base.name, PW).generation == 1  # v1 still opens there


async def test_older_client_meets_a_v2_vault_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = tmp_path / "v"
    async with await new_vault(url) as v:
        await v.keys.add_writer("web-1", "/web-1")
    monkeypatch.setattr(ksfile, "SUPPORTED", (1,))
    with pytest.raises(UsageError) as caught:
        await reopen(url)
    assert caught.value.message == "this vault uses format v2, which needs a newer sigmavault; upgrade"


# --- the writer keyring entry ---------------------------------------------------------------------


def test_writer_json_round_trip_and_strictness(with_writer: tuple[keystore.Written, WriterCredential]) -> None:
    w, _ = with_writer
    (writer,) = w.vault.writers
    doc = writer.to_json()
    again = Writer.from_json(json.loads(dumps(doc)))
    assert again == writer
    bad = [
        dict(doc, extra=1),
        {k: v for k, v in doc.items() if k != "key"},
        dict(doc, state="revoked"),
        dict(doc, state="Active"),
        dict(doc, id=b64u(b"x" * 15)),
        dict(doc, key=b64u(b"x" * 31)),
        dict(doc, verify_key=b64u(writer.verify_key[:-1])),
        dict(doc, verify_key=b64u(writer.verify_key + b"\x00")),
        dict(doc, prefix="/"),
        dict(doc, prefix="/a/"),
        dict(doc, prefix="/a/../b"),
        dict(doc, prefix="a"),
        dict(doc, prefix="/a\x00b"),
        dict(doc, label="\x1b[31m"),
        dict(doc, label=7),
    ]
    for d in bad:
        with pytest.raises(IntegrityError):
            Writer.from_json(d)


def test_keyring_writers_strictness(with_writer: tuple[keystore.Written, WriterCredential]) -> None:
    w, _ = with_writer
    ring = w.vault.keyring
    assert Keyring.from_bytes(ring.to_bytes()).writers == ring.writers
    doc = json.loads(ring.to_bytes())
    for writers in ([], [doc["writers"][0]] * 2, {"a": 1}, [doc["writers"][0]] * 65):
        with pytest.raises(IntegrityError):
            Keyring.from_bytes(dumps(dict(doc, writers=writers)))


# --- the credential file ------------------------------------------------------------------------------


def test_credential_round_trip(with_writer: tuple[keystore.Written, WriterCredential]) -> None:
    _, cred = with_writer
    data = cred.to_bytes()
    assert json.loads(data)["format"] == CREDENTIAL_FORMAT == "sigmavault-writer/v1"
    again = WriterCredential.from_bytes(data)
    assert again == cred and again.to_bytes() == data
    assert again.verify_key == cred.verify_key


def _cred_doc(cred: WriterCredential) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(cred.to_bytes())
    return doc


def test_credential_strict_parse(with_writer: tuple[keystore.Written, WriterCredential]) -> None:
    _, cred = with_writer
    doc = _cred_doc(cred)
    pk = bytearray(cred.drop_pk)
    pk[:1184] = b"\xff" * 1184  # ML-KEM coefficients out of range
    spread = dict(doc["params"], dispersal={"needed": 2, "places": [b64u(bytes([i]) * 16) for i in range(4)]})
    bad = [
        dict(doc, extra=1),
        {k: v for k, v in doc.items() if k != "signing"},
        dict(doc, vault_id=b64u(b"v" * 31)),
        dict(doc, fingerprint=b64u(b"f" * 17)),
        dict(doc, writer_id=b64u(b"w" * 15)),
        dict(doc, signing=b64u(b"s" * 32)),
        dict(doc, key=b64u(b"k" * 33)),
        dict(doc, drop_pk=b64u(cred.drop_pk[:-1])),
        dict(doc, drop_pk=b64u(bytes(pk))),
        dict(doc, epoch=0),
        dict(doc, epoch="1"),
        dict(doc, epoch=1 << 32),
        dict(doc, prefix="/"),
        dict(doc, prefix="/a/../b"),
        dict(doc, prefix="a"),
        dict(doc, prefix="/a\x00b"),
        dict(doc, label="\x07bell"),
        dict(doc, params=dict(doc["params"], chunk_size=3)),
        dict(doc, params=spread),
        dict(doc, params=dict(doc["params"], extra=1)),
    ]
    for d in bad:
        with pytest.raises(IntegrityError):
            WriterCredential.from_bytes(dumps(d))
    for raw in (b"", b"\xff", b"[]", b"{}", b'{"format":1}', dumps(doc)[:-1], b" " * (2 << 20)):
        with pytest.raises(IntegrityError):
            WriterCredential.from_bytes(raw)


def test_credential_of_another_kind_or_newer(with_writer: tuple[keystore.Written, WriterCredential]) -> None:
    _, cred = with_writer
    doc = _cred_doc(cred)
    with pytest.raises(UsageError, match=r"^this writer credential was made by a newer sigmavault"):
        WriterCredential.from_bytes(dumps(dict(doc, format="sigmavault-writer/v2")))
    for other in ("vault-keystore/v1", "sigmavault-writer/v0", "something"):
        with pytest.raises(UsageError, match=r"^this file is not a sigmavault writer credential$"):
            WriterCredential.from_bytes(dumps(dict(doc, format=other)))


# --- a writer credential holds no key that reads the vault -----------------------------------------------


def _secrets_in(cred: WriterCredential) -> list[bytes]:
    signing = cred.signing.reveal()
    out = [cred.key.reveal(), signing[:32], signing[32:]]
    raw = cred.to_bytes()  # and every 32-byte window of every secret field, decoded
    for name in ("key", "signing"):
        value = base64.urlsafe_b64decode(json.loads(raw)[name] + "==")
        out += [value[i:i + 32] for i in range(0, len(value) - 31)]
    return out


async def test_writer_credential_cannot_read_the_vault(tmp_path: Path) -> None:
    url = tmp_path / "v"
    async with await new_vault(url) as v:
        await v.put("secret.bin", b"owner data " * 20000)
        await v.commit()
        cred = await v.keys.add_writer("web-1", "/web-1")
    # it is not a passphrase either (the file's text as one)
    with pytest.raises(AuthError):
        await sigmavault.open(str(url), passphrase=cred.to_bytes().decode())

    (k_file,) = sorted((url / "k").iterdir())
    name = f"k/{k_file.name}"
    data = k_file.read_bytes()
    owner = keystore.unlock(data, name, Passphrase.of(PASS))
    sealer = Sealer(owner.epoch_keys(), owner.params.chunk_size, owner.params.pad_floor)
    commits = sorted((url / "c").iterdir())
    objects = [(f"c/{commits[-1].name}", commits[-1].read_bytes())]
    objects += [(f"o/{p.name}", p.read_bytes()) for p in object_files(url)]  # o/ab/abcd… on disk: o/abcd…
    opened = []
    for obj_name, blob in objects:  # the control: the owner's keys open each one under some kind
        kinds = []
        for kind in KINDS:
            try:
                sealer.open(kind, obj_name, blob)
                kinds.append(kind)
            except (IntegrityError, ValueError):
                continue
        assert kinds, obj_name
        opened.append((obj_name, blob))
    assert len(opened) >= 2  # a commit and at least one data object

    for candidate in _secrets_in(cred):
        secret = Secret(candidate)
        with pytest.raises(AuthError):  # as the KSK
            keystore.unlock_with_ksk(data, name, secret, Pin(owner.fingerprint))
        assert fingerprint(owner.vault_id, secret) != owner.fingerprint  # as the VAK
        as_root = Sealer(EpochKeys.derive(candidate, owner.vault_id, 1, owner.params.prf), owner.params.chunk_size)
        for obj_name, blob in opened:
            for k in KINDS:
                with pytest.raises(IntegrityError):  # as the epoch root key
                    as_root.open(k, obj_name, blob)
                with pytest.raises(IntegrityError):  # as the page, chunk or commit key itself
                    chunked.open(candidate, context(owner.vault_id, k, obj_name, blob[:6]), blob[6:])
