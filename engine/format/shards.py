"""Erasure-coded shards of a dispersed vault (issue 12; docs/format.md "Dispersed vaults"). Pure.

A sealed object (``o/…``: a full chunk, a data pack or a page pack) is split after encryption into
``k`` data blocks of ``L = ⌈|object| / k⌉`` bytes (the last one zero-filled) and coded by zfec
(Reed–Solomon over GF(2⁸), systematic) into ``n`` blocks, any ``k`` of which rebuild it::

    shard   = hdr ‖ block_i ‖ tag                                                   28 + L + 32 bytes
    hdr     = u8 0x01 (format) ‖ u8 k ‖ u8 n ‖ u8 i ‖ u64 |object| ‖ write_id (16 random bytes)
    tag     = PRF(K_shard-mac, "vault/v1/shard\\0" ‖ vault_id ‖ lp(object name) ‖ hdr ‖ block_i)
              (the vault's PRF as the MAC: keyed BLAKE3, or HMAC-SHA256 in a FIPS vault)
    name_i  = "o/" ‖ hex(P_i(raw object name))      on place i (its own namespace: only shards live under o/)
    P_i     = 4-round Feistel permutation of 32 bytes, halves of 16, round r:
              (L, R) → (R, L ⊕ PRF(K_shard-name, "shard\\0" ‖ u8 i ‖ u8 r ‖ R)[:16])

The name is a keyed permutation of the object name, different for every index, so providers
cannot link the shards of one object by name, yet a client with the key turns a place's listing
back into object names (``list`` and prune need them). ``write_id`` is fresh per encoding: shards
of two uploads of one name (a retry, a writer racing another) never mix in one decode.
The keys come from the vault-level key, never from an epoch, so a key rotation never breaks a
shard read::

    K_shard-name = Expand(VAK, "dispersal-shard-name")
    K_shard-mac  = Expand(VAK, "dispersal-shard-mac")
    K_place      = Expand(VAK, "dispersal-place")      tags each place's id record (see place_record)

zfec releases the GIL while it codes, so the backend runs :func:`encode` / :func:`decode` in a
thread and the event loop keeps running.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import blake3

from ..errors import UsageError
from ..keys.schedule import PrfName, expand, prf
from ..keys.secret import Secret
from .canonical import fail

FORMAT = 0x01
HDR = 28
TAG = 32
WRITE_ID = 16
PLACE_ID = 16
PLACE_RECORD = 2 + PLACE_ID + TAG
MAX_PLACES = 16
LABELS = ("dispersal-shard-name", "dispersal-shard-mac", "dispersal-place")
_SHARD_CTX = b"vault/v1/shard\x00"
_PLACE_CTX = b"vault/v1/place\x00"


def lp(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def check_layout(k: int, n: int) -> None:
    """``1 ≤ k ≤ n ≤ 16``, else ValueError (callers turn it into their own error)."""
    if not (type(k) is int and type(n) is int and 1 <= k <= n <= MAX_PLACES):
        raise ValueError(f"a dispersal needs 1 <= needed <= places <= {MAX_PLACES} (got {k} of {n})")


def tolerated(k: int, n: int) -> int:
    """How many places may be lost: data needs k shards, commits a majority: min(n−k, ⌈n/2⌉−1)."""
    return min(n - k, (n + 1) // 2 - 1)


@dataclass(frozen=True, slots=True)
class ShardKeys:
    """The only keys a dispersed backend holds; ``repr`` shows nothing secret."""

    vault_id: bytes
    prf_name: PrfName
    name_key: Secret
    mac_key: Secret
    place_key: Secret

    @classmethod
    def derive(cls, vak: bytes, vault_id: bytes, prf_name: PrfName) -> ShardKeys:
        name, mac, place = (Secret(expand(vak, label), label) for label in LABELS)
        return cls(vault_id, prf_name, name, mac, place)

    def _round(self, index: int, r: int, half: bytes) -> bytes:
        return prf(self.prf_name, self.name_key.reveal(), b"shard\x00" + bytes([index, r]) + half)[:16]

    def shard_name(self, name: str, index: int) -> str:
        """Where shard ``index`` of object ``name`` (``o/`` ‖ 64 hex) lives on place ``index``."""
        raw = bytes.fromhex(name[2:])
        left, right = raw[:16], raw[16:]
        for r in range(4):
            left, right = right, _xor(left, self._round(index, r, right))
        return "o/" + (left + right).hex()

    def object_name(self, shard_name: str, index: int) -> str:
        """The inverse of :meth:`shard_name`: the object whose shard ``index`` this is."""
        raw = bytes.fromhex(shard_name[2:])
        left, right = raw[:16], raw[16:]
        for r in reversed(range(4)):
            left, right = _xor(right, self._round(index, r, left)), left
        return "o/" + (left + right).hex()

    def tag(self, name: str, hdr: bytes | memoryview, block: bytes | memoryview) -> bytes:
        """The vault's PRF as the MAC, streamed (keyed BLAKE3: ~4× HMAC-SHA256 here; FIPS vaults: HMAC)."""
        start = _SHARD_CTX + self.vault_id + lp(name.encode("ascii"))
        if self.prf_name == "hmac-sha256":
            mac = hmac.new(self.mac_key.reveal(), start, hashlib.sha256)
            mac.update(hdr)
            mac.update(block)
            return mac.digest()
        keyed = blake3.blake3(start, key=self.mac_key.reveal())
        keyed.update(hdr)
        keyed.update(block)
        return keyed.digest()

    def place_record(self, place_id: bytes) -> bytes:
        """The record each place keeps under :data:`PLACE_NAME`:
        ``u8 1 ‖ u8 16 ‖ id ‖ HMAC-SHA256(K_place, "vault/v1/place\\0" ‖ vault_id ‖ id)``."""
        if len(place_id) != PLACE_ID:
            raise ValueError("bad place id")
        body = bytes([FORMAT, PLACE_ID]) + place_id
        return body + hmac.new(self.place_key.reveal(), _PLACE_CTX + self.vault_id + place_id, hashlib.sha256).digest()

    def place_id_of(self, record: bytes) -> bytes:
        """The place id in ``record`` if this vault tagged it; else the one IntegrityError."""
        if len(record) != PLACE_RECORD or record[:2] != bytes([FORMAT, PLACE_ID]):
            fail("place record")
        place_id = record[2 : 2 + PLACE_ID]
        if not hmac.compare_digest(self.place_record(place_id), record):
            fail("place record")
        return place_id


