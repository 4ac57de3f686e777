"""Object-layer tamper tests (CRYPTO.md §6.2): every attack fails with exactly the one IntegrityError.

Any other exception (ValueError, KeyError, IndexError...) escapes these helpers and fails the test,
and an accepted tampered object is reported with its position.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Callable, Iterable
from functools import partial

import pytest

from sigmavault.engine.errors import IntegrityError
from sigmavault.engine.format import aead as chunked
from sigmavault.engine.format import envelope as objects
from sigmavault.engine.format import framing
from sigmavault.engine.keys import schedule as keys

MIB4 = 4 << 20
ROOT = b"\x42" * 32
VAULT_A = bytes(range(32))
VAULT_B = bytes(range(1, 33))
KEYS = keys.EpochKeys.derive(ROOT, VAULT_A, 1, "blake3-keyed-256")
SEALER = objects.Sealer(KEYS, MIB4)
CT = chunked.CT_RECORD
BODY = objects.HDR + chunked.HEAD  # 62: header, salt, commitment; records follow
K_CHUNK, K_PAGE, K_COMMIT, K_DATA = keys.KIND_CHUNK, keys.KIND_PAGE_PACK, keys.KIND_COMMIT, keys.KIND_DATA_PACK


def name_of(tag: bytes) -> str:
    return KEYS.chunk_name(KEYS.chunk_id_of(tag))


NAME = name_of(b"object under test")
OTHER = name_of(b"another object")


def is_rejected(fn: Callable[[], object]) -> bool:
    """True iff ``fn`` raises exactly the uniform IntegrityError; any other exception propagates."""
    try:
        fn()
    except IntegrityError as exc:
        assert type(exc) is IntegrityError, type(exc)
        assert str(exc) == IntegrityError.GENERIC
        return True
    return False


def expect_rejected(fn: Callable[[], object]) -> None:
    assert is_rejected(fn), "tampered input was accepted"


def slicer(obj: bytes) -> Callable[[int, int], bytes]:
    """A server that serves byte ranges of ``obj``."""
    return lambda start, end: obj[start:end]


def flips_accepted(
    sealer: objects.Sealer, kind: int, name: str, obj: bytes, positions: Iterable[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Open ``obj`` once per (byte, bit) flip; return the flips that were NOT rejected."""
    buf = bytearray(obj)
    accepted = []
    for pos, bit in positions:
        buf[pos] ^= 1 << bit
        try:
            sealer.open(kind, name, buf)
        except IntegrityError as exc:
            if type(exc) is not IntegrityError:
                accepted.append((pos, bit))
        else:
            accepted.append((pos, bit))
        buf[pos] ^= 1 << bit
    assert buf == obj
    return accepted


def all_bits(n: int) -> Iterable[tuple[int, int]]:
    return ((p, b) for p in range(n) for b in range(8))


def one_random_bit(n: int, seed: int) -> Iterable[tuple[int, int]]:
    rng = random.Random(seed)
    return ((p, rng.randrange(8)) for p in range(n))


# --- fixtures: objects of several kinds and sizes -------------------------------------------------

SMALL_CASES = [  # (kind, stored length, pad floor): object sizes 1102, 4174, 20574
    (K_COMMIT, 300, 1024),
    (K_PAGE, 1000, 4096),
    (K_DATA, 20000, 4096),
]


@pytest.fixture(scope="module")
def small_objects() -> list[tuple[int, bytes, bytes]]:
    out = []
    for kind, n, floor in SMALL_CASES:
        stored = os.urandom(n)
        out.append((kind, stored, SEALER.seal(kind, NAME, stored, pad_floor=floor)))
    return out


@pytest.fixture(scope="module")
def obj64k() -> tuple[bytes, bytes]:
    stored = os.urandom(65000)
    obj = SEALER.seal(K_CHUNK, NAME, stored)
    assert len(obj) == 65678  # 64 KiB message: five records
    return stored, obj


