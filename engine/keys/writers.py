"""Write-only clients (issue 18): the keyring's writer entries and the writer credential file.

Pure and synchronous. A writer is a keyring entry (sealed, never in the clear)::

    {"id":"…16B…","key":"…32B…","label":"web-1","prefix":"/web-1","state":"active"|"removed",
     "verify_key":"…1984B…"}

``key`` is the writer's id key (its drops' chunk ids and names, ``EpochKeys.for_drop``); ``verify_key``
checks its drop records (:mod:`.sign`). ``key remove`` keeps the entry as a tombstone (state
``removed``): old drops stay verifiable, later ones are refused. The keystore also holds a cleartext
writer slot ``{id, type: "writer", label, prefix}`` for each active writer (:mod:`.slots`).

The writer credential (``key add --writer --out FILE``, mode 0600) is canonical JSON::

    {"drop_pk":"…1216B…","epoch":e,"fingerprint":"…16B…","format":"sigmavault-writer/v1",
     "key":"…32B…","label":"…","params":{…},"prefix":"/web-1","signing":"…64B…",
     "vault_id":"…32B…","writer_id":"…16B…"}

It holds the writer's signing seeds and id key, the X-Wing public key of the epoch's drop key pair,
and the vault's identity and parameters: no key that opens an existing object, page, commit or
keystore (no KSK, VAK, epoch root key or subkey of one).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import UsageError
from ..format.canonical import MAX_DOCUMENT, b64u, dumps, fail, integer, loads, obj, string, unb64u
from . import sign, xwing
from .params import Params
from .secret import Secret
from .slots import SLOT_ID_LEN, WriterSlot, check_label, normalize_prefix, parse_label, parse_prefix

WRITER_ID_LEN = SLOT_ID_LEN  # a writer's id is its slot's id
WRITER_KEY_LEN = 32
VAULT_ID_LEN = 32
FINGERPRINT_LEN = 16
MAX_WRITERS = 64
CREDENTIAL_FORMAT = "sigmavault-writer/v1"
_CREDENTIAL_FORMAT = re.compile(r"sigmavault-writer/v([1-9][0-9]{0,8})")
WriterState = Literal["active", "removed"]


@dataclass(frozen=True, slots=True)
class Writer:
    """A write-only client as the keyring holds it. ``repr`` shows no key."""

    id: bytes
    label: str
    prefix: str
    state: WriterState
    verify_key: bytes = field(repr=False)
    key: Secret = field(repr=False)

    @property
    def active(self) -> bool:
        return self.state == "active"

    def slot(self) -> WriterSlot:
        """The keystore's cleartext slot of this writer."""
        return WriterSlot(self.id, self.label, self.prefix)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": b64u(self.id),
            "label": self.label,
            "prefix": self.prefix,
            "state": self.state,
            "verify_key": b64u(self.verify_key),
            "key": b64u(self.key.reveal()),
        }

    @classmethod
    def from_json(cls, value: object) -> Writer:
        v = obj(value, {"id", "label", "prefix", "state", "verify_key", "key"})
        state = string(v["state"], 16)
        if state not in ("active", "removed"):
            fail("writer state")
        return cls(
            id=unb64u(v["id"], WRITER_ID_LEN),
            label=parse_label(v["label"]),
            prefix=parse_prefix(v["prefix"]),
            state="active" if state == "active" else "removed",
            verify_key=sign.check_verify_key(unb64u(v["verify_key"], sign.VERIFY_KEY_LEN)),
            key=Secret(unb64u(v["key"], WRITER_KEY_LEN), "writer key"),
        )


def new_writer(label: str, prefix: str) -> tuple[Writer, Secret]:
    """A fresh active writer (random id and id key) and its signing seeds. UsageError for a bad
    label or prefix."""
    seeds = sign.generate()
    writer = Writer(
        id=secrets.token_bytes(WRITER_ID_LEN),
        label=check_label(label),
        prefix=normalize_prefix(prefix),
        state="active",
        verify_key=sign.verify_key(seeds),
        key=Secret(secrets.token_bytes(WRITER_KEY_LEN), "writer key"),
    )
    return writer, seeds


def check_slots(version: int, slot_list: tuple[object, ...], writers: tuple[Writer, ...]) -> None:
    """After unlock: a v2 keystore exactly when the keyring holds writers, and one writer slot (same
    id, label, prefix) for each active writer and for nothing else. IntegrityError otherwise."""
    if (version == 2) != bool(writers):
        fail("keystore version")
    slots = {s.id: s for s in slot_list if isinstance(s, WriterSlot)}
    active = {w.id: w.slot() for w in writers if w.active}
    if slots != active:
        fail("writer slots")


@dataclass(frozen=True)
class WriterCredential:
    """What a write-only client holds (the file of ``key add --writer``). ``repr`` shows no secret."""

    vault_id: bytes
    fingerprint: bytes
    writer_id: bytes
    label: str
    prefix: str
    epoch: int
    drop_pk: bytes = field(repr=False)
    signing: Secret = field(repr=False)
    key: Secret = field(repr=False)
    params: Params = field(repr=False)

    @property
    def verify_key(self) -> bytes:
        return sign.verify_key(self.signing)

    def to_bytes(self) -> bytes:
        return dumps(
            {
                "format": CREDENTIAL_FORMAT,
                "vault_id": b64u(self.vault_id),
                "fingerprint": b64u(self.fingerprint),
                "writer_id": b64u(self.writer_id),
                "label": self.label,
                "prefix": self.prefix,
                "epoch": self.epoch,
                "drop_pk": b64u(self.drop_pk),
                "signing": b64u(self.signing.reveal()),
                "key": b64u(self.key.reveal()),
                "params": self.params.to_json(),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> WriterCredential:
        """Strict decode. IntegrityError for anything malformed; UsageError for a file of another kind
        or of a newer credential format."""
        doc = loads(data, MAX_DOCUMENT)
        if isinstance(doc, dict) and isinstance(doc.get("format"), str) and doc["format"] != CREDENTIAL_FORMAT:
            newer = _CREDENTIAL_FORMAT.fullmatch(doc["format"])
            if newer is not None and int(newer.group(1)) > 1:
                raise UsageError("this writer credential was made by a newer sigmavault: upgrade to use it")
            raise UsageError("this file is not a sigmavault writer credential")
        names = {"format", "vault_id", "fingerprint", "writer_id", "label", "prefix", "epoch", "drop_pk", "signing",
                 "key", "params"}
        v = obj(doc, names)
        params = Params.from_json(v["params"])
        if params.dispersal is not None:
            fail("writer on a dispersed vault")
        return cls(
            vault_id=unb64u(v["vault_id"], VAULT_ID_LEN),
            fingerprint=unb64u(v["fingerprint"], FINGERPRINT_LEN),
            writer_id=unb64u(v["writer_id"], WRITER_ID_LEN),
            label=parse_label(v["label"]),
            prefix=parse_prefix(v["prefix"]),
            epoch=integer(v["epoch"], 1, 0xFFFFFFFF),
            drop_pk=xwing.check_public_key(unb64u(v["drop_pk"], xwing.PK_LEN)),
            signing=Secret(unb64u(v["signing"], sign.SEED_LEN), "signing seeds"),
            key=Secret(unb64u(v["key"], WRITER_KEY_LEN), "writer key"),
            params=params,
        )


__all__ = [
    "CREDENTIAL_FORMAT",
    "MAX_WRITERS",
    "Writer",
    "WriterCredential",
    "WriterSlot",
    "check_slots",
    "new_writer",
    "normalize_prefix",
]
