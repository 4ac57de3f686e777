"""Keystore tamper and misuse tests (CRYPTO.md §6.2 "Keystore"), each ending in its one expected error.

Also: the object name binding, keyring checks, and Hypothesis fuzzing of the parser (random bytes
and random mutations end only in IntegrityError).
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sigmavault.engine.errors import AuthError, IntegrityError, RollbackError, VaultError
from sigmavault.engine.format import aead as chunked
from sigmavault.engine.format.canonical import b64u, dumps, unb64u
from sigmavault.engine.keys import keyring, keystore, slots, xwing
from sigmavault.engine.keys.credentials import Passphrase, Pin, XwingKey
from sigmavault.engine.keys.keyring import Epoch, Keyring, Params
from sigmavault.engine.keys.schedule import expand
from sigmavault.engine.keys.secret import Secret
from sigmavault.engine.keys.slots import MINIMUM, KdfProfile

PW = Passphrase.of("victim passphrase")
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@dataclass(frozen=True)
class Victim:
    gen1: keystore.Written  # passphrase + recovery
    gen2: keystore.Written  # + a device slot
    device: Secret

    @property
    def pin(self) -> Pin:
        return Pin(self.gen2.vault.fingerprint, self.gen2.vault.generation)


@pytest.fixture(scope="module")
def victim() -> Victim:
    gen1, _ = keystore.create(PW, profile=MINIMUM)
    device = xwing.generate()
    gen2 = keystore.add_device(gen1.vault, xwing.public_key(device), "laptop")
    return Victim(gen1, gen2, device)


def payload_of(data: bytes) -> dict[str, Any]:
    outer = json.loads(data)
    p: dict[str, Any] = json.loads(unb64u(outer["payload"]))
    return p


def with_payload(data: bytes, p: dict[str, Any] | bytes) -> bytes:
    """Swap in a new payload and keep the old MAC (the provider cannot compute one)."""
    mac: str = json.loads(data)["mac"]
    raw = p if isinstance(p, bytes) else dumps(p)
    return b'{"payload":"' + b64u(raw).encode() + b'","mac":"' + mac.encode() + b'"}'


def edit(data: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    p = payload_of(data)
    change(p)
    return with_payload(data, p)


@pytest.fixture
def no_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("Argon2 ran")

    monkeypatch.setattr(slots, "hash_secret_raw", boom)


@pytest.fixture
def no_decapsulation(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("X-Wing decapsulation ran")

    monkeypatch.setattr(xwing, "open", boom)


# --- §6.2 keystore list ------------------------------------------------------------------------


def test_slot_removed(victim: Victim) -> None:
    w = victim.gen2
    tampered = edit(w.data, lambda p: p["slots"].pop())  # drop the device slot, keep the MAC
    with pytest.raises(IntegrityError):
        keystore.unlock(tampered, w.name, PW, victim.pin)


def test_argon2_parameters_lowered_below_the_floor(victim: Victim, no_hashing: None) -> None:
    w = victim.gen1

    def lower(p: dict[str, Any]) -> None:
        p["slots"][0]["m"] = 32 * 1024

    with pytest.raises(IntegrityError):
        keystore.unlock(edit(w.data, lower), w.name, PW)


def test_argon2_parameters_lowered_within_bounds() -> None:
    w, _ = keystore.create(PW, profile=KdfProfile("t4", 4, 64 * 1024, 4))

    def lower(p: dict[str, Any]) -> None:
        p["slots"][0]["t"] = 3  # still legal, but the slot context binds t: the unwrap fails

    with pytest.raises(AuthError):
        keystore.unlock(edit(w.data, lower), w.name, PW)


def test_generation_edited(victim: Victim) -> None:
    w = victim.gen1

    def bump(p: dict[str, Any]) -> None:
        p["generation"] = 2

    tampered = edit(w.data, bump)
    with pytest.raises(IntegrityError):  # under its new name: the MAC fails
        keystore.unlock(tampered, keystore.keystore_name(2), PW)
    with pytest.raises(IntegrityError):  # under the old name: the name check fails first
        keystore.unlock(tampered, w.name, PW)


def test_served_under_another_name(victim: Victim, no_hashing: None) -> None:
    w = victim.gen1
    for name in ("k/0000000000000002", "k/1", "k/0000000000000001 ", "c/0000000000000001", "k/000000000000000\u0661"):
        with pytest.raises(IntegrityError):
            keystore.unlock(w.data, name, PW)


def forge_for(victim: Victim) -> tuple[str, bytes]:
    """The provider's forgery: its own KSK', VAK' and epoch key, a device slot wrapped to the victim's pk."""
    vault_id = victim.gen2.vault.vault_id
    generation = victim.gen2.vault.generation + 1
    ksk = Secret(secrets.token_bytes(32))
    ring = Keyring(
        vault_id=vault_id,
        generation=generation,
        vak=Secret(secrets.token_bytes(32)),
        current_epoch=1,
        epochs=(Epoch(1, "active", Secret(secrets.token_bytes(32))),),
        params=Params(),
    )
    slot = slots.new_xwing_slot(vault_id, ksk, xwing.public_key(victim.device), "device", "laptop")
    data = keystore.encode(ksk, vault_id, generation, (slot,), keyring.seal_keyring(ksk, ring))
    return keystore.keystore_name(generation), data


def test_forged_keystore_passes_steps_1_to_4(victim: Victim) -> None:
    name, data = forge_for(victim)
    ks = keystore.parse(data, name)  # 1
    ksk, _ = keystore.open_slots(ks, XwingKey(victim.device))  # 2
    assert keystore._mac(ksk, ks.payload) == ks.mac  # 3
    ring = keyring.open_keyring(ksk, ks.vault_id, ks.generation, ks.keyring_ct)  # 4
    assert ring.vault_id == victim.gen2.vault.vault_id


def test_forged_keystore_rejected_by_pin(victim: Victim) -> None:
    name, data = forge_for(victim)
    with pytest.raises(IntegrityError, match="fingerprint"):
        keystore.unlock(data, name, XwingKey(victim.device), victim.pin)


def test_forged_keystore_rejected_without_pin(victim: Victim) -> None:
    name, data = forge_for(victim)
    with pytest.raises(AuthError, match="pin"):
        keystore.unlock(data, name, XwingKey(victim.device))


def test_genuine_device_unlock_with_pin_still_works(victim: Victim) -> None:
    u = keystore.unlock(victim.gen2.data, victim.gen2.name, XwingKey(victim.device), victim.pin)
    assert u.generation == 2


def test_keystore_rollback(victim: Victim) -> None:
    old = victim.gen1  # a genuine, older keystore replayed after the client saw generation 2
    with pytest.raises(RollbackError):
        keystore.unlock(old.data, old.name, PW, victim.pin)
    assert keystore.unlock(victim.gen2.data, victim.gen2.name, PW, victim.pin).generation == 2


@pytest.mark.parametrize(
    ("field", "value"), [("m", 0xFFFFFFFF), ("m", 4 * 1024 * 1024 + 1), ("t", 11), ("t", 1_000_000), ("p", 17)]
)
def test_dos_argon2_parameters_rejected_before_hashing(
    victim: Victim, no_hashing: None, field: str, value: int
) -> None:
    w = victim.gen1

    def inflate(p: dict[str, Any]) -> None:
        p["slots"][0][field] = value

    t0 = time.perf_counter()
    with pytest.raises(IntegrityError):
        keystore.unlock(edit(w.data, inflate), w.name, PW)
    assert time.perf_counter() - t0 < 0.5


@pytest.mark.parametrize(("field", "length"), [("wrapped", 1167), ("wrapped", 1169), ("pk", 1215), ("pk", 1217)])
def test_wrong_length_xwing_body(victim: Victim, no_decapsulation: None, field: str, length: int) -> None:
    w = victim.gen2

    def resize(p: dict[str, Any]) -> None:
        p["slots"][2][field] = b64u(secrets.token_bytes(length))

    with pytest.raises(IntegrityError):
        keystore.unlock(edit(w.data, resize), w.name, XwingKey(victim.device), victim.pin)


def test_wrong_length_argon2_wrapped(victim: Victim, no_hashing: None) -> None:
    w = victim.gen1

    def resize(p: dict[str, Any]) -> None:
        p["slots"][0]["wrapped"] = b64u(secrets.token_bytes(103))

    with pytest.raises(IntegrityError):
        keystore.unlock(edit(w.data, resize), w.name, PW)


def _noncanonical(text: str) -> str:
    """Same bytes, different base64url text: set unused low bits in the last character."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    assert len(text) % 4 in (2, 3)
    index = alphabet.index(text[-1])
    return text[:-1] + alphabet[index | 1]


