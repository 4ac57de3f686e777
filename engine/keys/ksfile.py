"""The keystore file ``k/{generation:016x}``: strict parse and encode (CRYPTO.md §1.2), no keys opened here.

Pure and synchronous. Byte layout (see :mod:`.keystore` for unlocking)::

    file = {"payload":"<b64u(P)>","mac":"<b64u(HMAC-SHA256(K_ksmac, "vault/v1/keystore\\0" ‖ P))>"}
    P    = canonical JSON {"format":"vault-keystore/v1","generation":g,"keyring":"<b64u(keyring_ct)>",
                           "slots":[slot, …],"vault_id":"<32 B>"}

The format is ``vault-keystore/v2`` exactly when the keyring holds write-only clients (writer slots,
:mod:`.writers`); a vault without writers keeps writing v1, byte for byte as before. v1 allows no
writer slot. A keystore of a format version above the ones this client knows is a UsageError that
says to upgrade; anything else malformed is the one IntegrityError.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field

from ..errors import UsageError
from ..format.canonical import MAX_DOCUMENT, b64u, dumps, fail, integer, loads, obj, string, unb64u
from .schedule import expand
from .secret import Secret
from .slots import Slot, WriterSlot, slot_from_json

FORMAT = "vault-keystore/v1"
FORMAT_V2 = "vault-keystore/v2"
#: the keystore format versions this client reads (tests shrink it to play an older client)
SUPPORTED: tuple[int, ...] = (1, 2)
MAX_SLOTS = 64
MAC_LABEL = b"vault/v1/keystore\x00"
_FORMAT = re.compile(r"vault-keystore/v([1-9][0-9]{0,8})")


def keystore_name(generation: int) -> str:
    return f"k/{generation:016x}"


def format_name(version: int) -> str:
    return f"vault-keystore/v{version}"


@dataclass(frozen=True, slots=True)
class Parsed:
    """A strictly parsed keystore whose MAC is not verified yet (that needs the KSK)."""

    payload: bytes = field(repr=False)
    mac: bytes = field(repr=False)
    vault_id: bytes
    generation: int
    slots: tuple[Slot, ...]
    keyring_ct: bytes = field(repr=False)
    version: int = 1


def format_version(value: object) -> int:
    """The version of a keystore's ``format`` string. UsageError for one newer than this client reads
    (before any key is tried: an older client meeting a newer vault), IntegrityError for anything else."""
    match = _FORMAT.fullmatch(string(value, 64))
    if match is None:
        fail("format")
    version = int(match.group(1))
    if version > max(SUPPORTED):
        raise UsageError(f"this vault uses format v{version}, which needs a newer sigmavault; upgrade")
    if version not in SUPPORTED:
        fail("format")
    return version


def parse(data: bytes, name: str) -> Parsed:
    """Step 1: strict parse of the object stored under ``name``. IntegrityError on anything odd."""
    outer = obj(loads(data, MAX_DOCUMENT), {"payload", "mac"})
    payload = unb64u(outer["payload"])
    mac = unb64u(outer["mac"], 32)
    p = obj(loads(payload, MAX_DOCUMENT), {"format", "vault_id", "generation", "slots", "keyring"})
    version = format_version(p["format"])
    generation = integer(p["generation"], 1)
    if not hmac.compare_digest(name.encode("utf-8", "replace"), keystore_name(generation).encode()):
        fail("name")
    raw_slots = p["slots"]
    if not isinstance(raw_slots, list) or not 1 <= len(raw_slots) <= MAX_SLOTS:
        fail("slots")
    slot_list = tuple(slot_from_json(s) for s in raw_slots)
    if len({s.id for s in slot_list}) != len(slot_list):
        fail("duplicate slot id")
    if version == 1 and any(isinstance(s, WriterSlot) for s in slot_list):
        fail("writer slot in a v1 keystore")
    vault_id = unb64u(p["vault_id"], 32)
    return Parsed(payload, mac, vault_id, generation, slot_list, unb64u(p["keyring"]), version)


def _mac(ksk: Secret, payload: bytes) -> bytes:
    return hmac.digest(expand(ksk.reveal(), "keystore-mac"), MAC_LABEL + payload, "sha256")


def encode(ksk: Secret, vault_id: bytes, generation: int, slot_list: tuple[Slot, ...], keyring_ct: bytes,
           version: int = 1) -> bytes:
    """Serialize and MAC a keystore; the outer object is written payload first (B.8's hash depends on it)."""
    payload = dumps(
        {
            "format": format_name(version),
            "vault_id": b64u(vault_id),
            "generation": generation,
            "slots": [s.to_json() for s in slot_list],
            "keyring": b64u(keyring_ct),
        }
    )
    return b'{"payload":"' + b64u(payload).encode() + b'","mac":"' + b64u(_mac(ksk, payload)).encode() + b'"}'
