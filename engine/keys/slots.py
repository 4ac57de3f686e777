"""Key slots of the keystore: each wraps the KSK for one credential (CRYPTO.md §1.1).

Pure and synchronous (Argon2id is CPU work: callers run unlocks in a thread). Layouts::

    argon2id         KEK = Argon2id(P = UTF-8(NFC(passphrase)), S = salt16, t, m KiB, p, T = 32)
    argon2id+device  A   = Argon2id(…as above…)
                     KEK = HKDF-SHA256(IKM = A ‖ device_secret, salt = "vault/v1/slot-2fa\\0" ‖ vault_id ‖ slot_id,
                                       info = "vault/v1/kek", L = 32)
                     wrapped = seal(KEK, ctx, KSK)                                        # exactly 104 bytes
                     ctx = "vault/v1/slot\\0" ‖ vault_id ‖ slot_id ‖ lp(type) ‖ lp(u32 m ‖ u32 t ‖ u32 p ‖ lp(salt))
    xwing            wrapped = HPKE SealBase(pk, info = ctx, aad = "", KSK)               # enc 1120 ‖ ct 48
                     ctx = "vault/v1/slot\\0" ‖ vault_id ‖ slot_id ‖ lp("xwing/" ‖ kind) ‖ lp(SHA-256(pk))

JSON (keys sorted on write)::

    {"id","type":"argon2id"|"argon2id+device","label","m","t","p","salt","wrapped"}
    {"id","type":"xwing","kind":"device"|"recovery"|"recipient","label","pk","wrapped"}
    {"id","type":"writer","label","prefix"}                  # wraps nothing: never unlocks anything

A writer slot names a write-only client (:mod:`.writers`) and the vault folder it may write under;
its keys live in the sealed keyring. Like every slot it is covered by the keystore MAC.

Parsing checks every field and the fixed lengths (argon2 ``wrapped`` 104, xwing ``wrapped`` 1168 and
``pk`` 1216) so a wrong-length body is refused before any decapsulation. Argon2 bounds
(``m ∈ [64 MiB, 4 GiB]``, ``t ∈ [1, 10]``, ``p ∈ [1, 16]``) are NOT a parse rule (the B.8 vector
carries a 256 KiB test slot); :func:`passphrase_kek` checks them before it hashes anything, and
:func:`new_passphrase_slot` refuses to create a slot below the floor. :func:`derive_kek` is the
bare primitive without bounds, for known-answer tests only.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal

from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import IntegrityError, UsageError
from ..format import aead as chunked
from ..format.canonical import b64u, fail, integer, obj, string, unb64u, utf8_text
from . import xwing
from .secret import Secret

PassType = Literal["argon2id", "argon2id+device"]
XwingKind = Literal["device", "recovery", "recipient"]
PASS_TYPES: tuple[PassType, ...] = ("argon2id", "argon2id+device")
XWING_KINDS: tuple[XwingKind, ...] = ("device", "recovery", "recipient")

KSK_LEN = 32
SLOT_ID_LEN = 16
SALT_LEN = 16
DEVICE_SECRET_LEN = 32
PASS_WRAPPED_LEN = chunked.sealed_len(KSK_LEN)  # 104
XWING_WRAPPED_LEN = xwing.sealed_len(KSK_LEN)  # 1168
MAX_LABEL = 256
MAX_PREFIX = 4096  # bytes of UTF-8
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 controls

M_MIN, M_MAX = 64 * 1024, 4 * 1024 * 1024  # KiB: 64 MiB .. 4 GiB
T_MIN, T_MAX = 1, 10
P_MIN, P_MAX = 1, 16


@dataclass(frozen=True, slots=True)
class KdfProfile:
    """Argon2id cost parameters; ``m`` in KiB, as stored in the slot."""

    name: str
    t: int
    m: int
    p: int


INTERACTIVE = KdfProfile("interactive", t=3, m=256 * 1024, p=4)  # the default
STRONG = KdfProfile("strong", t=1, m=2 * 1024 * 1024, p=4)  # RFC 9106 first recommendation
MINIMUM = KdfProfile("minimum", t=3, m=64 * 1024, p=4)  # RFC 9106 second recommendation; the floor
PROFILES = {p.name: p for p in (INTERACTIVE, STRONG, MINIMUM)}


#: the most Argon2 work (KiB × passes, summed over the slots tried) one unlock spends: two slots at the
#: maximum cost, 80 GiB-passes. An honest vault's slot is within it, cheaper ones are tried first.
UNLOCK_BUDGET = 2 * M_MAX * T_MAX

def slot_cost(slot: Slot) -> int:
    """Argon2 work of opening ``slot``: m (KiB) × t passes; a public-key slot costs none."""
    return slot.m * slot.t if isinstance(slot, PassSlot) else 0


def within_bounds(m: int, t: int, p: int) -> bool:
    """The unlock-time bounds of §1.1 (also the creation floor)."""
    return M_MIN <= m <= M_MAX and T_MIN <= t <= T_MAX and P_MIN <= p <= P_MAX


# --- passphrases -------------------------------------------------------------------------------


def normalize_passphrase(text: str) -> Secret:
    """``UTF-8(NFC(text))`` in a Secret. Nothing else is changed (no trimming)."""
    try:
        raw = unicodedata.normalize("NFC", text).encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates
        raise UsageError("the passphrase is not valid Unicode text") from exc
    return Secret(raw, "passphrase")


def passphrase_from_file(data: bytes) -> Secret:
    """A passphrase read from a file: UTF-8, one trailing ``\\n`` or ``\\r\\n`` dropped, nothing more, NFC."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError("the passphrase file is not UTF-8 text") from exc
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    return normalize_passphrase(text)


