"""Drop records of write-only clients (docs/format.md, "Write-only clients: drop records"). Pure, synchronous.

A writer uploads its drop's objects under ``d/<writer hex>/o/`` and then one create-only record
``d/<32 hex writer id>/<seq:016x>`` (seq ≥ 1). Byte layout::

    record  = signed ‖ signature (3373)
    signed  = "SVDR" ‖ u8 1 (version) ‖ vault_id (32) ‖ writer_id (16) ‖ u64 seq ‖ prev (32) ‖ u32 epoch
              ‖ enc (1168) ‖ u32 len(body_ct) ‖ body_ct
    enc     = X-Wing HPKE SealBase(drop_pk, info, drop key (32))                  (xwing.seal)
    info    = "vault/v1/drop\\0" ‖ vault_id ‖ writer_id ‖ u64 seq ‖ u32 epoch
    body_ct = C2SP chunked seal(K, ctx, frame(body, pad_floor 1024))            (aead.seal)
              K = EpochKeys.for_drop(…, drop key).commit_enc = Expand(drop key, "drop/record")
    ctx     = "vault/v1/drop-record\\0" ‖ vault_id ‖ writer_id ‖ u64 seq ‖ u32 epoch
    signature = sign.sign(signing seeds, "vault/v1/drop-record-sig\\0" ‖ signed)   (hybrid Ed25519 + ML-DSA-65)
    prev    = 32 zero bytes at seq 1, else SHA-256 of the writer's previous record's exact bytes

The body is canonical JSON framed as objects are (``u8 1 ‖ u8 0 ‖ u16 0 ‖ u32 len ‖ body ‖ zeros``)
and padded to ``max(1024, PADMÉ(8 + len))``, so a record's length is a fixed 4,642 bytes plus the
sealed length of a PADMÉ size: the provider learns about the size of the page list, not the tree.
Body::

    {"bytes":n,"dest":b64u(absolute raw path),"files":n,"finished":unix s,
     "root":[kind-2 refs under d/<this writer>/o/, this epoch, no drop key],"started":unix s,"v":1}

Every parser here ends in the one :class:`IntegrityError`; constructors and ``seal_record`` raise
``ValueError`` on a value the format cannot hold (a writer bug).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from ..keys import sign, xwing
from ..keys.schedule import KIND_PAGE_PACK, WRITER_ID_LEN, EpochKeys
from ..keys.secret import Secret
from . import aead as chunked
from .canonical import array, b64u, dumps, fail, integer, loads, obj, unb64u
from .framing import FRAME_HEADER, frame, framed_len, padme, unframe
from .pages import BlobRef, ref_from_json, ref_to_json, valid_name

MAGIC = b"SVDR\x01"
VAULT_ID_LEN = 32
HASH_LEN = 32
DROP_KEY_LEN = 32
ENC_LEN = xwing.sealed_len(DROP_KEY_LEN)  # 1168
MAX_SEQ = (1 << 63) - 1
MAX_EPOCH = (1 << 32) - 1
MAX_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z, as commits
MAX_I63 = (1 << 63) - 1
PAD_FLOOR = 1024
PATH_MAX = 4096
#: the largest padded body plaintext (a PADMÉ value: 60 × 16 KiB); keeps every record below MAX_RECORD
MAX_PADDED = 983_040
MAX_BODY = MAX_PADDED - FRAME_HEADER
MAX_RECORD = 1 << 20
_HEAD = len(MAGIC) + VAULT_ID_LEN + WRITER_ID_LEN + 8 + HASH_LEN + 4  # 97: magic … epoch
_FIXED = _HEAD + ENC_LEN + 4 + sign.SIG_LEN  # 4642: everything but body_ct
INFO_LABEL = b"vault/v1/drop\x00"
BODY_LABEL = b"vault/v1/drop-record\x00"
SIG_LABEL = b"vault/v1/drop-record-sig\x00"
ZERO_HASH = bytes(HASH_LEN)
_NAME = re.compile(r"d/([0-9a-f]{32})/([0-9a-f]{16})")


# --- names and bindings -----------------------------------------------------------------------


def _check_writer_seq(writer_id: bytes, seq: int) -> None:
    if type(writer_id) is not bytes or len(writer_id) != WRITER_ID_LEN:
        raise ValueError("a writer id is 16 bytes")
    if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
        raise ValueError("a drop's seq lies in 1 … 2^63 − 1")


def _check_ids(vault_id: bytes, writer_id: bytes, seq: int, epoch: int) -> None:
    if type(vault_id) is not bytes or len(vault_id) != VAULT_ID_LEN:
        raise ValueError("a vault id is 32 bytes")
    _check_writer_seq(writer_id, seq)
    if type(epoch) is not int or not 0 <= epoch <= MAX_EPOCH:
        raise ValueError("epoch out of range")


def record_name(writer_id: bytes, seq: int) -> str:
    """``d/<32 lowercase hex writer id>/<seq:016x>``."""
    _check_writer_seq(writer_id, seq)
    return f"d/{writer_id.hex()}/{seq:016x}"


def parse_record_name(name: str) -> tuple[bytes, int]:
    """``(writer id, seq)`` of a record name; IntegrityError unless it is exactly :func:`record_name`'s form."""
    m = _NAME.fullmatch(name) if isinstance(name, str) else None
    if m is None:
        fail("record name")
    seq = int(m.group(2), 16)
    if not 1 <= seq <= MAX_SEQ:
        fail("record seq")
    return bytes.fromhex(m.group(1)), seq


