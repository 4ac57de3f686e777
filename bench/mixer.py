"""Benchmark the mixer: MB/s of sealing and opening 4 MiB chunks on each executor kind.

Usage: ``.venv/bin/python bench/mixer.py [--total-mib 512] [--chunk-mib 4] [--workers 1,2,4] [--repeat 3]``.
Prints one line per executor — the process pool at each worker count (default: 1 up to the
cores, doubling; how sealing scales with workers), threads, inline — plus the plain ``Sealer``
(fresh buffers per call) as a baseline, and which executor ``SIGMAVAULT_MIXER=auto`` (the
default) picks on this machine. Throughput counts stored (plaintext) bytes;
``slots`` calls are kept in flight, and each sealed view is released as soon as it is returned
(what the writer does after its upload).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from sigmavault.actors.mixer import ExecutorKind, Mixer
from sigmavault.engine.format.envelope import Sealer
from sigmavault.engine.keys.schedule import KIND_CHUNK, EpochKeys
from sigmavault.engine.local.settings import auto_mixer

NAME = "o/" + "5a" * 32


async def _drive(mx: Mixer, count: int, work: object) -> float:
    """Run ``count`` calls of ``work(i)`` with ``mx.slots`` in flight; returns seconds."""
    next_i = 0

    async def lane() -> None:
        nonlocal next_i
        while next_i < count:
            i = next_i
            next_i += 1
            await work(i)  # type: ignore[operator]

    start = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(mx.slots):
            tg.create_task(lane())
    return time.perf_counter() - start


async def one(
    kind: ExecutorKind, workers: int, keys: EpochKeys, chunk: int, total: int, slots: int
) -> tuple[float, float]:
    inputs = [os.urandom(chunk) for _ in range(4)]
    count = total // chunk
    async with Mixer.for_epoch(keys, chunk, kind=kind, workers=workers, slots=slots) as mx:
        sealed = [(await mx.seal(KIND_CHUNK, NAME, d)).take() for d in inputs]

        async def seal(i: int) -> None:
            (await mx.seal(KIND_CHUNK, NAME, inputs[i % 4])).release()

        async def open_(i: int) -> None:
            (await mx.open_view(KIND_CHUNK, NAME, sealed[i % 4])).release()

        await _drive(mx, 2 * slots, seal)  # warm up
        t_seal = await _drive(mx, count, seal)
        t_open = await _drive(mx, count, open_)
    return count * chunk / t_seal / 1e6, count * chunk / t_open / 1e6


def baseline(keys: EpochKeys, chunk: int, total: int) -> tuple[float, float]:
    s = Sealer(keys, chunk)
    data = os.urandom(chunk)
    count = total // chunk
    start = time.perf_counter()
    for _ in range(count):
        obj = s.seal(KIND_CHUNK, NAME, data)
    t_seal = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(count):
        bytes(s.open(KIND_CHUNK, NAME, obj))
    t_open = time.perf_counter() - start
    return count * chunk / t_seal / 1e6, count * chunk / t_open / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--total-mib", type=int, default=512)
    ap.add_argument("--chunk-mib", type=int, default=4)
    ap.add_argument("--slots", type=int, default=0, help="calls in flight (default: workers + 2, at least 8)")
    ap.add_argument("--workers", default="", help="process-pool sizes to measure, comma-separated")
    ap.add_argument("--repeat", type=int, default=3, help="report the best of this many runs")
    args = ap.parse_args()
    chunk, total = args.chunk_mib << 20, args.total_mib << 20
    keys = EpochKeys.derive(os.urandom(32), os.urandom(16), 1, "blake3-keyed-256")
    cores = os.cpu_count() or 1
    sizes = [int(w) for w in args.workers.split(",") if w] or [2**i for i in range(8) if 2**i <= max(cores, 2)]
    print(
        f"{cores} cores (auto picks {auto_mixer(cores)}), load {os.getloadavg()[0]:.1f}, {args.total_mib} MiB in "
        f"{args.chunk_mib} MiB chunks, best of {args.repeat}"
    )
    print(f"{'executor':<22}{'seal MB/s':>12}{'open MB/s':>12}")
    runs: list[tuple[str, ExecutorKind, int]] = [
        *((f"process, {n} worker{'s' if n > 1 else ''}", "process", n) for n in sizes),
        ("thread, 2 threads", "thread", 2),
        ("inline", "inline", 1),
    ]
    for label, kind, workers in runs:
        slots = args.slots or max(8, workers + 2)
        results = [asyncio.run(one(kind, workers, keys, chunk, total, slots)) for _ in range(args.repeat)]
        s, o = max(r[0] for r in results), max(r[1] for r in results)
        print(f"{label:<22}{s:>12.0f}{o:>12.0f}")
    results = [baseline(keys, chunk, total) for _ in range(args.repeat)]
    s, o = max(r[0] for r in results), max(r[1] for r in results)
    print(f"{'Sealer (fresh bufs)':<22}{s:>12.0f}{o:>12.0f}")


if __name__ == "__main__":
    main()