def derive_kek(passphrase: bytes, salt: bytes, m: int, t: int, p: int) -> bytes:
    """Bare Argon2id (no secret, no ad, 32-byte tag). No bounds: product code goes through :func:`passphrase_kek`."""
    return hash_secret_raw(passphrase, salt, time_cost=t, memory_cost=m, parallelism=p, hash_len=32, type=Type.ID)


def two_factor_kek(a: bytes, device_secret: bytes, vault_id: bytes, slot_id: bytes) -> bytes:
    salt = b"vault/v1/slot-2fa\x00" + vault_id + slot_id
    return HKDF(hashes.SHA256(), 32, salt, b"vault/v1/kek").derive(a + device_secret)


def _lp(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


# --- slot records ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PassSlot:
    """An ``argon2id`` or ``argon2id+device`` slot (public data only)."""

    id: bytes
    type: PassType
    label: str
    m: int
    t: int
    p: int
    salt: bytes
    wrapped: bytes

    def context(self, vault_id: bytes) -> bytes:
        params = self.m.to_bytes(4, "big") + self.t.to_bytes(4, "big") + self.p.to_bytes(4, "big") + _lp(self.salt)
        return b"vault/v1/slot\x00" + vault_id + self.id + _lp(self.type.encode("ascii")) + _lp(params)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": b64u(self.id),
            "type": self.type,
            "label": self.label,
            "m": self.m,
            "t": self.t,
            "p": self.p,
            "salt": b64u(self.salt),
            "wrapped": b64u(self.wrapped),
        }


@dataclass(frozen=True, slots=True)
class XwingSlot:
    """An ``xwing`` slot of kind device, recovery or recipient (public data only)."""

    id: bytes
    kind: XwingKind
    label: str
    pk: bytes
    wrapped: bytes

    type = "xwing"

    def context(self, vault_id: bytes) -> bytes:
        return xwing_context(vault_id, self.id, self.kind, self.pk)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": b64u(self.id),
            "type": "xwing",
            "kind": self.kind,
            "label": self.label,
            "pk": b64u(self.pk),
            "wrapped": b64u(self.wrapped),
        }


@dataclass(frozen=True, slots=True)
class WriterSlot:
    """A write-only client's slot: its id (the keyring writer's id), label and prefix. Wraps no key."""

    id: bytes
    label: str
    prefix: str

    type = "writer"

    def to_json(self) -> dict[str, Any]:
        return {"id": b64u(self.id), "type": "writer", "label": self.label, "prefix": self.prefix}


Slot = PassSlot | XwingSlot | WriterSlot