def _binding(vault_id: bytes, writer_id: bytes, seq: int, epoch: int) -> bytes:
    return vault_id + writer_id + seq.to_bytes(8, "big") + epoch.to_bytes(4, "big")


def drop_info(vault_id: bytes, writer_id: bytes, seq: int, epoch: int) -> bytes:
    """The HPKE ``info`` of a drop key: ``"vault/v1/drop\\0" ‖ vault_id ‖ writer_id ‖ u64 seq ‖ u32 epoch``."""
    _check_ids(vault_id, writer_id, seq, epoch)
    return INFO_LABEL + _binding(vault_id, writer_id, seq, epoch)


def body_context(vault_id: bytes, writer_id: bytes, seq: int, epoch: int) -> bytes:
    """The AEAD context of a record body: ``"vault/v1/drop-record\\0" ‖ vault_id ‖ writer_id ‖ u64 seq ‖ u32 epoch``."""
    _check_ids(vault_id, writer_id, seq, epoch)
    return BODY_LABEL + _binding(vault_id, writer_id, seq, epoch)


def new_drop_key(drop_pk: bytes, vault_id: bytes, writer_id: bytes, seq: int, epoch: int) -> tuple[Secret, bytes]:
    """A fresh drop key from the CSPRNG and its 1168-byte encapsulation ``enc`` to the vault's drop key."""
    key = secrets.token_bytes(DROP_KEY_LEN)
    enc = xwing.seal(drop_pk, drop_info(vault_id, writer_id, seq, epoch), key)
    return Secret(key, "drop key"), enc


def record_hash(data: bytes | bytearray | memoryview) -> bytes:
    """SHA-256 of a record's exact bytes: the next record's ``prev`` and the owner's watermark."""
    return hashlib.sha256(data).digest()


def padded_len(body_len: int) -> int:
    """The padded body plaintext length: ``max(1024, PADMÉ(8 + body_len))``."""
    if not 0 <= body_len <= MAX_BODY:
        raise ValueError("drop record body too large")
    return framed_len(body_len, MAX_BODY, PAD_FLOOR)


def record_len(body_len: int) -> int:
    """The length of a record whose canonical body is ``body_len`` bytes (what the provider sees)."""
    return _FIXED + chunked.sealed_len(padded_len(body_len))


# --- the body ---------------------------------------------------------------------------------


def _valid_dest(dest: object) -> bool:
    if type(dest) is not bytes or not dest.startswith(b"/") or len(dest) > PATH_MAX:
        return False
    return all(valid_name(part) for part in dest[1:].split(b"/"))


@dataclass(frozen=True, slots=True)
class DropBody:
    """What a drop brings: its tree's root directory pages and where that tree goes.

    ``dest`` is an absolute, normalised raw path other than ``/`` (``b"/web-1"``); ``root`` lists
    kind-2 refs of the drop tree's root directory; ``files``, ``bytes`` count what it holds;
    ``started`` ≤ ``finished`` are unix seconds of the run.
    """

    dest: bytes
    root: tuple[BlobRef, ...]
    files: int
    bytes: int
    started: int
    finished: int

    def __post_init__(self) -> None:
        if not _valid_dest(self.dest):
            raise ValueError("dest must be an absolute normalised path below /")
        if type(self.root) is not tuple or any(
            not isinstance(r, BlobRef) or r.kind != KIND_PAGE_PACK or r.writer is None or r.drop_key is not None
            for r in self.root
        ):
            raise ValueError("root lists kind-2 refs of drop objects, without a drop key")
        for value, hi in ((self.files, MAX_I63), (self.bytes, MAX_I63), (self.started, MAX_TIME),
                          (self.finished, MAX_TIME)):
            if type(value) is not int or not 0 <= value <= hi:
                raise ValueError("integer field out of range")
        if self.started > self.finished:
            raise ValueError("a drop finishes after it starts")


