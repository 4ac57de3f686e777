"""Drop records of write-only clients (engine/format/drops.py): round trip, every tamper, moves, replays,
wrong keys, bounds, the size leak, and a fuzz of the parser."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sigmavault.engine.errors import IntegrityError
from sigmavault.engine.format import aead as chunked
from sigmavault.engine.format import drops
from sigmavault.engine.format.canonical import dumps
from sigmavault.engine.format.framing import frame, padme
from sigmavault.engine.format.pages import BlobRef, ref_to_json
from sigmavault.engine.keys import sign, xwing
from sigmavault.engine.keys.schedule import KIND_CHUNK, KIND_PAGE_PACK, EpochKeys
from sigmavault.engine.keys.secret import Secret

VAULT_ID = bytes(range(32))
EPOCH = 3
VAULT = EpochKeys.derive(b"\x42" * 32, VAULT_ID, EPOCH, "blake3-keyed-256")
assert VAULT.drop_kem is not None
DROP_SEED: Secret = VAULT.drop_kem
DROP_PK = xwing.public_key(DROP_SEED)
W1, W2 = b"\x01" * 16, b"\x02" * 16
SIGN1, SIGN2 = sign.generate(), sign.generate()
VK1, VK2 = sign.verify_key(SIGN1), sign.verify_key(SIGN2)
WKEY1, WKEY2 = Secret(b"\x11" * 32), Secret(b"\x22" * 32)


def keys_of(writer: bytes, drop_key: Secret, epoch: int = EPOCH) -> EpochKeys:
    return EpochKeys.for_drop(VAULT_ID, epoch, "blake3-keyed-256", writer, WKEY1 if writer == W1 else WKEY2, drop_key)


def page_refs(keys: EpochKeys, n: int, epoch: int = EPOCH) -> tuple[BlobRef, ...]:
    name = keys.pack_name(KIND_PAGE_PACK, b"\x05" * 32)
    return tuple(BlobRef(epoch, KIND_PAGE_PACK, i.to_bytes(32, "big"), name, 100 * i, 100, None) for i in range(n))


def make(writer: bytes = W1, seq: int = 1, prev: bytes = drops.ZERO_HASH, refs: int = 2,
         signing: Secret | None = None) -> tuple[bytes, Secret, drops.DropBody]:
    """A genuine record: its bytes, its drop key and its body."""
    dk, enc = drops.new_drop_key(DROP_PK, VAULT_ID, writer, seq, EPOCH)
    keys = keys_of(writer, dk)
    body = drops.DropBody(b"/web-1/www", page_refs(keys, refs), 7, 12345, 1_767_225_600, 1_767_225_660)
    data = drops.seal_record(signing or (SIGN1 if writer == W1 else SIGN2), keys, writer, seq, prev, enc, body)
    return data, dk, body


def accept(data: bytes, name: str, vk: bytes = VK1, seed: Secret = DROP_SEED) -> drops.DropBody:
    """Everything an owner does with a record before trusting it."""
    rec = drops.parse_record(data, name)
    drops.verify_record(rec, vk)
    dk = drops.open_drop_key(rec, seed)
    return drops.open_body(rec, EpochKeys.for_drop(rec.vault_id, rec.epoch, "blake3-keyed-256", rec.writer_id,
                                                   WKEY1 if rec.writer_id == W1 else WKEY2, dk))


R1, DK1, BODY1 = make()
N1 = drops.record_name(W1, 1)
R2, DK2, BODY2 = make(seq=2, prev=drops.record_hash(R1))
N2 = drops.record_name(W1, 2)
SIGNED = len(R1) - sign.SIG_LEN


def test_names() -> None:
    assert N1 == "d/01010101010101010101010101010101/0000000000000001"
    assert drops.parse_record_name(N2) == (W1, 2)
    assert drops.parse_record_name(drops.record_name(W2, (1 << 63) - 1)) == (W2, (1 << 63) - 1)
    w = "01" * 16
    for bad in (f"d/{w[:-1]}/0000000000000001", f"d/{w}/1", f"d/{w}/0000000000000000", f"D/{w}/0000000000000001",
                f"d/{w}/000000000000000A", f"d/{w}/ffffffffffffffff", f"d/{w}/o/0000000000000001",
                f"d/{'AB' * 16}/0000000000000001", N1 + "\n", "o/" + "0" * 64):
        with pytest.raises(IntegrityError):
            drops.parse_record_name(bad)
    for writer, seq in ((W1, 0), (W1, 1 << 63), (b"\x01" * 15, 1)):
        with pytest.raises(ValueError):
            drops.record_name(writer, seq)


def test_round_trip_and_chain() -> None:
    assert accept(R1, N1) == BODY1
    assert accept(R2, N2) == BODY2
    rec1, rec2 = drops.parse_record(R1, N1), drops.parse_record(R2, N2)
    assert rec1.prev == drops.ZERO_HASH and rec2.prev == rec1.hash == drops.record_hash(R1)
    assert (rec2.vault_id, rec2.writer_id, rec2.seq, rec2.epoch, rec2.name) == (VAULT_ID, W1, 2, EPOCH, N2)
    assert rec1.signed + rec1.signature == R1 and len(rec1.enc) == drops.ENC_LEN == 1168
    assert drops.open_drop_key(rec1, DROP_SEED) == DK1


def _flip(data: bytes, i: int) -> bytes:
    out = bytearray(data)
    out[i] ^= 0x01
    return bytes(out)


REGIONS = {"magic": (0, 5), "vault id": (5, 37), "writer id": (37, 53), "seq": (53, 61), "prev": (61, 93),
           "epoch": (93, 97), "enc": (97, 1265), "body length": (1265, 1269), "body": (1269, SIGNED),
           "signature": (SIGNED, len(R1))}


@pytest.mark.parametrize("region", REGIONS)
def test_every_region_flipped_is_refused(region: str) -> None:
    lo, hi = REGIONS[region]
    positions = sorted({lo, hi - 1, (lo + hi) // 2, *range(lo, hi, max(1, (hi - lo) // 24))})
    for i in positions:
        with pytest.raises(IntegrityError):
            accept(_flip(R1, i), N1)


def _resign(signed: bytes, signing: Secret = SIGN1) -> bytes:
    return signed + sign.sign(signing, drops.SIG_LABEL + signed)


def test_a_writer_cannot_rebind_a_signed_record() -> None:
    """The writer holds its signing key: fields it changes and signs again must still fail to open."""
    rec = drops.parse_record(R1, N1)
    other_vault = _resign(rec.signed[:5] + bytes(32) + rec.signed[37:])
    other_epoch = _resign(rec.signed[:93] + (EPOCH + 1).to_bytes(4, "big") + rec.signed[97:])
    for data in (other_vault, other_epoch):
        with pytest.raises(IntegrityError):
            accept(data, N1)  # the drop key's HPKE info binds vault id and epoch
    # record 2's header with record 1's enc and body (sealed to seq 1): info and context bind the seq
    rec2 = drops.parse_record(R2, N2)
    spliced = _resign(rec2.signed[:97] + rec.signed[97:])
    with pytest.raises(IntegrityError):
        accept(spliced, N2)
    # record 2's enc with record 1's body: another drop key
    spliced = _resign(rec2.signed[:1265] + rec.signed[1265:])
    with pytest.raises(IntegrityError):
        accept(spliced, N2)


def test_moved_or_replayed_records_are_refused() -> None:
    for name in (N2, drops.record_name(W2, 1), drops.record_name(W1, 3)):
        with pytest.raises(IntegrityError):
            drops.parse_record(R1, name)
    with pytest.raises(IntegrityError):  # replay of seq 1 under the next free name
        drops.parse_record(R1, drops.record_name(W1, 2))


def test_another_writers_signature_is_refused() -> None:
    rec = drops.parse_record(R1, N1)
    with pytest.raises(IntegrityError):
        drops.verify_record(rec, VK2)
    forged = _resign(rec.signed, SIGN2)  # W2 signs a record naming W1
    with pytest.raises(IntegrityError):
        accept(forged, N1)
    with pytest.raises(IntegrityError):
        drops.verify_record(rec, b"\x00" * sign.VERIFY_KEY_LEN)


def test_wrong_drop_seed_or_keys_are_refused() -> None:
    rec = drops.parse_record(R1, N1)
    other = EpochKeys.derive(b"\x42" * 32, VAULT_ID, EPOCH + 1, "blake3-keyed-256").drop_kem
    assert other is not None
    for seed in (xwing.generate(), other):
        with pytest.raises(IntegrityError):
            drops.open_drop_key(rec, seed)
    for keys in (keys_of(W1, DK2), keys_of(W2, DK1), keys_of(W1, DK1, EPOCH + 1), VAULT):
        with pytest.raises(IntegrityError):
            drops.open_body(rec, keys)


def test_truncated_and_inflated_records_are_refused() -> None:
    for cut in (0, 5, 97, 1265, 1269, 1300, SIGNED - 1, SIGNED, len(R1) - 1):
        with pytest.raises(IntegrityError):
            accept(R1[:cut], N1)
    for extra in (b"\x00", bytes(16), bytes(16400), bytes(drops.MAX_RECORD)):
        with pytest.raises(IntegrityError):
            accept(R1 + extra, N1)
    # the body length field agreeing with an inflated body: the padding check refuses it unread
    grown = bytearray(R1[:1265] + (len(R1) - drops._FIXED + 16).to_bytes(4, "big") + R1[1269:SIGNED] + bytes(16)
                      + R1[SIGNED:])
    with pytest.raises(IntegrityError):
        drops.parse_record(bytes(grown), N1)


def test_seq_and_prev_agree() -> None:
    rec = drops.parse_record(R2, N2)
    zero_prev = _resign(rec.signed[:61] + drops.ZERO_HASH + rec.signed[93:])
    with pytest.raises(IntegrityError):
        drops.parse_record(zero_prev, N2)  # only seq 1 has no previous record
    rec1 = drops.parse_record(R1, N1)
    with pytest.raises(IntegrityError):
        drops.parse_record(_resign(rec1.signed[:61] + b"\x01" * 32 + rec1.signed[93:]), N1)


def test_size_leak_follows_padme_with_a_1_kib_floor() -> None:
    lengths = {}
    for n in (1, 10, 100, 1000):
        data, _, body = make(refs=n)
        body_len = len(drops.encode_body(body))
        padded = max(1024, padme(8 + body_len))
        assert len(data) == 4642 + chunked.sealed_len(padded) == drops.record_len(body_len)
        rec = drops.parse_record(data, N1)
        assert len(rec.body_ct) == chunked.sealed_len(padded)
        lengths[n] = (body_len, padded)
    assert lengths[1][1] == 1024  # the floor
    assert all(padme(p) == p for _, p in lengths.values())
    assert all(p - b - 8 <= p // 16 for b, p in lengths.values() if p > 1024)  # PADMÉ: at most 6.25 % more


def _forge(raw_body: bytes, writer: bytes = W1, seq: int = 1, padded: int | None = None) -> tuple[bytes, str]:
    """A record a hostile writer seals and signs around any body bytes (it holds every key it needs)."""
    dk, enc = drops.new_drop_key(DROP_PK, VAULT_ID, writer, seq, EPOCH)
    msg = frame(raw_body, drops.MAX_BODY, drops.PAD_FLOOR)
    if padded is not None:
        msg = msg + bytes(padded - len(msg))
    ct = chunked.seal(keys_of(writer, dk).commit_enc.reveal(), drops.body_context(VAULT_ID, writer, seq, EPOCH), msg)
    signed = (drops.MAGIC + VAULT_ID + writer + seq.to_bytes(8, "big") + drops.ZERO_HASH + EPOCH.to_bytes(4, "big")
              + enc + len(ct).to_bytes(4, "big") + ct)
    return _resign(signed, SIGN1 if writer == W1 else SIGN2), drops.record_name(writer, seq)


def _body_json(**change: object) -> dict[str, object]:
    """BODY1's JSON value with fields changed (None: removed)."""
    value: dict[str, object] = json.loads(drops.encode_body(BODY1))
    value.update(change)
    return {k: v for k, v in value.items() if v is not None}


