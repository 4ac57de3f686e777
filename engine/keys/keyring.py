"""The keyring: epoch root keys, the vault authentication key and the vault parameters (CRYPTO.md §1.2).

Pure and synchronous. The keyring is canonical JSON sealed under ``K_kr = Expand(KSK, "keyring-enc")``
as raw bytes (no framing)::

    keyring_ct = seal(K_kr, "vault/v1/keyring\\0" ‖ vault_id ‖ u64 generation, canonical JSON)

    {"current_epoch":e,"epochs":[{"epoch":1,"root_key":"…","state":"active"},
                                 {"epoch":2,"retired_at_gen":812,"root_key":"…","state":"retired"},
                                 {"epoch":3,"root_key":null,"state":"destroyed"}],
     "generation":g,"params":{…see Params…},"vault_auth_key":"…32B…","vault_id":"…32B…",
     "writers":[…see writers.Writer…]}                    # only when the vault has write-only clients

Vault parameters live only here, inside the authenticated keyring; anything but the v1 values
is rejected (no negotiation, no downgrade). Every decoding failure is the one IntegrityError.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Any, Literal

from ..format import aead as chunked
from ..format.canonical import b64u, dumps, fail, integer, loads, obj, string, unb64u
from .params import LOCK_MODES as LOCK_MODES
from .params import MAX_PLACES as MAX_PLACES
from .params import MIB as MIB
from .params import PLACE_ID_LEN as PLACE_ID_LEN
from .params import SUITE as SUITE
from .params import Dispersal as Dispersal
from .params import Lock as Lock
from .params import Params as Params
from .schedule import expand
from .secret import Secret
from .writers import MAX_WRITERS, Writer

KEY_LEN = 32
VAULT_ID_LEN = 32
MAX_EPOCHS = 4096
EpochState = Literal["active", "retired", "destroyed"]


@dataclass(frozen=True, slots=True)
class Epoch:
    """One key epoch. ``root_key`` is None exactly when destroyed; ``retired_at_gen`` only when retired."""

    epoch: int
    state: EpochState
    root_key: Secret | None = field(repr=False)
    retired_at_gen: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "epoch": self.epoch,
            "root_key": None if self.root_key is None else b64u(self.root_key.reveal()),
            "state": self.state,
        }
        if self.retired_at_gen is not None:
            out["retired_at_gen"] = self.retired_at_gen
        return out

    @classmethod
    def from_json(cls, value: object) -> Epoch:
        v = obj(value, {"epoch", "root_key", "state"}, {"retired_at_gen"})
        number = integer(v["epoch"], 1, 0xFFFFFFFF)
        state = string(v["state"], 16)
        if state == "destroyed":
            if v["root_key"] is not None or "retired_at_gen" in v:
                fail("destroyed epoch")
            return cls(number, "destroyed", None)
        root = Secret(unb64u(v["root_key"], KEY_LEN), "root key")
        if state == "active" and "retired_at_gen" not in v:
            return cls(number, "active", root)
        if state == "retired" and "retired_at_gen" in v:
            return cls(number, "retired", root, integer(v["retired_at_gen"]))
        fail("epoch state")


@dataclass(frozen=True, slots=True)
class Keyring:
    vault_id: bytes
    generation: int
    vak: Secret = field(repr=False)
    current_epoch: int
    epochs: tuple[Epoch, ...]
    params: Params
    #: write-only clients (:mod:`.writers`), removed ones kept as tombstones; absent from the JSON
    #: when empty, so a keyring without writers is byte-for-byte as before
    writers: tuple[Writer, ...] = ()

    def epoch(self, number: int) -> Epoch | None:
        for e in self.epochs:
            if e.epoch == number:
                return e
        return None

    def to_bytes(self) -> bytes:
        """Canonical JSON (sorted keys, no whitespace): the sealed plaintext."""
        doc = {
            "vault_id": b64u(self.vault_id),
            "generation": self.generation,
            "vault_auth_key": b64u(self.vak.reveal()),
            "current_epoch": self.current_epoch,
            "epochs": [e.to_json() for e in self.epochs],
            "params": self.params.to_json(),
        }
        if self.writers:
            doc["writers"] = [w.to_json() for w in self.writers]
        return dumps(doc)

    def writer(self, writer_id: bytes) -> Writer | None:
        for w in self.writers:
            if w.id == writer_id:
                return w
        return None

    @classmethod
    def from_bytes(cls, data: bytes) -> Keyring:
        v = obj(loads(data), {"vault_id", "generation", "vault_auth_key", "current_epoch", "epochs", "params"},
                {"writers"})
        raw_epochs = v["epochs"]
        if not isinstance(raw_epochs, list) or not 1 <= len(raw_epochs) <= MAX_EPOCHS:
            fail("epochs")
        epochs = tuple(Epoch.from_json(e) for e in raw_epochs)
        numbers = [e.epoch for e in epochs]
        if any(a >= b for a, b in itertools.pairwise(numbers)):
            fail("epoch order")  # strictly increasing: unique and in one canonical order
        ring = cls(
            vault_id=unb64u(v["vault_id"], VAULT_ID_LEN),
            generation=integer(v["generation"], 1),
            vak=Secret(unb64u(v["vault_auth_key"], KEY_LEN), "vak"),
            current_epoch=integer(v["current_epoch"], 1, 0xFFFFFFFF),
            epochs=epochs,
            params=Params.from_json(v["params"]),
            writers=_writers(v["writers"]) if "writers" in v else (),
        )
        current = ring.epoch(ring.current_epoch)
        if current is None or current.state != "active":
            fail("current epoch")
        return ring


def _writers(value: object) -> tuple[Writer, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_WRITERS:
        fail("writers")  # present only when non-empty: one canonical form
    writers = tuple(Writer.from_json(w) for w in value)
    if len({w.id for w in writers}) != len(writers):
        fail("duplicate writer id")
    return writers


def keyring_context(vault_id: bytes, generation: int) -> bytes:
    return b"vault/v1/keyring\x00" + vault_id + generation.to_bytes(8, "big")


def seal_keyring(ksk: Secret, ring: Keyring, salt: bytes | None = None) -> bytes:
    """Seal under ``Expand(KSK, "keyring-enc")``. ``salt`` is for known-answer tests only."""
    return chunked.seal(
        expand(ksk.reveal(), "keyring-enc"), keyring_context(ring.vault_id, ring.generation), ring.to_bytes(), salt
    )


def open_keyring(ksk: Secret, vault_id: bytes, generation: int, sealed: bytes) -> Keyring:
    """Open and check the keyring against the payload's ``vault_id`` and ``generation`` (§1.3 step 4)."""
    plain = chunked.open(expand(ksk.reveal(), "keyring-enc"), keyring_context(vault_id, generation), sealed)
    ring = Keyring.from_bytes(plain)
    if ring.vault_id != vault_id or ring.generation != generation:
        fail("keyring binding")
    return ring


def fingerprint(vault_id: bytes, vak: Secret) -> bytes:
    """``F = SHA-256("vault/v1/fingerprint\\0" ‖ vault_id ‖ VAK)[:16]``."""
    return hashlib.sha256(b"vault/v1/fingerprint\x00" + vault_id + vak.reveal()).digest()[:16]
