"""The sealing of the local cache's values (see :mod:`.cache`): AES-256-GCM-SIV and keyed path hashes.

``K_seal = Expand(K_lc, "local-cache/seal")`` seals values as ``nonce (12) ‖ AES-256-GCM-SIV(K_seal,
nonce, plain, ad)``; ``K_name = Expand(K_lc, "local-cache/name")`` hashes paths with HMAC-SHA256.
"""

from __future__ import annotations

import hmac
import secrets
import threading

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV

from ..keys.schedule import expand
from ..keys.secret import Secret

NONCE, NONCE_BATCH = 12, 256


class Sealer:
    """Seals and opens cache values; keyed hashes of paths."""

    def __init__(self, key: Secret | None) -> None:
        base = key.reveal() if key is not None else secrets.token_bytes(32)  # no key: an in-memory cache
        self._aead = AESGCMSIV(expand(base, "local-cache/seal"))
        self._name = expand(base, "local-cache/name")
        self._nonces, self._lock = b"", threading.Lock()

    def seal(self, plain: bytes, ad: bytes) -> bytes:
        with self._lock:  # nonces drawn NONCE_BATCH at a time (a getrandom each was measurable), each taken once
            self._nonces = self._nonces or secrets.token_bytes(NONCE * NONCE_BATCH)
            nonce, self._nonces = self._nonces[:NONCE], self._nonces[NONCE:]
        return nonce + self._aead.encrypt(nonce, plain, ad)

    def open(self, value: bytes, ad: bytes) -> bytes | None:
        if len(value) < NONCE + 16:
            return None
        try:
            return self._aead.decrypt(value[:NONCE], value[NONCE:], ad)
        except InvalidTag:
            return None

    def name(self, path: bytes) -> bytes:
        return hmac.digest(self._name, path, "sha256")