def test_a_forged_valid_body_opens() -> None:
    data, name = _forge(drops.encode_body(BODY1))
    assert accept(data, name) == BODY1


BAD_BODIES: dict[str, Callable[[], bytes]] = {
    "unknown field": lambda: dumps({**_body_json(), "extra": 1}),
    "missing field": lambda: dumps(_body_json(files=None)),
    "version": lambda: dumps(_body_json(v=2)),
    "string count": lambda: dumps(_body_json(files="7")),
    "negative bytes": lambda: dumps(_body_json(bytes=-1)),
    "bool count": lambda: dumps(_body_json(files=True)),
    "started after finished": lambda: dumps(_body_json(started=1_767_225_661)),
    "relative dest": lambda: dumps(_body_json(dest="d2ViLTE")),
    "root dest": lambda: dumps(_body_json(dest="Lw")),
    "dest with //": lambda: dumps(_body_json(dest="L2EvL2I")),
    "dest with ..": lambda: dumps(_body_json(dest="L2EvLi4")),
    "dest with trailing /": lambda: dumps(_body_json(dest="L2Ev")),
    "dest with NUL": lambda: dumps(_body_json(dest="L2EAYg")),
    "ref of another writer": lambda: dumps(_body_json(root=[ref_to_json(page_refs(keys_of(W2, DK1), 1)[0])])),
    "ref of the vault": lambda: dumps(_body_json(root=[{**ref_to_json(BODY1.root[0]), "o": "o/" + "ab" * 32}])),
    "ref of another epoch": lambda: dumps(_body_json(root=[ref_to_json(page_refs(keys_of(W1, DK1), 1, 9)[0])])),
    "ref with a drop key": lambda: dumps(_body_json(root=[{**ref_to_json(BODY1.root[0]), "dk": "A" * 43}])),
    "data ref": lambda: dumps(_body_json(root=[ref_to_json(BlobRef(EPOCH, KIND_CHUNK, bytes(32),
                                                                   BODY1.root[0].object_name, 0, 10, 200))])),
    "not canonical": lambda: drops.encode_body(BODY1).replace(b":", b": ", 1),
    "not json": lambda: b"\xff{",
    "a list": lambda: b"[]",
}