def xwing_context(vault_id: bytes, slot_id: bytes, kind: str, pk: bytes) -> bytes:
    tag = ("xwing/" + kind).encode("ascii")
    return b"vault/v1/slot\x00" + vault_id + slot_id + _lp(tag) + _lp(hashlib.sha256(pk).digest())


def slot_from_json(value: object) -> Slot:
    """Strictly decode one slot object; IntegrityError on any deviation."""
    if isinstance(value, dict) and value.get("type") == "writer":
        v = obj(value, {"id", "type", "label", "prefix"})
        return WriterSlot(unb64u(v["id"], SLOT_ID_LEN), parse_label(v["label"]), parse_prefix(v["prefix"]))
    base = obj(value, {"id", "type", "label", "wrapped"}, {"kind", "m", "t", "p", "salt", "pk"})
    kind = string(base["type"], 32)
    if kind in PASS_TYPES:
        v = obj(value, {"id", "type", "label", "m", "t", "p", "salt", "wrapped"})
        return PassSlot(
            id=unb64u(v["id"], SLOT_ID_LEN),
            type="argon2id" if kind == "argon2id" else "argon2id+device",
            label=parse_label(v["label"]),
            m=integer(v["m"], 1, 0xFFFFFFFF),
            t=integer(v["t"], 1, 0xFFFFFFFF),
            p=integer(v["p"], 1, 0xFFFFFFFF),
            salt=unb64u(v["salt"], SALT_LEN),
            wrapped=unb64u(v["wrapped"], PASS_WRAPPED_LEN),
        )
    if kind == "xwing":
        v = obj(value, {"id", "type", "kind", "label", "pk", "wrapped"})
        xkind = string(v["kind"], 32)
        if xkind not in XWING_KINDS:
            fail("xwing kind")
        return XwingSlot(
            id=unb64u(v["id"], SLOT_ID_LEN),
            kind="device" if xkind == "device" else "recovery" if xkind == "recovery" else "recipient",
            label=parse_label(v["label"]),
            pk=unb64u(v["pk"], xwing.PK_LEN),
            wrapped=unb64u(v["wrapped"], XWING_WRAPPED_LEN),
        )
    fail("slot type")


# --- wrapping and unwrapping -------------------------------------------------------------------


def passphrase_kek(slot: PassSlot, vault_id: bytes, passphrase: Secret, device_secret: Secret | None) -> bytes:
    """The slot's KEK. Bounds are checked first, so a hostile keystore cannot make us hash 1 TiB."""
    if not within_bounds(slot.m, slot.t, slot.p):
        raise IntegrityError("keystore rejected: a passphrase slot has Argon2 parameters outside the allowed bounds")
    a = derive_kek(passphrase.reveal(), slot.salt, slot.m, slot.t, slot.p)
    if slot.type == "argon2id":
        return a
    if device_secret is None or len(device_secret) != DEVICE_SECRET_LEN:
        raise UsageError("this slot needs the device secret as a second factor")
    return two_factor_kek(a, device_secret.reveal(), vault_id, slot.id)


def open_with_kek(kek: bytes, vault_id: bytes, slot: PassSlot) -> Secret:
    """Unwrap the KSK with a derived KEK. IntegrityError if it does not open."""
    if len(slot.wrapped) != PASS_WRAPPED_LEN:
        fail("wrapped length")
    ksk = chunked.open(kek, slot.context(vault_id), slot.wrapped)
    return Secret(ksk, "ksk")


def open_xwing(slot: XwingSlot, vault_id: bytes, seed: Secret) -> Secret:
    """Unwrap the KSK with an X-Wing identity. Lengths are re-checked before decapsulation."""
    if len(slot.wrapped) != XWING_WRAPPED_LEN or len(slot.pk) != xwing.PK_LEN:
        fail("xwing lengths")
    ksk = xwing.open(seed, slot.context(vault_id), slot.wrapped)
    if len(ksk) != KSK_LEN:
        fail("ksk length")
    return Secret(ksk, "ksk")


def new_slot_id() -> bytes:
    return secrets.token_bytes(SLOT_ID_LEN)


