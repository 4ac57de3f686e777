"""The keyring: epoch root keys, the vault authentication key and the vault parameters (CRYPTO.md §1.2).

Pure and synchronous. The keyring is canonical JSON sealed under ``K_kr = Expand(KSK, "keyring-enc")``
as raw bytes (no framing)::

    keyring_ct = seal(K_kr, "vault/v1/keyring\\0" ‖ vault_id ‖ u64 generation, canonical JSON)

    {"current_epoch":e,"epochs":[{"epoch":1,"root_key":"…","state":"active"},
                                 {"epoch":2,"retired_at_gen":812,"root_key":"…","state":"retired"},
                                 {"epoch":3,"root_key":null,"state":"destroyed"}],
     "generation":g,"params":{…see Params…},"vault_auth_key":"…32B…","vault_id":"…32B…"}

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
from .schedule import PRFS, PrfName, expand
from .secret import Secret

SUITE = "c2sp-chunked-v1/AES-256-GCM"
MIB = 1 << 20
KEY_LEN = 32
VAULT_ID_LEN = 32
MAX_EPOCHS = 4096
EpochState = Literal["active", "retired", "destroyed"]


PLACE_ID_LEN = 16
MAX_PLACES = 16


@dataclass(frozen=True, slots=True)
class Dispersal:
    """A dispersed vault's layout: ``needed`` (k) of ``len(places)`` (n) places, each named by the
    random 16-byte id that its own tagged record holds (docs/format.md, "Dispersed vaults")."""

    needed: int
    places: tuple[bytes, ...]

    def valid(self) -> bool:
        n = len(self.places)
        return (
            type(self.needed) is int
            and 1 <= self.needed <= n <= MAX_PLACES
            and min(n - self.needed, (n + 1) // 2 - 1) > 0
            and all(type(p) is bytes and len(p) == PLACE_ID_LEN for p in self.places)
            and len(set(self.places)) == n
        )

    def to_json(self) -> dict[str, Any]:
        return {"needed": self.needed, "places": [b64u(p) for p in self.places]}

    @classmethod
    def from_json(cls, value: object) -> Dispersal:
        v = obj(value, {"needed", "places"})
        places = v["places"]
        if not isinstance(places, list) or not 2 <= len(places) <= MAX_PLACES:
            fail("dispersal")
        d = cls(integer(v["needed"], 1, MAX_PLACES), tuple(unb64u(p, PLACE_ID_LEN) for p in places))
        if not d.valid():
            fail("dispersal")
        return d


LOCK_MODES = ("governance", "compliance")


@dataclass(frozen=True, slots=True)
class Lock:
    """``create --lock-days``: every object is written under a retention lock of ``days`` days."""

    days: int
    mode: str = "governance"

    def valid(self) -> bool:
        return type(self.days) is int and 1 <= self.days <= 36500 and self.mode in LOCK_MODES

    @classmethod
    def from_json(cls, value: object) -> Lock:
        v = obj(value, {"days", "mode"})
        lock = cls(integer(v["days"], 1, 36500), string(v["mode"], 16))
        if not lock.valid():
            fail("lock")
        return lock


@dataclass(frozen=True, slots=True)
class Params:
    """Vault parameters; v1 accepts exactly these choices (``dispersal``: None for a single place,
    where it is absent from the JSON, so single-place keyrings are byte-for-byte as before)."""

    prf: PrfName = "blake3-keyed-256"
    chunk_size: int = 4 * MIB
    suite: str = SUITE
    chunking: str = "fixed"
    padding: str = "padme"
    pad_floor: int = 4096
    inline_max: int = 1024
    compression: str = "none"
    dispersal: Dispersal | None = None
    lock: Lock | None = None  # absent from the JSON when None, like dispersal

    def valid(self) -> bool:
        cs = self.chunk_size
        return (
            self.suite == SUITE
            and self.prf in PRFS
            and type(cs) is int
            and MIB <= cs <= 16 * MIB
            and cs & (cs - 1) == 0
            and self.chunking == "fixed"
            and self.padding == "padme"
            and self.pad_floor == 4096
            and self.inline_max == 1024
            and self.compression == "none"
            and (self.dispersal is None or self.dispersal.valid())
            and (self.lock is None or self.lock.valid())
        )

    def to_json(self) -> dict[str, Any]:
        out = self._plain()
        if self.dispersal is not None:
            out["dispersal"] = self.dispersal.to_json()
        if self.lock is not None:
            out["lock"] = {"days": self.lock.days, "mode": self.lock.mode}
        return out

    def _plain(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "prf": self.prf,
            "chunk_size": self.chunk_size,
            "chunking": self.chunking,
            "padding": self.padding,
            "pad_floor": self.pad_floor,
            "inline_max": self.inline_max,
            "compression": self.compression,
        }

    @classmethod
    def from_json(cls, value: object) -> Params:
        names = {"suite", "prf", "chunk_size", "chunking", "padding", "pad_floor", "inline_max", "compression"}
        v = obj(value, names, {"dispersal", "lock"})
        prf = string(v["prf"], 64)
        if prf not in PRFS:
            fail("prf")
        params = cls(
            prf="blake3-keyed-256" if prf == "blake3-keyed-256" else "hmac-sha256",
            chunk_size=integer(v["chunk_size"]),
            suite=string(v["suite"], 64),
            chunking=string(v["chunking"], 64),
            padding=string(v["padding"], 64),
            pad_floor=integer(v["pad_floor"]),
            inline_max=integer(v["inline_max"]),
            compression=string(v["compression"], 64),
            dispersal=Dispersal.from_json(v["dispersal"]) if "dispersal" in v else None,
            lock=Lock.from_json(v["lock"]) if "lock" in v else None,
        )
        if not params.valid():
            fail("params")
        return params


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

    def epoch(self, number: int) -> Epoch | None:
        for e in self.epochs:
            if e.epoch == number:
                return e
        return None

    def to_bytes(self) -> bytes:
        """Canonical JSON (sorted keys, no whitespace): the sealed plaintext."""
        return dumps(
            {
                "vault_id": b64u(self.vault_id),
                "generation": self.generation,
                "vault_auth_key": b64u(self.vak.reveal()),
                "current_epoch": self.current_epoch,
                "epochs": [e.to_json() for e in self.epochs],
                "params": self.params.to_json(),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Keyring:
        v = obj(loads(data), {"vault_id", "generation", "vault_auth_key", "current_epoch", "epochs", "params"})
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
        )
        current = ring.epoch(ring.current_epoch)
        if current is None or current.state != "active":
            fail("current epoch")
        return ring


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