def encode_body(body: DropBody) -> bytes:
    """The canonical body bytes."""
    return dumps({
        "v": 1, "dest": b64u(body.dest), "root": [ref_to_json(r) for r in body.root], "files": body.files,
        "bytes": body.bytes, "started": body.started, "finished": body.finished,
    })


_BODY_FIELDS = {"v", "dest", "root", "files", "bytes", "started", "finished"}


def _check_refs(body: DropBody, writer_id: bytes, epoch: int) -> bool:
    return all(r.writer == writer_id and r.epoch == epoch for r in body.root)


def decode_body(data: bytes | bytearray | memoryview, writer_id: bytes, epoch: int) -> DropBody:
    """Parse untrusted body bytes of a record of ``writer_id`` and ``epoch``. Raises IntegrityError only."""
    raw = bytes(data)
    f: Any = obj(loads(raw, limit=MAX_BODY), _BODY_FIELDS)
    if type(f["v"]) is not int or f["v"] != 1:
        fail("body version")
    try:
        body = DropBody(
            dest=unb64u(f["dest"]),
            root=tuple(ref_from_json(r, (KIND_PAGE_PACK,)) for r in array(f["root"])),
            files=integer(f["files"]),
            bytes=integer(f["bytes"]),
            started=integer(f["started"], 0, MAX_TIME),
            finished=integer(f["finished"], 0, MAX_TIME),
        )
    except ValueError:
        fail("body")
    if not _check_refs(body, writer_id, epoch):
        fail("body refs")
    if encode_body(body) != raw:
        fail("not canonical")
    return body


# --- records ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DropRecord:
    """A parsed record (not yet verified or opened). ``signed`` is what the signature covers (after
    its label); ``hash`` is SHA-256 of the whole record, the next record's ``prev``."""

    vault_id: bytes
    writer_id: bytes
    seq: int
    prev: bytes
    epoch: int
    enc: bytes
    body_ct: bytes
    signed: bytes
    signature: bytes
    hash: bytes

    @property
    def name(self) -> str:
        return record_name(self.writer_id, self.seq)


def _check_keys(keys: EpochKeys, vault_id: bytes, writer_id: bytes, epoch: int) -> bool:
    return (hmac.compare_digest(keys.vault_id, vault_id) and keys.epoch == epoch
            and keys.prefix == f"d/{writer_id.hex()}/o/" and keys.drop_kem is None)


def seal_record(
    signing: Secret, keys: EpochKeys, writer_id: bytes, seq: int, prev: bytes, enc: bytes, body: DropBody, *,
    salt: bytes | None = None,
) -> bytes:
    """The bytes of record ``seq`` of ``writer_id``. ``keys`` is ``EpochKeys.for_drop`` of this drop (its
    vault id and epoch go in the header); ``enc`` its drop key's encapsulation (:func:`new_drop_key`);
    ``prev`` 32 zero bytes at seq 1, else :func:`record_hash` of record seq − 1. ``salt`` (the body
    AEAD's) is for known-answer tests only. ValueError on anything the format cannot hold."""
    vault_id, epoch = keys.vault_id, keys.epoch
    _check_ids(vault_id, writer_id, seq, epoch)
    if not _check_keys(keys, vault_id, writer_id, epoch):
        raise ValueError("keys are not this writer's drop keys")
    if type(prev) is not bytes or len(prev) != HASH_LEN or (seq == 1) != (prev == ZERO_HASH):
        raise ValueError("prev is 32 zero bytes exactly at seq 1, else the previous record's hash")
    if type(enc) is not bytes or len(enc) != ENC_LEN:
        raise ValueError("enc is an X-Wing encapsulation of a 32-byte drop key")
    if not _check_refs(body, writer_id, epoch):
        raise ValueError("root refs must be this writer's objects of this epoch")
    raw = encode_body(body)
    if len(raw) > MAX_BODY:
        raise ValueError("drop record body too large")
    msg = frame(raw, MAX_BODY, PAD_FLOOR)
    body_ct = chunked.seal(keys.commit_enc.reveal(), body_context(vault_id, writer_id, seq, epoch), msg, salt)
    signed = (MAGIC + vault_id + writer_id + seq.to_bytes(8, "big") + prev + epoch.to_bytes(4, "big") + enc
              + len(body_ct).to_bytes(4, "big") + body_ct)
    return signed + sign.sign(signing, SIG_LABEL + signed)


