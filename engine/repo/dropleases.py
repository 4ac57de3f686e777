"""A write-only client's folder ``d/<writer>/``, the only place its storage credential may reach:
its records listed, and what collecting its objects needs (models/dropgc.py), its lease and the
gone-markers:

- ``d/<writer>/l/<lease id, 16 hex>-<seq, 8 hex>`` a beat of a writer's lease. A writer cannot
  delete, so every beat (each ``ttl / 4``) is a new create-only object, and the beat numbered
  ``ffffffff`` ends the lease. The body is signed with the writer's hybrid key over the vault id
  and the object's name (no one else can make a writer's lease look alive, and no beat can be
  moved to another name). The pruner deletes a lease's beats once it has ended or expired.
- ``d/<writer>/g/<hex>`` a gone-marker: a pruner may delete ``d/<writer>/o/<hex>``. A writer lists
  its markers once its lease exists (W1 before W2) and never reuses a marked object; a marker goes
  only after its object is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct
import time

from ...backends.base import Backend
from ..errors import NotFound, ObjectLocked, VaultError
from ..format.canonical import fail
from ..keys import sign
from ..keys.secret import Secret
from .leases import DEFAULT_TTL, Clock, Heartbeat

END = 0xFFFFFFFF  # the beat that ends a writer's lease
_MAGIC = b"SVWL"
_LABEL = b"vault/v1/writer-lease\x00"
_BODY = struct.Struct(">QQd")  # seq, unix time, ttl
_LEASE = re.compile(r"d/([0-9a-f]{32})/l/([0-9a-f]{16})-([0-9a-f]{8})")
MAX_LEASE = 4096


def lease_name(writer_id: bytes, lid: str, seq: int) -> str:
    return f"d/{writer_id.hex()}/l/{lid}-{seq:08x}"


def parse_lease_name(name: str) -> tuple[str, str, int] | None:
    """(writer hex, lease id, seq) of a writer's lease beat, or None."""
    m = _LEASE.fullmatch(name)
    return None if m is None else (m[1], m[2], int(m[3], 16))


def marker_name(obj: str) -> str:
    """The gone-marker of object ``d/<writer>/o/<hex>``."""
    return obj[:35] + "g/" + obj[37:]


def marked_object(marker: str) -> str:
    return marker[:35] + "o/" + marker[37:]


def _message(vault_id: bytes, name: str, body: bytes) -> bytes:
    return _LABEL + vault_id + name.encode() + b"\x00" + body


def seal_beat(signing: Secret, vault_id: bytes, name: str, seq: int, ttl: float) -> bytes:
    body = _BODY.pack(seq, int(time.time()), ttl)
    return _MAGIC + body + sign.sign(signing, _message(vault_id, name, body))


def beat_ttl(data: bytes, name: str, vault_id: bytes, verify_key: bytes) -> float:
    """The TTL a beat states, after checking its signature (IntegrityError)."""
    if len(data) != 4 + _BODY.size + sign.SIG_LEN or not data.startswith(_MAGIC):
        fail("writer lease")
    body = data[4 : 4 + _BODY.size]
    sign.verify(verify_key, _message(vault_id, name, body), data[4 + _BODY.size :])
    return float(_BODY.unpack(body)[2])


class WriterLease(Heartbeat):
    """A write-only client's lease (W1 of models/dropgc.py): signed, create-only beats, an end beat."""

    ID_HEX = 16

    def __init__(self, backend: Backend, signing: Secret, vault_id: bytes, writer_id: bytes,
                 ttl: float = DEFAULT_TTL, clock: Clock = time.monotonic) -> None:
        super().__init__(ttl, clock)
        self._backend = backend
        self._signing = signing
        self._vault_id = vault_id
        self._writer = writer_id

    async def _put(self, lid: str, seq: int) -> None:
        name = lease_name(self._writer, lid, seq)
        data = await asyncio.to_thread(seal_beat, self._signing, self._vault_id, name, seq, self.ttl)
        await self._backend.put_if_absent(name, data)

    async def _finish(self, lid: str, seq: int, cut: bool) -> None:
        with contextlib.suppress(VaultError):  # not ended: the pruner waits until it expires
            await self._put(lid, END)


async def record_seqs(backend: Backend, writer_id: bytes) -> list[int]:
    """The seqs of the records ``d/<writer>/<seq:016x>`` listed in the writer's folder, ascending."""
    prefix = f"d/{writer_id.hex()}/"
    tails = [n[len(prefix):] async for n in backend.list(prefix)]
    return sorted(int(t, 16) for t in tails if len(t) == 16 and not t.strip("0123456789abcdef"))


async def marked(backend: Backend, writer_id: bytes) -> set[str]:
    """The writer's objects that carry a gone-marker (W2 reuses none of them)."""
    prefix = f"d/{writer_id.hex()}/g/"
    return {marked_object(n) async for n in backend.list(prefix) if len(n) == len(prefix) + 64}


async def delete_quietly(backend: Backend, names: set[str]) -> int:
    """Delete ``names``; how many were there."""
    gone = 0
    for name in sorted(names):
        with contextlib.suppress(NotFound, ObjectLocked):
            await backend.delete(name)
            gone += 1
    return gone


__all__ = ["END", "WriterLease", "beat_ttl", "lease_name", "marked", "marker_name", "parse_lease_name", "record_seqs"]
