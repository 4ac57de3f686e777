"""Object-layer crypto throughput on this machine: `python bench/crypto.py [SECONDS_PER_CASE]`.

Prints MB/s (10^6 bytes of stored plaintext per second, one thread) for full 4 MiB chunk objects
through :class:`~sigmavault.engine.format.envelope.Sealer` — ``seal()`` (a fresh object per call) and
``seal_into`` a reused buffer, ``open()`` and ``open_into`` a reused buffer — and for the
chunk-id PRF over 4 MiB (keyed BLAKE3 single- and multi-threaded, HMAC-SHA256).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import blake3

from sigmavault.engine.format import envelope as objects
from sigmavault.engine.keys import schedule as keys

CHUNK = 4 << 20


def rate(fn: Callable[[], object], nbytes: int, seconds: float) -> float:
    fn()  # warm up (first-touch page faults of reused buffers)
    runs = 0
    start = time.perf_counter()
    while True:
        fn()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and runs >= 3:
            return nbytes * runs / elapsed / 1e6


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    ek = keys.EpochKeys.derive(os.urandom(32), os.urandom(32), 1, "blake3-keyed-256")
    sealer = objects.Sealer(ek, CHUNK)
    stored = os.urandom(CHUNK)
    name = ek.chunk_name(ek.chunk_id_of(stored))
    obj = sealer.seal(keys.KIND_CHUNK, name, stored)
    assert len(obj) == objects.object_len(CHUNK, CHUNK, 4096) == 4_198_486
    out = bytearray(len(obj))
    plain = bytearray(8 + CHUNK)
    key = ek.chunk_id.reveal()

    cases: list[tuple[str, Callable[[], object]]] = [
        ("seal()            4 MiB object", lambda: sealer.seal(keys.KIND_CHUNK, name, stored)),
        ("seal_into(reused) 4 MiB object", lambda: sealer.seal_into(keys.KIND_CHUNK, name, stored, out)),
        ("open()            4 MiB object", lambda: sealer.open(keys.KIND_CHUNK, name, obj, len(obj))),
        ("open_into(reused) 4 MiB object", lambda: sealer.open_into(keys.KIND_CHUNK, name, obj, plain, len(obj))),
        ("chunk id blake3 (auto threads)", lambda: keys.prf("blake3-keyed-256", key, stored)),
        ("chunk id blake3 (one thread)  ", lambda: blake3.blake3(stored, key=key).digest()),
        ("chunk id hmac-sha256          ", lambda: keys.prf("hmac-sha256", key, stored)),
    ]
    print(f"sigmavault object-layer crypto, {os.cpu_count()} CPUs, {seconds:.1f} s per case, one caller thread")
    for label, fn in cases:
        print(f"  {label}  {rate(fn, CHUNK, seconds):8.0f} MB/s")


if __name__ == "__main__":
    main()