def parse_record(data: bytes | bytearray | memoryview, name: str) -> DropRecord:
    """Split untrusted record bytes fetched as ``name``; checks lengths, the name binding, the seq/prev
    rule and the padded size. Raises IntegrityError only. Verify and open it next."""
    writer_name, seq_name = parse_record_name(name)
    raw = bytes(data)
    if not _FIXED + chunked.HEAD + chunked.TAG <= len(raw) <= MAX_RECORD or raw[: len(MAGIC)] != MAGIC:
        fail("record")
    p = len(MAGIC)
    vault_id, p = raw[p : p + VAULT_ID_LEN], p + VAULT_ID_LEN
    writer_id, p = raw[p : p + WRITER_ID_LEN], p + WRITER_ID_LEN
    seq, p = int.from_bytes(raw[p : p + 8], "big"), p + 8
    prev, p = raw[p : p + HASH_LEN], p + HASH_LEN
    epoch, p = int.from_bytes(raw[p : p + 4], "big"), p + 4
    enc, p = raw[p : p + ENC_LEN], p + ENC_LEN
    ct_len, p = int.from_bytes(raw[p : p + 4], "big"), p + 4
    if ct_len != len(raw) - _FIXED:
        fail("record length")
    body_ct, p = raw[p : p + ct_len], p + ct_len
    if not hmac.compare_digest(writer_id, writer_name) or seq != seq_name:
        fail("record name")
    if (seq == 1) != hmac.compare_digest(prev, ZERO_HASH):
        fail("record prev")
    plain = len(body_ct) - chunked.HEAD - chunked.TAG * chunked.records_in(len(body_ct))
    if not PAD_FLOOR <= plain <= MAX_PADDED or padme(plain) != plain:
        fail("record padding")
    return DropRecord(vault_id, writer_id, seq, prev, epoch, enc, body_ct, raw[:p], raw[p:], record_hash(raw))


def verify_record(rec: DropRecord, verify_key: bytes) -> None:
    """Raise IntegrityError unless the writer whose verify key is ``verify_key`` signed ``rec``."""
    sign.verify(verify_key, SIG_LABEL + rec.signed, rec.signature)


def open_drop_key(rec: DropRecord, drop_seed: Secret) -> Secret:
    """The drop key of ``rec``, opened with the seed of its epoch's drop key pair (``EpochKeys.drop_kem``)."""
    key = xwing.open(drop_seed, drop_info(rec.vault_id, rec.writer_id, rec.seq, rec.epoch), rec.enc)
    if len(key) != DROP_KEY_LEN:
        fail("drop key")
    return Secret(key, "drop key")


def open_body(rec: DropRecord, keys: EpochKeys) -> DropBody:
    """The body of ``rec``; ``keys`` is ``EpochKeys.for_drop`` with its opened drop key. IntegrityError only."""
    if not _check_keys(keys, rec.vault_id, rec.writer_id, rec.epoch):
        fail("record keys")
    ctx = body_context(rec.vault_id, rec.writer_id, rec.seq, rec.epoch)
    if len(rec.body_ct) > MAX_RECORD:  # a DropRecord not made by parse_record
        fail("record length")
    msg = chunked.open(keys.commit_enc.reveal(), ctx, rec.body_ct)
    raw = unframe(msg)
    if len(msg) > MAX_PADDED or len(msg) != padded_len(len(raw)):
        fail("record padding")
    return decode_body(raw, rec.writer_id, rec.epoch)


__all__ = [
    "ENC_LEN",
    "MAX_RECORD",
    "DropBody",
    "DropRecord",
    "body_context",
    "decode_body",
    "drop_info",
    "encode_body",
    "new_drop_key",
    "open_body",
    "open_drop_key",
    "padded_len",
    "parse_record",
    "parse_record_name",
    "record_hash",
    "record_len",
    "record_name",
    "seal_record",
    "verify_record",
]