@pytest.fixture(scope="module")
def full() -> tuple[bytes, bytes]:
    stored = os.urandom(MIB4)
    obj = SEALER.seal(K_CHUNK, NAME, stored)
    assert len(obj) == 4_198_486
    return stored, obj


def record_starts(obj_len: int) -> list[int]:
    n = chunked.records_in(obj_len - objects.HDR)
    return [BODY + i * CT for i in range(n)]


# --- sanity: the untampered objects open --------------------------------------------------------


def test_untampered_objects_open(
    small_objects: list[tuple[int, bytes, bytes]], obj64k: tuple[bytes, bytes], full: tuple[bytes, bytes]
) -> None:
    for kind, stored, obj in small_objects:
        assert bytes(SEALER.open(kind, NAME, obj)) == stored
    for stored, obj in (obj64k, full):
        assert bytes(SEALER.open(K_CHUNK, NAME, obj, expected_len=len(obj))) == stored


# --- bit flips ---------------------------------------------------------------------------------


def test_every_bit_of_small_objects(small_objects: list[tuple[int, bytes, bytes]]) -> None:
    for kind, _, obj in small_objects:
        assert flips_accepted(SEALER, kind, NAME, obj, all_bits(len(obj))) == []


def test_one_random_bit_per_byte_of_64k_object(obj64k: tuple[bytes, bytes]) -> None:
    _, obj = obj64k
    assert flips_accepted(SEALER, K_CHUNK, NAME, obj, one_random_bit(len(obj), seed=len(obj))) == []


@pytest.mark.slow
def test_every_bit_of_64k_object(obj64k: tuple[bytes, bytes]) -> None:
    _, obj = obj64k
    assert flips_accepted(SEALER, K_CHUNK, NAME, obj, all_bits(len(obj))) == []


def test_flips_in_full_object(full: tuple[bytes, bytes]) -> None:
    _, obj = full
    rng = random.Random(7)
    positions = [(p, b) for p in range(BODY) for b in range(8)]  # header, salt, commitment: every bit
    starts = record_starts(len(obj))
    ends = [*starts[1:], len(obj)]
    for start, end in zip(starts, ends):
        positions += [
            (start, rng.randrange(8)),  # first byte of the record (right side of a boundary)
            (end - 17, rng.randrange(8)),  # last ciphertext byte before the tag
            (end - 16, rng.randrange(8)),  # first tag byte
            (end - 1, rng.randrange(8)),  # last tag byte (left side of the next boundary)
        ]
    assert len(positions) == 62 * 8 + 4 * 257
    assert flips_accepted(SEALER, K_CHUNK, NAME, obj, positions) == []


# --- truncation and extension ------------------------------------------------------------------


def test_truncation_to_every_shorter_length(
    small_objects: list[tuple[int, bytes, bytes]], obj64k: tuple[bytes, bytes]
) -> None:
    cases = [(kind, obj) for kind, _, obj in small_objects] + [(K_CHUNK, obj64k[1])]
    for kind, obj in cases:
        mv = memoryview(obj)
        accepted = [n for n in range(len(obj)) if not is_rejected(partial(SEALER.open, kind, NAME, mv[:n]))]
        assert accepted == []


def test_truncation_at_record_boundaries_of_full_object(full: tuple[bytes, bytes]) -> None:
    _, obj = full
    mv = memoryview(obj)
    cuts = {c + d for c in record_starts(len(obj))[1:] for d in (-1, 0, 1)} | {len(obj) - 1, len(obj) - 16}
    accepted = [n for n in sorted(cuts) if not is_rejected(partial(SEALER.open, K_CHUNK, NAME, mv[:n]))]
    assert accepted == []


def test_expected_length_rejects_before_decrypting(full: tuple[bytes, bytes]) -> None:
    _, obj = full
    expect_rejected(lambda: SEALER.open(K_CHUNK, NAME, obj[:-1], expected_len=len(obj)))
    expect_rejected(lambda: SEALER.open(K_CHUNK, NAME, obj + b"\x00", expected_len=len(obj)))


