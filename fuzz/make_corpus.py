"""Write the seed corpus ``fuzz/corpus/<harness>/`` from valid encodings made by the real format code.

``python -m fuzz.make_corpus`` is deterministic (fixed keys; fixed salts where the code takes
one), so re-running it changes nothing that is committed. Each seed is one mode byte (see the
harness docstring) and a body; file names are the first 16 hex digits of the SHA-1 of the seed,
as libFuzzer names its own finds. Inputs that once crashed a harness are kept there too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sigmavault.engine.format import aead as chunked
from sigmavault.engine.format import bech32, commits, pages
from sigmavault.engine.format import envelope as objects
from sigmavault.engine.format.canonical import b64u, dumps
from sigmavault.engine.format.framing import frame_header
from sigmavault.engine.keys import keyring, xwing
from sigmavault.engine.keys.credentials import RECOVERY_HRP
from sigmavault.engine.keys.schedule import KIND_CHUNK, KIND_COMMIT, KIND_DATA_PACK, KIND_PAGE_PACK
from sigmavault.engine.keys.secret import Secret
from sigmavault.engine.local import localstate

from . import fuzz_blobrefs, fuzz_drops, fuzz_keystore, fuzz_objects
from .common import EPOCH, LOCAL_KEY, SEALER, VAULT_ID

CORPUS = Path(__file__).resolve().parent / "corpus"
SALT = bytes(24)


def _u32(*values: int) -> bytes:
    return b"".join(v.to_bytes(4, "big") for v in values)


def _page() -> bytes:
    chunk = pages.BlobRef(EPOCH, KIND_CHUNK, bytes(32), "o/" + "1" * 64, 0, 1500, 1600)
    packed = pages.BlobRef(EPOCH, KIND_DATA_PACK, bytes(range(32)), "o/" + "2" * 64, 100, 500, 4200)
    sub = pages.BlobRef(EPOCH, KIND_PAGE_PACK, bytes(32), "o/" + "3" * 64, 0, 77, None)
    common = {"mode": 0o644, "uid": 1000, "gid": 1000, "mtime_ns": 1, "ctime_ns": 2}
    entries = (
        pages.Entry(b"a", "f", size=3, inline=b"abc", xattrs=((b"user.k", b"v"),), **common),  # type: ignore[arg-type]
        pages.Entry(b"big", "f", size=2000, blobs=(chunk, packed), **common),  # type: ignore[arg-type]
        pages.Entry(b"dir", "d", pages=(sub,), **common),  # type: ignore[arg-type]
        pages.Entry(b"link", "l", target=b"../a", **common),  # type: ignore[arg-type]
    )
    return pages.encode_page(pages.Page(entries))


def _commit(gen: int) -> bytes:
    sub = pages.BlobRef(EPOCH, KIND_PAGE_PACK, bytes(32), "o/" + "3" * 64, 0, 77, None)
    parent = None if gen == 0 else bytes(32)
    return commits.encode_commit(commits.Commit(VAULT_ID, gen, parent, EPOCH, 1, (sub,), bytes(16), 1_700_000_000))


def _ring() -> bytes:
    ring = keyring.Keyring(
        VAULT_ID, 1, fuzz_keystore.VAK, 2,
        (keyring.Epoch(1, "retired", Secret(bytes(32), "rk"), 5), keyring.Epoch(2, "active", Secret(bytes(32), "rk"))),
        keyring.Params(),
    )
    return ring.to_bytes()


def _payload() -> bytes:
    return dumps({
        "format": "vault-keystore/v1", "vault_id": b64u(VAULT_ID), "generation": 1,
        "slots": [fuzz_keystore.SLOT.to_json()], "keyring": b64u(fuzz_keystore._keyring_ct(_ring())),
    })


def _relabelled_payload(label: str) -> bytes:
    """A payload whose slot label a co-writer set through an ASCII escape (a regression seed)."""
    p = json.loads(_payload())
    p["slots"][0]["label"] = label
    return json.dumps(p, sort_keys=True, separators=(",", ":")).encode()


def _drops() -> list[bytes]:
    """The genuine records of the known-answer vectors (fixed there: signatures are randomised) and their parts."""
    records = [bytes.fromhex(str(r["record"])) for r in fuzz_drops.RECORDS]
    return [b"\0\0" + records[0], b"\0\1" + records[1], b"\0\0" + records[1],
            b"\1" + str(fuzz_drops.RECORDS[0]["body"]).encode(), b"\2" + fuzz_drops.NAMES[1].encode()]


def _state() -> localstate.LocalState:
    return localstate.LocalState(VAULT_ID, bytes(16), 3, 1, 7, bytes(32), bytes(16))


def seeds() -> dict[str, list[bytes]]:
    page, body = _page(), _commit(1)
    hdr = objects.header(EPOCH)
    ctx = objects.context(VAULT_ID, KIND_CHUNK, fuzz_objects.NAME, hdr)
    stored = bytes(range(256)) * 3
    chunk_obj = SEALER.seal(KIND_CHUNK, fuzz_objects.NAME, stored, salt=SALT)
    frames = [
        bytes([KIND_CHUNK]) + frame_header(5) + b"hello" + bytes(100),
        bytes([KIND_PAGE_PACK]) + frame_header(0),
        bytes([KIND_COMMIT]) + frame_header(3) + b"abc",
    ]
    out: dict[str, list[bytes]] = {
        "objects": [
            b"\0" + SEALER.seal(kind, fuzz_objects.NAME, stored, salt=SALT)
            for kind in (KIND_CHUNK, KIND_PAGE_PACK, KIND_COMMIT, KIND_DATA_PACK)
        ] + [
            b"\1" + chunked.seal(bytes(32), b"ctx", b"x" * 40000, salt=SALT),
            b"\2\0" + _u32(len(chunk_obj), 10, 100)[1:] + chunk_obj,
            b"\4" + _u32(5, 600) + stored,
            b"\0" + hdr + chunked.seal(SEALER.keys.enc_key(KIND_CHUNK), ctx, frame_header(0), salt=SALT),
        ] + [b"\3" + f for f in frames],
        "canonical": [b"\0" + page, b"\0" + body, b"\0" + _payload(), b"\1" + b64u(bytes(range(32))).encode(),
                      b"\2" + b'{"a":1,"b":"x"}', b"\0" + b'[1,-2,"\\u00e9",{"k":null},true]',
                      b"\0" + b"[" * 993 + b"]" * 993],  # regression: parsed, then the re-encode recursed
        "bech32": [
            b"\0" + xwing.recipient(fuzz_keystore.PK).encode(),
            b"\0" + xwing.identity(fuzz_keystore.SEED).encode(),
            b"\0" + bech32.encode(RECOVERY_HRP, bytes(48)).encode(),
            b"\1\0" + fuzz_keystore.PK, b"\1\2" + bytes(48), b"\2\1" + bytes(32),
        ],
        "pages": [b"\0" + page, b"\1\3" + page, b"\0" + b'{"entries":[],"v":1}',
                  b"\2" + dumps(pages.entry_to_json(pages.decode_page(page).entries[1]))],
        "blobrefs": [
            bytes([0, 1, 0, 0]) + _u32(100, 500, 0) + bytes([1, 1, 0, 0]) + _u32(0, 2000, 0) + _u32(150),
            bytes([2, 1, 0, 0]) + _u32(0, 3000, 0) + bytes([0, 1, 2, 0]) + _u32(0, 10, 0xFFFFFF00),
            bytes([0x80, 1, 0, 0]) + _u32(0xFFFFFFF0, 0xFFFF, 0),
            # compressed members: the real frame, the bomb, the real frame with a short claim, a plain pack
            bytes([6, 1, 0, 1]) + _u32(0, len(fuzz_blobrefs.FRAME), 0)
            + bytes([6, 1, 0, 1]) + _u32(len(fuzz_blobrefs.FRAME), len(fuzz_blobrefs.ZPACK_DATA), 0)
            + bytes([6, 1, 0, 3]) + _u32(0, len(fuzz_blobrefs.FRAME), 5000)
            + bytes([0, 1, 0, 1]) + _u32(0, 100, 0) + _u32(20),
        ],
        "commits": [b"\0" + _commit(0), b"\0" + body, b"\1\1" + body, b"\2\4\0\0\0\0",
                    b"\2\4\0\1\2\3" + body,
                    b"\0" + body.replace(b'"time":1700000000', b'"time":4611686018427387904')],  # regression
        "keystore": [
            b"\0" + fuzz_keystore._file([fuzz_keystore.SLOT.to_json()], fuzz_keystore._keyring_ct(_ring())),
            b"\1" + _payload(), b"\2" + _ring(), b"\3" + _ring(), b"\4" + fuzz_keystore.SLOT.wrapped,
            b"\1" + _relabelled_payload("\ud800"), b"\1" + _relabelled_payload("\x1b[2J"),
        ],
        "localstate": [b"\0" + localstate.encode(_state(), LOCAL_KEY), b"\1" + localstate._payload(_state())],
        "drops": _drops(),
    }
    assert set(out) == {m.split("_", 1)[1] for m in _harness_modules()}
    return out


def _harness_modules() -> list[str]:
    return sorted(p.stem for p in Path(__file__).resolve().parent.glob("fuzz_*.py"))


def main() -> None:
    for name, items in seeds().items():
        folder = CORPUS / name
        folder.mkdir(parents=True, exist_ok=True)
        for item in items:
            (folder / hashlib.sha1(item).hexdigest()[:16]).write_bytes(item)


if __name__ == "__main__":
    main()
