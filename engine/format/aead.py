"""C2SP chunked-encryption v1 with SHA-256 and AES-256-GCM (CRYPTO.md "Notation", §3.5).

Pure and synchronous; holds no keys beyond one call.

Byte layout of ``seal(K, ctx, msg)``::

    salt (24) ‖ commitment (32) ‖ record_0 ‖ record_1 ‖ … ‖ record_{n-1}
    record_i = AES-256-GCM(key, base_nonce XOR u96(i), msg[16384·i : 16384·(i+1)], aad="")
             = ciphertext ‖ tag (16)
    key (32) ‖ base_nonce (12) ‖ commitment (32)
             = HKDF-Expand(prk=K, info="c2sp.org/chunked-encryption@v1+AEAD_AES_256_GCM\\0" ‖ salt ‖ ctx, 76)

Every record but the last carries exactly 16384 plaintext bytes; the last carries fewer (maybe 0),
so there are ``len(msg) // 16384 + 1`` records and ``len = 56 + len(msg) + 16·records``.

``open`` checks, in this order: the commitment (constant time) before any decryption; that
``(len − 56) mod 16400 ≥ 16`` (a cut at a record boundary); every tag. Every failure raises the one
:class:`IntegrityError`. Ranged opening (:func:`open_records`) needs the total ciphertext length
from an authenticated source (the catalog), never from the server.

Reused-buffer paths (no 4 MiB allocation per object, which costs several-fold here):
``seal_padded_into`` seals ``prefix ‖ body ‖ zero padding`` without assembling it, and
``open_into`` decrypts into a caller's buffer, zeroing it again if any check fails.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from ..errors import IntegrityError
from .canonical import fail

INFO_PREFIX = b"c2sp.org/chunked-encryption@v1+AEAD_AES_256_GCM\x00"
RECORD = 16384  # plaintext bytes per full record
TAG = 16
CT_RECORD = RECORD + TAG  # 16400
SALT = 24
COMMITMENT = 32
HEAD = SALT + COMMITMENT  # 56
MAX_RECORDS = 1 << 20  # far above any v1 object (≤ 1025 records at 16 MiB chunks); caps allocation
_ZERO_RECORD = bytes(RECORD)


@dataclass(frozen=True, slots=True)
class _Derived:
    key: bytes
    base_nonce: int
    commitment: bytes

    def __repr__(self) -> str:
        return "<derived object keys (redacted)>"


def derive(prk: bytes, salt: bytes, ctx: bytes) -> _Derived:
    okm = HKDFExpand(hashes.SHA256(), 76, INFO_PREFIX + salt + ctx).derive(prk)
    return _Derived(okm[:32], int.from_bytes(okm[32:44], "big"), okm[44:76])


def _nonce(base: int, index: int) -> bytes:
    return (base ^ index).to_bytes(12, "big")


def sealed_len(msg_len: int) -> int:
    return HEAD + msg_len + TAG * (msg_len // RECORD + 1)


def records_in(ct_len: int) -> int:
    """Number of records of a well-formed ciphertext of this length (checks rule 2)."""
    body = ct_len - HEAD
    if body < TAG or body % CT_RECORD < TAG:
        fail("length")
    n = body // CT_RECORD + 1
    if n > MAX_RECORDS:
        fail("length")
    return n


def seal(prk: bytes, ctx: bytes, msg: bytes | bytearray | memoryview, salt: bytes | None = None) -> bytes:
    """Seal ``msg``. ``salt`` is for known-answer tests only; production always draws a fresh one."""
    out = bytearray(sealed_len(len(msg)))
    seal_into(prk, ctx, msg, out, salt)
    return bytes(out)


def seal_into(
    prk: bytes,
    ctx: bytes,
    msg: bytes | bytearray | memoryview,
    out: bytearray | memoryview,
    salt: bytes | None = None,
) -> int:
    """Seal ``msg`` into the start of ``out`` (no per-call allocation of the output). Returns bytes written."""
    return seal_padded_into(prk, ctx, b"", msg, len(memoryview(msg).cast("B")), out, salt)


def seal_padded_into(
    prk: bytes,
    ctx: bytes,
    prefix: bytes,
    body: bytes | bytearray | memoryview,
    msg_len: int,
    out: bytearray | memoryview,
    salt: bytes | None = None,
) -> int:
    """Seal the message ``prefix ‖ body ‖ 0x00 × (msg_len − |prefix| − |body|)`` into the start of ``out``.

    The message is never assembled: records that lie inside ``body`` are encrypted straight from it,
    records of pure padding from a shared zero record, and only the (at most two) records that mix
    parts are copied into one 16 KiB scratch record. Returns the bytes written. ``salt`` is for
    known-answer tests only. Raises ValueError on a bad salt, a too-small ``out`` or a too-short
    ``msg_len`` (caller bugs, never data errors).
    """
    if salt is None:
        salt = secrets.token_bytes(SALT)
    if len(salt) != SALT:
        raise ValueError("salt must be 24 bytes")
    mv_in = memoryview(body).cast("B")
    p, b = len(prefix), len(mv_in)
    if msg_len < p + b:
        raise ValueError("message length shorter than its parts")
    total = sealed_len(msg_len)
    mv_out = memoryview(out).cast("B")
    if len(mv_out) < total:
        raise ValueError("output buffer too small")
    d = derive(prk, salt, ctx)
    aead = AESGCM(d.key)
    mv_out[:SALT] = salt
    mv_out[SALT:HEAD] = d.commitment
    zeros = memoryview(_ZERO_RECORD)
    scratch = memoryview(bytearray(RECORD))
    pos = HEAD
    for i in range(msg_len // RECORD + 1):
        lo = i * RECORD
        hi = min(lo + RECORD, msg_len)
        piece: memoryview
        if lo >= p and hi <= p + b:
            piece = mv_in[lo - p : hi - p]
        elif lo >= p + b:
            piece = zeros[: hi - lo]
        else:  # mixes prefix, body and padding
            piece = scratch[: hi - lo]
            piece[:] = zeros[: hi - lo]
            if lo < p:
                piece[: min(hi, p) - lo] = prefix[lo : min(hi, p)]
            start, end = max(lo, p), min(hi, p + b)
            if start < end:
                piece[start - lo : end - lo] = mv_in[start - p : end - p]
        end_pos = pos + len(piece) + TAG
        aead.encrypt_into(_nonce(d.base_nonce, i), piece, None, mv_out[pos:end_pos])
        pos = end_pos
    return total


def _check_commitment(prk: bytes, ctx: bytes, head: bytes | memoryview) -> _Derived:
    if len(head) != HEAD:
        fail("head")
    d = derive(prk, bytes(head[:SALT]), ctx)
    if not hmac.compare_digest(d.commitment, bytes(head[SALT:HEAD])):
        fail("commitment")
    return d


def open(prk: bytes, ctx: bytes, ct: bytes | bytearray | memoryview) -> bytes:
    """Open a whole ciphertext. Raises IntegrityError on any failure."""
    mv = memoryview(ct).cast("B")
    if len(mv) < HEAD + TAG:
        fail("short")
    d = _check_commitment(prk, ctx, mv[:HEAD])
    n = records_in(len(mv))
    out = bytearray(len(mv) - HEAD - TAG * n)
    _open_span(d, mv[HEAD:], 0, n, out)
    return bytes(out)


def open_into(prk: bytes, ctx: bytes, ct: bytes | bytearray | memoryview, out: bytearray | memoryview) -> int:
    """Open a whole ciphertext into the start of ``out`` (a reused buffer); return the plaintext length.

    Raises IntegrityError on any failure, including a ciphertext whose plaintext would not fit in
    ``out`` (the server chose the length); the bytes of ``out`` written so far are then zeroed, so no
    unverified plaintext is left behind.
    """
    mv = memoryview(ct).cast("B")
    if len(mv) < HEAD + TAG:
        fail("short")
    d = _check_commitment(prk, ctx, mv[:HEAD])
    n = records_in(len(mv))
    size = len(mv) - HEAD - TAG * n
    mv_out = memoryview(out).cast("B")
    if size > len(mv_out):
        fail("too long")
    try:
        _open_span(d, mv[HEAD:], 0, n, mv_out)
    except IntegrityError:
        mv_out[:size] = bytes(size)
        raise
    return size


def _open_span(d: _Derived, body: memoryview, first: int, count: int, out: bytearray | memoryview) -> None:
    """Decrypt ``count`` consecutive records starting at index ``first`` from ``body`` into ``out``."""
    aead = AESGCM(d.key)
    pos = 0
    opos = 0
    mv_out = memoryview(out)
    for j in range(count):
        clen = min(CT_RECORD, len(body) - pos)
        if clen < TAG:
            fail("record")
        rec = body[pos : pos + clen]
        try:
            aead.decrypt_into(_nonce(d.base_nonce, first + j), rec, None, mv_out[opos : opos + clen - TAG])
        except InvalidTag:
            fail("tag")
        pos += clen
        opos += clen - TAG


@dataclass(frozen=True, slots=True)
class RecordSpan:
    """Which records of a sealed message cover a plaintext range, and where their bytes lie."""

    first: int  # first record index
    count: int  # number of records
    ct_start: int  # offset of the first record's bytes inside the ciphertext (after the 56-byte head)
    ct_end: int  # exclusive end offset inside the ciphertext
    skip: int  # plaintext bytes to drop from the first record to reach the range start


def span(ct_len: int, msg_off: int, msg_len: int) -> RecordSpan:
    """Records covering ``msg[msg_off : msg_off+msg_len]`` in a ciphertext of authenticated length ``ct_len``."""
    n = records_in(ct_len)
    plain_total = ct_len - HEAD - TAG * n
    if msg_off < 0 or msg_len < 0 or msg_off + msg_len > plain_total:
        fail("range")
    first = msg_off // RECORD
    last = (msg_off + max(msg_len, 1) - 1) // RECORD if msg_len else first
    last = min(last, n - 1)
    start = HEAD + first * CT_RECORD
    end = min(HEAD + (last + 1) * CT_RECORD, ct_len)
    return RecordSpan(first, last - first + 1, start, end, msg_off - first * RECORD)


def open_records(
    prk: bytes, ctx: bytes, head: bytes | memoryview, sp: RecordSpan, records: bytes | memoryview
) -> bytes:
    """Open the records described by ``sp`` (fetched by a ranged read) after checking the commitment.

    ``records`` must be exactly ``ct[sp.ct_start:sp.ct_end]``; the span comes from :func:`span` with
    the catalog's length, so a server that serves another length or another record fails here.
    """
    mv = memoryview(records).cast("B")
    if len(mv) != sp.ct_end - sp.ct_start:
        fail("range length")
    d = _check_commitment(prk, ctx, head)
    out = bytearray(len(mv) - TAG * sp.count)
    _open_span(d, mv, sp.first, sp.count, out)
    return bytes(out)