def test_appending(small_objects: list[tuple[int, bytes, bytes]], full: tuple[bytes, bytes]) -> None:
    cases = [(kind, obj) for kind, _, obj in small_objects] + [(K_CHUNK, full[1])]
    for kind, obj in cases:
        starts = record_starts(len(obj))
        for extra in (b"\x00", b"\xff", obj[-1:], obj[-16:]):
            expect_rejected(partial(SEALER.open, kind, NAME, obj + extra))
        first = obj[starts[0] : starts[0] + CT]  # a copied whole record (the first one)
        expect_rejected(partial(SEALER.open, kind, NAME, obj + first))
        if len(starts) > 2:  # and a copied full record from the middle
            mid = obj[starts[1] : starts[1] + CT]
            expect_rejected(partial(SEALER.open, kind, NAME, obj + mid))
        # the final short record duplicated
        expect_rejected(partial(SEALER.open, kind, NAME, obj + obj[starts[-1] :]))


# --- substitution ---------------------------------------------------------------------------------


def test_swapping_two_objects(full: tuple[bytes, bytes]) -> None:
    a = full[1]
    b = SEALER.seal(K_CHUNK, OTHER, os.urandom(MIB4))
    assert len(a) == len(b)
    expect_rejected(lambda: SEALER.open(K_CHUNK, OTHER, a))
    expect_rejected(lambda: SEALER.open(K_CHUNK, NAME, b))
    small_a = SEALER.seal(K_DATA, NAME, b"a" * 100)
    small_b = SEALER.seal(K_DATA, OTHER, b"a" * 100)
    expect_rejected(lambda: SEALER.open(K_DATA, OTHER, small_a))
    expect_rejected(lambda: SEALER.open(K_DATA, NAME, small_b))


def swap(obj: bytes, i: int, j: int) -> bytes:
    buf = bytearray(obj)
    ri, rj = BODY + i * CT, BODY + j * CT
    buf[ri : ri + CT], buf[rj : rj + CT] = obj[rj : rj + CT], obj[ri : ri + CT]
    return bytes(buf)


def test_swapping_records_inside_an_object(obj64k: tuple[bytes, bytes], full: tuple[bytes, bytes]) -> None:
    for obj, pairs in ((obj64k[1], [(0, 1), (1, 2), (0, 3)]), (full[1], [(0, 1), (100, 101), (0, 255)])):
        for i, j in pairs:
            swapped = swap(obj, i, j)
            assert swapped != obj and len(swapped) == len(obj)
            expect_rejected(partial(SEALER.open, K_CHUNK, NAME, swapped))


def test_replay_into_another_vault_with_the_same_root_key() -> None:
    stored = b"vault A content" * 100
    obj = SEALER.seal(K_CHUNK, NAME, stored)
    vault_b = objects.Sealer(keys.EpochKeys.derive(ROOT, VAULT_B, 1, "blake3-keyed-256"), MIB4)
    expect_rejected(lambda: vault_b.open(K_CHUNK, NAME, obj))
    # even if vault B somehow had the same subkeys, the vault id in the context still rejects it
    same_keys_b = objects.Sealer(dataclasses.replace(KEYS, vault_id=VAULT_B), MIB4)
    expect_rejected(lambda: same_keys_b.open(K_CHUNK, NAME, obj))
    assert bytes(SEALER.open(K_CHUNK, NAME, obj)) == stored


@pytest.mark.parametrize(
    "sealed_as,opened_as",
    [(K_CHUNK, K_PAGE), (K_DATA, K_PAGE), (K_PAGE, K_CHUNK), (K_PAGE, K_DATA), (K_CHUNK, K_DATA),
     (K_DATA, K_CHUNK), (K_COMMIT, K_PAGE), (K_PAGE, K_COMMIT)],
)
def test_kind_confusion(sealed_as: int, opened_as: int) -> None:
    obj = SEALER.seal(sealed_as, NAME, b"\x5a" * 5000)
    expect_rejected(lambda: SEALER.open(opened_as, NAME, obj))


