"""Compression's pure pieces (issue 15): the vault parameter, the ``z`` field of a blob ref, what
``squeeze`` keeps, and inflation bounded by the declared length (bombs, junk, stray frames)."""

from __future__ import annotations

import json
import os

import pytest
import zstandard

from sigmavault.engine.errors import IntegrityError
from sigmavault.engine.format import squeeze
from sigmavault.engine.format.canonical import b64u
from sigmavault.engine.format.pages import BlobRef, ref_from_json, ref_to_json
from sigmavault.engine.keys.keyring import Params
from sigmavault.engine.keys.schedule import KIND_CHUNK, KIND_DATA_PACK, KIND_PAGE_PACK

MIB = 1 << 20
CS = 4 * MIB
TEXT = b"".join(b"%06d compressible words, again and again\n" % i for i in range(120_000))[:CS]


def ref_json(**extra: object) -> dict[str, object]:
    return {"e": 1, "k": KIND_DATA_PACK, "id": b64u(b"\x07" * 32), "o": "o/" + "ab" * 32, "off": 100,
            "len": 50_000, "ol": 1 << 20, **extra}


def test_params_take_the_three_modes_and_nothing_else() -> None:
    for mode in squeeze.MODES:
        p = Params(compression=mode)
        assert Params.from_json(json.loads(json.dumps(p.to_json()))) == p
    for bad in ("zstd", "off", "auto", "gzip", ""):
        with pytest.raises(IntegrityError):
            Params.from_json({**Params().to_json(), "compression": bad})
    assert Params().compression == "none"  # what every vault made before compression holds: read as off


def test_a_compressed_ref_round_trips_and_its_flag_is_checked() -> None:
    ref = ref_from_json(ref_json(z=900), (KIND_DATA_PACK,))
    assert (ref.zlen, ref.length, ref.stored_len) == (900, 50_000, 900)
    assert ref_to_json(ref) == ref_json(z=900)
    assert ref_from_json(ref_json(), (KIND_DATA_PACK,)).stored_len == 50_000
    hostile = [
        ref_json(z=50_000),  # not smaller than the plaintext
        ref_json(z=0),
        ref_json(z=-1),
        ref_json(z=True),
        ref_json(z="900"),
        ref_json(z=900, k=KIND_CHUNK, off=0),  # full chunks are never compressed
        {k: v for k, v in ref_json(z=900, k=KIND_PAGE_PACK).items() if k != "ol"},
        ref_json(z=(1 << 20) - 100),  # the frame would run past the object
    ]
    for value in hostile:
        with pytest.raises(IntegrityError):
            ref_from_json(value, (KIND_CHUNK, KIND_DATA_PACK, KIND_PAGE_PACK))


def test_a_frame_no_smaller_than_its_plaintext_is_refused() -> None:
    with pytest.raises(ValueError):
        BlobRef(1, KIND_DATA_PACK, b"\x01" * 32, "o/" + "cd" * 32, 0, 10, 200, zlen=10)


def test_squeeze_keeps_text_and_skips_random_tiny_and_off() -> None:
    z = squeeze.squeeze(TEXT, squeeze.AUTO, CS)
    assert z is not None and len(z) < CS // 10
    assert squeeze.inflate(z, CS, CS) == TEXT
    assert squeeze.squeeze(os.urandom(CS), squeeze.AUTO, CS) is None
    assert squeeze.squeeze(os.urandom(20_000), squeeze.MAX, CS) is None  # tried, saves nothing: kept as is
    assert squeeze.squeeze(TEXT, squeeze.NONE, CS) is None
    assert squeeze.squeeze(b"a" * 40, squeeze.AUTO, CS) is None
    small = TEXT[:20_000]
    zmax = squeeze.squeeze(small, squeeze.MAX, CS)
    assert zmax is not None and squeeze.inflate(zmax, len(small), CS) == small


def test_a_full_chunk_is_compressed_only_to_half_a_chunk_or_less() -> None:
    half = os.urandom(CS // 2 + 4096) + bytes(CS // 2 - 4096)  # compresses to just over half a chunk
    assert squeeze.squeeze(half, squeeze.AUTO, CS) is None
    tail = os.urandom(CS // 2 + 4096) + bytes(CS // 2 - 4097)  # a tail that saves as much: kept
    assert squeeze.squeeze(tail, squeeze.AUTO, CS) is not None


@pytest.mark.parametrize("case", ["bomb", "longer", "two frames", "no size", "truncated", "junk", "trailing",
                                  "too long a claim", "empty claim"])
def test_inflate_never_goes_past_the_declared_length(case: str) -> None:
    frame = zstandard.ZstdCompressor(level=3).compress(TEXT[:100_000])
    length = 100_000
    if case == "bomb":
        frame = zstandard.ZstdCompressor(level=19).compress(bytes(512 * MIB))
    elif case == "longer":
        length = 99_999
    elif case == "two frames":
        frame += frame
    elif case == "no size":
        frame = zstandard.ZstdCompressor(level=1, write_content_size=False).compress(bytes(64 * MIB))
    elif case == "truncated":
        frame = frame[:-7]
    elif case == "junk":
        frame = os.urandom(300)
    elif case == "trailing":
        frame += b"\x00\x01"
    elif case == "too long a claim":
        length = CS + 1
    elif case == "empty claim":
        length = 0
    with pytest.raises(IntegrityError) as err:
        squeeze.inflate(frame, length, CS)
    assert "compressed blob" in str(err.value)