def new_passphrase_slot(
    vault_id: bytes,
    ksk: Secret,
    passphrase: Secret,
    profile: KdfProfile,
    label: str,
    device_secret: Secret | None = None,
    slot_id: bytes | None = None,
) -> PassSlot:
    """Wrap ``ksk`` under a passphrase (and device secret if given) with a fresh salt.

    Raises UsageError for a profile outside the bounds (never below the floor), an empty
    passphrase or a bad label.
    """
    if not within_bounds(profile.m, profile.t, profile.p):
        raise UsageError("Argon2 parameters below the minimum (or above the maximum) are not allowed")
    if len(passphrase) == 0:
        raise UsageError("the passphrase must not be empty")
    slot = PassSlot(
        id=slot_id if slot_id is not None else new_slot_id(),
        type="argon2id" if device_secret is None else "argon2id+device",
        label=check_label(label),
        m=profile.m,
        t=profile.t,
        p=profile.p,
        salt=secrets.token_bytes(SALT_LEN),
        wrapped=b"",
    )
    kek = passphrase_kek(slot, vault_id, passphrase, device_secret)
    wrapped = chunked.seal(kek, slot.context(vault_id), ksk.reveal())
    return PassSlot(slot.id, slot.type, slot.label, slot.m, slot.t, slot.p, slot.salt, wrapped)


def new_xwing_slot(vault_id: bytes, ksk: Secret, pk: bytes, kind: XwingKind, label: str) -> XwingSlot:
    """Wrap ``ksk`` to a public key (device, recovery or recipient). Raises IntegrityError for a bad pk."""
    if kind not in XWING_KINDS:
        raise UsageError("unknown X-Wing slot kind")
    xwing.check_public_key(pk)
    slot_id = new_slot_id()
    wrapped = xwing.seal(pk, xwing_context(vault_id, slot_id, kind, pk), ksk.reveal())
    return XwingSlot(id=slot_id, kind=kind, label=check_label(label), pk=pk, wrapped=wrapped)


def label_ok(label: object) -> bool:
    """A slot label is printable text: ``key list`` writes it to the terminal, so no control
    characters (a hostile label could carry escape sequences), and it must have a UTF-8 form."""
    return (
        isinstance(label, str) and len(label) <= MAX_LABEL and utf8_text(label)
        and not _CONTROL.search(label)
    )


def parse_label(value: object) -> str:
    if not label_ok(value):
        fail("slot label")
    return string(value, MAX_LABEL)


def check_label(label: str) -> str:
    if not label_ok(label):
        raise UsageError(f"a slot label is printable text of at most {MAX_LABEL} characters")
    return label


def _prefix_problem(text: str) -> str | None:
    """Why ``text`` is not a normalized absolute vault folder (None when it is one)."""
    if not text.startswith("/"):
        return "must be an absolute vault path such as /web-1"
    if text == "/":
        return "must not be / itself: a writer gets its own folder, such as /web-1"
    if text.endswith("/"):
        return "must not end with /"
    if not utf8_text(text) or len(text.encode("utf-8")) > MAX_PREFIX:
        return f"must be valid text of at most {MAX_PREFIX} bytes"
    if _CONTROL.search(text):
        return "must not contain control characters"
    if any(part in ("", ".", "..") for part in text[1:].split("/")):
        return "must not contain empty, . or .. components"
    return None


def normalize_prefix(text: str) -> str:
    """The writer's vault folder ``text`` in its one form (a single trailing ``/`` dropped). UsageError
    for anything else: a relative path, ``/`` itself, empty, ``.`` or ``..`` components, NUL or other
    control characters, more than 4096 bytes."""
    if not isinstance(text, str):
        raise UsageError("a writer's folder is a vault path such as /web-1")
    candidate = text[:-1] if len(text) > 1 and text.endswith("/") and not text.endswith("//") else text
    problem = _prefix_problem(candidate)
    if problem is not None:
        raise UsageError(f"a writer's folder (--to) {problem}")
    return candidate


def parse_prefix(value: object) -> str:
    """A stored prefix: exactly in its normalized form, else IntegrityError."""
    if not isinstance(value, str) or _prefix_problem(value) is not None:
        fail("writer prefix")
    return value