def test_full_chunk_served_as_page_pack_and_reverse(full: tuple[bytes, bytes]) -> None:
    expect_rejected(lambda: SEALER.open(K_PAGE, NAME, full[1]))
    page = SEALER.seal(K_PAGE, NAME, os.urandom(1000), pad_floor=8 + MIB4)  # a full page pack, same size
    assert len(page) == len(full[1])
    expect_rejected(lambda: SEALER.open(K_CHUNK, NAME, page))
    expect_rejected(lambda: SEALER.open(K_DATA, NAME, page))


# --- header --------------------------------------------------------------------------------------


def with_header(obj: bytes, hdr: bytes) -> bytes:
    return hdr + obj[objects.HDR :]


def test_header_epoch_rewritten_to_another_valid_epoch() -> None:
    obj = SEALER.seal(K_CHUNK, NAME, b"epoch one" * 50)
    forged = with_header(obj, objects.header(2))
    epoch2 = objects.Sealer(keys.EpochKeys.derive(ROOT, VAULT_A, 2, "blake3-keyed-256"), MIB4)
    expect_rejected(lambda: epoch2.open(K_CHUNK, NAME, forged))
    expect_rejected(lambda: SEALER.open(K_CHUNK, NAME, forged))
    # the header is bound in the context itself, not only through the epoch's keys
    same_keys_epoch2 = objects.Sealer(dataclasses.replace(KEYS, epoch=2), MIB4)
    expect_rejected(lambda: same_keys_epoch2.open(K_CHUNK, NAME, forged))
    # and an epoch-2 object is not accepted by the epoch-1 reader
    expect_rejected(lambda: SEALER.open(K_CHUNK, NAME, epoch2.seal(K_CHUNK, NAME, b"x")))


def test_reader_checks_the_header_epoch_itself() -> None:
    """The expected epoch comes from the reference: a header of another epoch is refused even when
    the tags would verify (here: a writer holding the same subkeys under another epoch number)."""
    other_epoch = objects.Sealer(dataclasses.replace(KEYS, epoch=2), MIB4)
    obj = other_epoch.seal(K_CHUNK, NAME, b"epoch two" * 50)
    assert bytes(other_epoch.open(K_CHUNK, NAME, obj)) == b"epoch two" * 50
    expect_rejected(lambda: SEALER.open(K_CHUNK, NAME, obj))
    sp, (start, end) = SEALER.range_plan(len(obj), 0, 9)
    expect_rejected(lambda: SEALER.open_range(K_CHUNK, NAME, obj[:BODY], sp, obj[start:end], 0, 9))


@pytest.mark.parametrize("pos,value", [(0, 0x00), (0, 0x02), (1, 0x00), (1, 0x02), (1, 0xFF), (2, 0x01), (5, 0x00)])
def test_header_byte_changed(pos: int, value: int) -> None:
    obj = bytearray(SEALER.seal(K_DATA, NAME, b"header" * 10))
    obj[pos] = value
    expect_rejected(lambda: SEALER.open(K_DATA, NAME, obj))


def test_header_shorter_than_six_bytes() -> None:
    for n in range(objects.HDR + 1):
        expect_rejected(partial(SEALER.open, K_DATA, NAME, objects.header(1)[:n]))


# --- framing inside a validly sealed message -----------------------------------------------------


def seal_message(kind: int, name: str, msg: bytes) -> bytes:
    """An object whose tags are valid but whose message is hand-made (a writer with the keys)."""
    hdr = objects.header(KEYS.epoch)
    return hdr + chunked.seal(KEYS.enc_key(kind), objects.context(VAULT_A, kind, name, hdr), msg)


def test_hand_made_frame_control() -> None:
    msg = bytes(framing.frame(b"stored bytes", MIB4, 4096))
    assert bytes(SEALER.open(K_DATA, NAME, seal_message(K_DATA, NAME, msg))) == b"stored bytes"