@pytest.mark.parametrize("where", ["payload", "mac", "salt", "slot id", "keyring", "padded", "std alphabet"])
def test_non_canonical_base64(victim: Victim, no_hashing: None, where: str) -> None:
    w = victim.gen1
    outer = json.loads(w.data)
    if where in ("payload", "mac"):
        outer[where] = _noncanonical(outer[where]) if len(outer[where]) % 4 else outer[where] + "="
        data = json.dumps(outer).encode()
    elif where == "padded":
        data = json.dumps({"payload": outer["payload"], "mac": outer["mac"] + "="}).encode()
    elif where == "std alphabet":  # the keyring (random bytes) re-encoded with '+' and '/'
        p = payload_of(w.data)
        std = base64.b64encode(unb64u(p["keyring"])).decode().rstrip("=")
        assert "+" in std or "/" in std
        p["keyring"] = std
        data = with_payload(w.data, p)
    else:
        p = payload_of(w.data)
        if where == "salt":
            p["slots"][0]["salt"] = _noncanonical(p["slots"][0]["salt"])
        elif where == "slot id":
            p["slots"][0]["id"] = _noncanonical(p["slots"][0]["id"])
        else:
            p["keyring"] = p["keyring"] + "=" if len(p["keyring"]) % 4 == 0 else _noncanonical(p["keyring"])
        data = with_payload(w.data, p)
    with pytest.raises(IntegrityError):
        keystore.unlock(data, w.name, PW)