PLACE_NAME = "l/dispersal-place"


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


@dataclass(frozen=True, slots=True)
class Shard:
    k: int
    n: int
    index: int
    length: int
    write_id: bytes
    block: memoryview


def _zfec() -> Any:
    try:
        import zfec
    except ImportError:
        raise UsageError("dispersed vaults need zfec: pip install 'sigmavault[disperse]'") from None
    return zfec


def block_len(length: int, k: int) -> int:
    return max(1, -(-length // k))


def header(k: int, n: int, index: int, length: int, write_id: bytes) -> bytes:
    return bytes([FORMAT, k, n, index]) + length.to_bytes(8, "big") + write_id


def encode(
    keys: ShardKeys, name: str, data: bytes | bytearray | memoryview, k: int, n: int, write_id: bytes | None = None
) -> list[bytes]:
    """The n shards of ``data`` (``write_id`` is for known-answer tests only)."""
    check_layout(k, n)
    wid = secrets.token_bytes(WRITE_ID) if write_id is None else write_id
    view = memoryview(data).cast("B")
    size = block_len(len(view), k)
    blocks: list[bytes | memoryview] = [view[i * size : (i + 1) * size] for i in range(k)]  # no copies
    if len(blocks[-1]) < size:
        blocks[-1] = bytes(blocks[-1]).ljust(size, b"\0")  # only the last block is zero-filled
    coded = _zfec().Encoder(k, n).encode(tuple(blocks)) if n > 1 else blocks
    out = []
    for i, block in enumerate(coded):
        hdr = header(k, n, i, len(view), wid)
        out.append(b"".join((hdr, block, keys.tag(name, hdr, block))))
    return out


def parse(keys: ShardKeys, name: str, index: int, k: int, n: int, data: bytes) -> Shard:
    """Check a shard fetched as shard ``index`` of ``name`` in a k-of-n layout, tag first (constant
    time); the one IntegrityError for anything wrong (a truncated, flipped, moved or swapped shard)."""
    if len(data) < HDR + 1 + TAG:
        fail("shard length")
    hdr, block, tag = memoryview(data)[:HDR], memoryview(data)[HDR:-TAG], data[-TAG:]
    if not hmac.compare_digest(keys.tag(name, hdr, block), tag):
        fail("shard tag")
    length = int.from_bytes(hdr[4:12], "big")
    if tuple(hdr[:4]) != (FORMAT, k, n, index) or len(block) != block_len(length, k):
        fail("shard header")
    return Shard(k, n, index, length, bytes(hdr[12:HDR]), block)


def decode(shards: list[Shard]) -> bytes:
    """The object from k shards of one write (same layout, length and write id)."""
    first = shards[0]
    k = first.k
    if len(shards) != k or len({(s.n, s.length, s.write_id) for s in shards}) != 1:
        raise ValueError("decode needs k shards of one write")
    shards = sorted(shards, key=lambda s: s.index)
    if [s.index for s in shards] == list(range(k)):
        blocks = [bytes(s.block) for s in shards]  # the data blocks themselves: nothing to solve
    else:
        decoder = _zfec().Decoder(k, first.n)
        blocks = decoder.decode(tuple(bytes(s.block) for s in shards), tuple(s.index for s in shards))
    return b"".join(blocks)[: first.length]
