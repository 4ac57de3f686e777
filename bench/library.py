"""Library put/get throughput and peak RSS for one large file: `python bench/library.py [SIZE_MIB]`.

Runs in a fresh process per direction so peak RSS is that direction's own.
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PASS = "bench passphrase"


async def _put(url: str, src: str) -> None:
    import sigmavault

    v = await sigmavault.create(url, passphrase=PASS, kdf="minimum")
    async with v:
        await v.put("big", src)


async def _get(url: str, dst: str) -> None:
    import sigmavault

    async with await sigmavault.open(url, passphrase=PASS) as v:
        await v.get("big", dst)


def child(mode: str, url: str, path: str) -> None:
    from sigmavault.config import tune_malloc

    tune_malloc()
    t = time.perf_counter()
    asyncio.run(_put(url, path) if mode == "put" else _get(url, path))
    dt = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{dt:.3f} {rss:.1f}")


def main() -> None:
    size_mib = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        src = Path(d) / "src"
        with open(src, "wb") as f:
            for _ in range(size_mib):
                f.write(os.urandom(1 << 20))
        env = {**os.environ, "SIGMAVAULT_HOME": str(Path(d) / "home")}
        for mode, path in (("put", src), ("get", Path(d) / "out")):
            out = subprocess.run([sys.executable, __file__, "--child", mode, str(Path(d) / "v"), str(path)],
                                 env=env, check=True, capture_output=True, text=True).stdout.split()
            dt, rss = float(out[0]), float(out[1])
            print(f"{mode}: {size_mib / dt:8.1f} MiB/s   peak RSS {rss:6.1f} MiB   ({size_mib} MiB in {dt:.2f} s)")
        assert (Path(d) / "out").read_bytes() == src.read_bytes() if size_mib <= 2048 else True


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main()