# --- keyring and payload checks with a valid MAC (an insider holding the KSK) -------------------


def _insider(victim: Victim, ring: Keyring, *, seal_gen: int | None = None, raw: bytes | None = None) -> bytes:
    u = victim.gen1.vault
    gen = u.generation
    ctx = keyring.keyring_context(u.vault_id, gen if seal_gen is None else seal_gen)
    plain = ring.to_bytes() if raw is None else raw
    sealed = chunked.seal(expand(u.ksk.reveal(), "keyring-enc"), ctx, plain)
    return keystore.encode(u.ksk, u.vault_id, gen, u.slots, sealed)


@pytest.mark.parametrize(
    "params",
    [
        Params(chunk_size=3 << 20),
        Params(chunk_size=32 << 20),
        Params(chunk_size=512 << 10),
        Params(prf="sha1"),  # type: ignore[arg-type]
        Params(suite="c2sp-chunked-v1/AES-128-GCM"),
        Params(chunking="fastcdc"),
        Params(padding="none"),
        Params(pad_floor=0),
        Params(inline_max=4096),
        Params(compression="zstd"),
    ],
)
def test_unknown_params_rejected(victim: Victim, params: Params) -> None:
    data = _insider(victim, replace(victim.gen1.vault.keyring, params=params))
    with pytest.raises(IntegrityError):
        keystore.unlock(data, victim.gen1.name, PW)


def test_keyring_generation_and_vault_id_must_match_payload(victim: Victim) -> None:
    ring = victim.gen1.vault.keyring
    for bad in (replace(ring, generation=2), replace(ring, vault_id=bytes(32))):
        with pytest.raises(IntegrityError):
            keystore.unlock(_insider(victim, ring, raw=bad.to_bytes()), victim.gen1.name, PW)
    with pytest.raises(IntegrityError):  # sealed under another generation's context
        keystore.unlock(_insider(victim, ring, seal_gen=2), victim.gen1.name, PW)


def test_keyring_extra_field_and_bad_epochs_rejected(victim: Victim) -> None:
    ring = victim.gen1.vault.keyring
    doc = json.loads(ring.to_bytes())
    variants = []
    extra = dict(doc, extra=1)
    variants.append(extra)
    variants.append(dict(doc, current_epoch=2))
    variants.append(dict(doc, epochs=doc["epochs"] * 2))
    variants.append(dict(doc, epochs=[dict(doc["epochs"][0], state="destroyed")]))
    variants.append(dict(doc, epochs=[dict(doc["epochs"][0], retired_at_gen=5)]))
    variants.append(dict(doc, epochs=[]))
    for v in variants:
        with pytest.raises(IntegrityError):
            keystore.unlock(_insider(victim, ring, raw=dumps(v)), victim.gen1.name, PW)


def test_mac_first_order_is_accepted(victim: Victim) -> None:
    outer = json.loads(victim.gen1.data)
    data = json.dumps({"mac": outer["mac"], "payload": outer["payload"]}).encode()
    assert keystore.unlock(data, victim.gen1.name, PW).generation == 1


def test_duplicate_keys_and_unknown_fields_rejected(victim: Victim, no_hashing: None) -> None:
    w = victim.gen1
    outer = json.loads(w.data)
    dup = f'{{"payload":"{outer["payload"]}","mac":"{outer["mac"]}","mac":"{outer["mac"]}"}}'.encode()
    p = payload_of(w.data)
    cases = [
        dup,
        json.dumps(dict(outer, extra="x")).encode(),
        edit(w.data, lambda q: q.update(extra=1)),
        edit(w.data, lambda q: q["slots"][0].update(kind="device")),
        edit(w.data, lambda q: q["slots"][1].update(kind="friend")),
        edit(w.data, lambda q: q["slots"][0].update(type="scrypt")),
        edit(w.data, lambda q: q.update(format="vault-keystore/v0")),
        edit(w.data, lambda q: q.update(format="vault-keystore/v02")),
        edit(w.data, lambda q: q.update(format="vault-keystore/v1 ")),
        edit(w.data, lambda q: q.update(slots=[])),
        edit(w.data, lambda q: q.update(slots=[q["slots"][0], q["slots"][0]])),
        edit(w.data, lambda q: q.update(generation=1.0)),
        with_payload(w.data, dumps(p).replace(b'"generation":1', b'"generation":1,"generation":1')),
        b"[]",
        b"",
        b"\xff",
        b" " * (2 << 20),
    ]
    for data in cases:
        with pytest.raises(IntegrityError):
            keystore.unlock(data, w.name, PW)