@pytest.mark.parametrize("case", BAD_BODIES)
def test_strict_body(case: str) -> None:
    raw = BAD_BODIES[case]()
    with pytest.raises(IntegrityError):
        drops.decode_body(raw, W1, EPOCH)
    data, name = _forge(raw)
    with pytest.raises(IntegrityError):
        accept(data, name)


def test_padding_is_exact() -> None:
    raw = drops.encode_body(BODY1)
    for padded in (2048, 4096):  # PADMÉ sizes, but more than the body needs
        data, name = _forge(raw, padded=padded)
        with pytest.raises(IntegrityError):
            accept(data, name)
    data, name = _forge(raw, padded=1100)  # not a PADMÉ size: refused before any key is used
    with pytest.raises(IntegrityError):
        drops.parse_record(data, name)


def test_sealing_refuses_what_the_format_cannot_hold() -> None:
    dk, enc = drops.new_drop_key(DROP_PK, VAULT_ID, W1, 2, EPOCH)
    keys = keys_of(W1, dk)
    ok = drops.DropBody(b"/a", page_refs(keys, 1), 0, 0, 0, 0)
    for args in ((SIGN1, keys, W1, 2, drops.ZERO_HASH, enc, ok),  # seq 2 without prev
                 (SIGN1, keys, W1, 1, b"\x01" * 32, enc, ok),  # seq 1 with prev
                 (SIGN1, keys, W2, 2, b"\x01" * 32, enc, ok),  # keys of another writer
                 (SIGN1, VAULT, W1, 2, b"\x01" * 32, enc, ok),  # the vault's own keys
                 (SIGN1, keys, W1, 2, b"\x01" * 32, enc[:-1], ok),
                 (SIGN1, keys, W1, 2, b"\x01" * 32, enc, drops.DropBody(b"/a", page_refs(keys_of(W2, dk), 1),
                                                                        0, 0, 0, 0))):
        with pytest.raises(ValueError):
            drops.seal_record(*args)
    for dest in (b"a", b"/", b"/a/", b"//a", b"/a/./b", b"/a\0", b"/" + b"a" * 5000):
        with pytest.raises(ValueError):
            drops.DropBody(dest, (), 0, 0, 0, 0)
    with pytest.raises(ValueError):
        drops.DropBody(b"/a", (BlobRef(EPOCH, KIND_PAGE_PACK, bytes(32), "o/" + "ab" * 32, 0, 1, None),), 0, 0, 0, 0)
    with pytest.raises(ValueError):
        drops.DropBody(b"/a", (), 0, 0, 2, 1)


# --- fuzz: the parser and everything after it end only in IntegrityError ----------------------


def _everything(data: bytes, name: str) -> None:
    with contextlib.suppress(IntegrityError):
        accept(data, name)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=6000), st.sampled_from([N1, N2]))
def test_fuzz_parse_random_bytes(data: bytes, name: str) -> None:
    _everything(drops.MAGIC + data, name)
    _everything(data, name)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(R1) - 1), st.integers(1, 255)), max_size=4),
       st.integers(0, len(R1)), st.binary(max_size=64), st.booleans())
def test_fuzz_parse_mutated_records(flips: list[tuple[int, int]], cut: int, tail: bytes, resign: bool) -> None:
    data = bytearray(R1)
    for i, x in flips:
        data[i] ^= x
    mutated = bytes(data[:cut]) + tail
    if resign and len(mutated) > sign.SIG_LEN:
        mutated = _resign(mutated[: -sign.SIG_LEN])  # a hostile writer signs its own garbage
        if mutated[:-sign.SIG_LEN] == R1[:SIGNED]:
            return  # only the signature changed: a new valid signature of the same record
    if mutated != R1:
        with pytest.raises(IntegrityError):
            accept(mutated, N1)