@pytest.mark.parametrize("pad_pos", [20, 21, 2000, 4095])
def test_nonzero_padding(pad_pos: int) -> None:
    msg = framing.frame(b"stored bytes", MIB4, 4096)
    msg[pad_pos] = 1
    expect_rejected(lambda: SEALER.open(K_DATA, NAME, seal_message(K_DATA, NAME, bytes(msg))))


def test_nonzero_padding_in_a_later_record() -> None:
    msg = framing.frame(os.urandom(20000), MIB4, 4096)
    msg[-1] = 0x80
    expect_rejected(lambda: SEALER.open(K_DATA, NAME, seal_message(K_DATA, NAME, bytes(msg))))


@pytest.mark.parametrize("claimed", [4096 - 7, 4097, 1 << 20, (1 << 32) - 1])
def test_inner_length_larger_than_message(claimed: int) -> None:
    msg = framing.frame(b"x" * 100, MIB4, 4096)
    msg[4:8] = claimed.to_bytes(4, "big")
    expect_rejected(lambda: SEALER.open(K_DATA, NAME, seal_message(K_DATA, NAME, bytes(msg))))


def test_inner_length_exactly_the_message_is_accepted() -> None:
    msg = framing.frame(b"x" * 100, MIB4, 4096)
    msg[4:8] = (4096 - 8).to_bytes(4, "big")  # the padding becomes stored bytes
    got = SEALER.open(K_DATA, NAME, seal_message(K_DATA, NAME, bytes(msg)))
    assert bytes(got) == b"x" * 100 + bytes(4096 - 108)


@pytest.mark.parametrize("pos,value", [(0, 0), (0, 2), (1, 1), (1, 2), (2, 1), (3, 1)])
def test_bad_frame_header(pos: int, value: int) -> None:
    msg = framing.frame(b"stored", MIB4, 4096)
    msg[pos] = value
    expect_rejected(lambda: SEALER.open(K_DATA, NAME, seal_message(K_DATA, NAME, bytes(msg))))


@pytest.mark.parametrize("size", [0, 1, 7])
def test_message_shorter_than_frame_header(size: int) -> None:
    expect_rejected(lambda: SEALER.open(K_DATA, NAME, seal_message(K_DATA, NAME, b"\x01" * size)))


# --- ranged reads ---------------------------------------------------------------------------------


def ranged(obj_len: int, off: int, length: int, fetch: Callable[[int, int], bytes], head: bytes) -> bytes:
    sp, (start, end) = SEALER.range_plan(obj_len, off, length)
    return SEALER.open_range(K_CHUNK, NAME, head, sp, fetch(start, end), off, length)


def test_ranged_read_control(full: tuple[bytes, bytes]) -> None:
    stored, obj = full
    for off in (0, 5 * 16384, MIB4 - 100):
        got = ranged(len(obj), off, 100, lambda s, e: obj[s:e], obj[:BODY])
        assert got == stored[off : off + 100]


def record_server(obj: bytes, index: int) -> Callable[[int, int], bytes]:
    """A server that answers every range with the bytes of record ``index`` (same length)."""
    at = BODY + index * CT
    return lambda start, end: obj[at : at + (end - start)]


def test_record_served_at_the_wrong_index(full: tuple[bytes, bytes]) -> None:
    _, obj = full
    for record in (1, 2, 100, 255):
        off = record * 16384  # plaintext of record r covers stored[r·16384 − 8 : ...]
        for other in (record - 1, record + 1):
            wrong = record_server(obj, other)
            expect_rejected(partial(ranged, len(obj), off, 10, wrong, obj[:BODY]))
    # the same record, but from another object of the vault (or from a copy with another salt)
    twin = SEALER.seal(K_CHUNK, NAME, full[0])
    expect_rejected(lambda: ranged(len(obj), 50000, 10, lambda s, e: twin[s:e], obj[:BODY]))
    expect_rejected(lambda: ranged(len(obj), 50000, 10, lambda s, e: obj[s:e], twin[:BODY]))