# --- fuzzing: the parser ends only in IntegrityError --------------------------------------------


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    with pytest.raises(IntegrityError):
        keystore.parse(data, "k/0000000000000001")


def _mutate(data: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, pos, value in ops:
        i = pos % (len(buf) + 1)
        if kind == 0 and buf:
            buf[i % len(buf)] ^= value or 1
        elif kind == 1:
            buf.insert(i, value)
        elif kind == 2 and buf:
            del buf[i % len(buf)]
    return bytes(buf)


OPS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=6)


@FUZZ
@given(ops=OPS)
def test_mutated_file(victim: Victim, ops: list[tuple[int, int, int]]) -> None:
    w = victim.gen2
    with contextlib.suppress(IntegrityError):
        keystore.parse(_mutate(w.data, ops), w.name)


@FUZZ
@given(ops=OPS)
def test_mutated_payload_through_unlock(victim: Victim, ops: list[tuple[int, int, int]]) -> None:
    """Mutations of P itself, re-wrapped, through the whole unlock with a device key (no Argon2)."""
    w = victim.gen2
    raw = unb64u(json.loads(w.data)["payload"])
    data = with_payload(w.data, _mutate(raw, ops))
    try:
        keystore.unlock(data, w.name, XwingKey(victim.device), victim.pin)
    except (IntegrityError, AuthError):
        pass
    except VaultError as exc:  # pragma: no cover - a failure message for the report
        pytest.fail(f"unexpected {type(exc).__name__}")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@FUZZ
@given(
    slot=st.integers(0, 2),
    key=st.sampled_from(["id", "type", "kind", "label", "m", "t", "p", "salt", "pk", "wrapped", "x"]),
    value=JSON,
)
def test_structured_field_replacement(victim: Victim, slot: int, key: str, value: object) -> None:
    w = victim.gen2
    p = payload_of(w.data)
    p["slots"][slot][key] = value
    with contextlib.suppress(IntegrityError):
        keystore.parse(with_payload(w.data, p), w.name)


def _padded_with_costly_slots(data: bytes, count: int) -> bytes:
    """The provider's move: ``count`` more passphrase slots at the maximum Argon2 cost, put first."""

    def pad(p: dict[str, Any]) -> None:
        model = p["slots"][0]
        costly = [dict(model, id=b64u(secrets.token_bytes(16)), m=slots.M_MAX, t=slots.T_MAX) for _ in range(count)]
        p["slots"] = costly + p["slots"]

    return edit(data, pad)


@pytest.fixture
def argon2_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Record every Argon2 run (m, t); runs at the maximum cost return junk instead of costing minutes."""
    real = slots.hash_secret_raw
    calls: list[tuple[int, int]] = []

    def counting(*args: Any, **kw: Any) -> bytes:
        calls.append((kw["memory_cost"], kw["time_cost"]))
        if kw["memory_cost"] == slots.M_MAX:
            return bytes(32)
        out: bytes = real(*args, **kw)
        return out

    monkeypatch.setattr(slots, "hash_secret_raw", counting)
    return calls


def test_costly_slots_added_by_the_provider_are_tried_last(victim: Victim, argon2_calls: list[tuple[int, int]]
                                                            ) -> None:
    """The honest slot opens first, so the payload MAC catches the edit after one cheap Argon2 run."""
    w = victim.gen1
    with pytest.raises(IntegrityError):
        keystore.unlock(_padded_with_costly_slots(w.data, 62), w.name, PW)
    assert argon2_calls == [(MINIMUM.m, MINIMUM.t)]


def test_a_failing_unlock_spends_a_bounded_argon2_budget(victim: Victim, argon2_calls: list[tuple[int, int]]) -> None:
    w = victim.gen1
    with pytest.raises(IntegrityError, match="more Argon2 work than one unlock spends"):
        keystore.unlock(_padded_with_costly_slots(w.data, 62), w.name, Passphrase.of("not the passphrase"))
    assert sum(m * t for m, t in argon2_calls) <= slots.UNLOCK_BUDGET
    assert len(argon2_calls) == 2  # the honest slot (wrong passphrase), then one costly slot: 62 were not run
