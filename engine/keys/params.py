"""Vault parameters (CRYPTO.md §1.2): they live only inside the authenticated keyring (:mod:`.keyring`).

Anything but the v1 values is rejected (no negotiation, no downgrade). Every decoding failure is the
one IntegrityError. A write-only client's credential carries them too (:mod:`.writers`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..format.canonical import b64u, fail, integer, obj, string, unb64u
from ..format.squeeze import MODES as COMPRESSIONS
from .schedule import PRFS, PrfName

SUITE = "c2sp-chunked-v1/AES-256-GCM"
MIB = 1 << 20
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
    where it is absent from the JSON, so single-place keyrings are byte-for-byte as before).

    ``compression`` is ``none`` (every vault made before compression: nothing is compressed),
    ``zstd-auto`` or ``zstd-max`` (:mod:`..format.squeeze`); it is authenticated with the rest."""

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
            and self.compression in COMPRESSIONS
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