def test_head_from_another_object(full: tuple[bytes, bytes]) -> None:
    _, obj = full
    other = SEALER.seal(K_CHUNK, OTHER, os.urandom(100))
    expect_rejected(lambda: ranged(len(obj), 0, 10, lambda s, e: obj[s:e], other[:BODY]))
    for pos in range(BODY):
        head = bytearray(obj[:BODY])
        head[pos] ^= 0x01
        expect_rejected(partial(ranged, len(obj), 0, 10, slicer(obj), bytes(head)))


def test_records_of_the_wrong_length(full: tuple[bytes, bytes]) -> None:
    _, obj = full
    for off in (0, 40000, MIB4 - 10):
        fetches: list[Callable[[int, int], bytes]] = [
            lambda s, e: obj[s : e - 1],
            lambda s, e: (obj + b"\x00")[s : e + 1],
            lambda s, e: obj[s + 1 : e],
            lambda s, e: obj[s:e] + b"\x00",
            lambda s, e: obj[s - 1 : e],
        ]
        for fetch in fetches:
            expect_rejected(partial(ranged, len(obj), off, 10, fetch, obj[:BODY]))


def test_attacker_chosen_total_length(full: tuple[bytes, bytes], obj64k: tuple[bytes, bytes]) -> None:
    """A span computed from a length the server chose never yields wrong bytes.

    A range that touches the final record of the claimed layout fails (that record's bytes or tag
    differ from the real one); a range inside records the claimed and the real layouts share can
    only return the authentic bytes.
    """
    for stored, obj in (full, obj64k):
        message = bytes(framing.frame(stored, MIB4, 4096))[framing.FRAME_HEADER :]  # stored ‖ zero padding
        true_len = len(obj)
        last = record_starts(true_len)[-1]
        claims = {true_len + d for d in (-1, 1, -16, 16, -CT, CT, 2 * CT)}
        claims |= {last + 16, last - 1, last + 17, last + 500, BODY + 16 + 5 * CT, BODY + 1000 + CT}
        claims.discard(true_len)
        tails = 0
        for claimed in sorted(claims):
            if is_rejected(partial(SEALER.range_plan, claimed, 0, 0)):
                continue  # not a record layout at all
            n = chunked.records_in(claimed - objects.HDR)
            claimed_plain = claimed - BODY - 16 * n - framing.FRAME_HEADER
            rng = random.Random(claimed)
            ranges = [(max(0, claimed_plain - 10), min(10, claimed_plain))]
            ranges += [(o, rng.randrange(1, 40000)) for o in (rng.randrange(max(1, claimed_plain)) for _ in range(20))]
            for off, length in ranges:
                length = min(length, claimed_plain - off)
                if length <= 0:
                    continue
                sp, _ = SEALER.range_plan(claimed, off, length)
                try:
                    got = ranged(claimed, off, length, slicer(obj), obj[:BODY])
                except IntegrityError as exc:
                    assert type(exc) is IntegrityError
                    continue
                assert sp.first + sp.count < n, "the claimed final record was accepted"
                assert got == message[off : off + length]
            tails += 1
        assert tails >= 8


def test_open_into_rejects_flips_and_keeps_no_plaintext(obj64k: tuple[bytes, bytes]) -> None:
    _, obj = obj64k
    out = bytearray(8 + MIB4)
    rng = random.Random(3)
    positions = [*range(0, BODY, 5), *(BODY + i * CT + d for i in range(5) for d in (0, 100, CT - 1))]
    for pos in (p for p in positions if p < len(obj)):
        buf = bytearray(obj)
        buf[pos] ^= 1 << rng.randrange(8)
        expect_rejected(partial(SEALER.open_into, K_CHUNK, NAME, buf, out))
        assert not any(out[: len(obj)])
    expect_rejected(partial(SEALER.open_into, K_CHUNK, NAME, obj, bytearray(len(obj) - 200)))
