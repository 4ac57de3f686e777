"""Vault import/export to S3 against raw PUT/GET and rclone crypt, on one loopback SeaweedFS.

::

    .venv/bin/python bench/cloud.py                    # 1 GiB random file, 3 runs
    .venv/bin/python bench/cloud.py --size-mib 512 --runs 3 --tools vault,raw

Starts SeaweedFS on 127.0.0.1 (tests/backends/servers.py), writes one random file, and times for
each run, each in a fresh bucket:

* vault  — ``sigmavault.create`` (not timed), then ``put`` + ``commit`` (import); then a fresh
  ``open`` (not timed) and ``get`` to a file (export). The default Tuning, one process.
* raw    — the same bytes as 4 MiB objects, ``PutObject``/``GetObject`` over aiobotocore with the
  vault's concurrency (Tuning.upload_concurrency for PUT, the S3 backend's pool for GET), file
  read/written with pread/pwrite: the ceiling for this server and machine.
* rclone — ``rclone copy`` through a crypt remote over an s3 remote (provider Other), configured
  with RCLONE_CONFIG_* variables only, rclone's default settings.

Prints every run's MB/s (10^6 bytes per second), the median, and the ratios vault/raw and
vault/rclone against the issue's targets (import ≥ 0.8× raw PUT, export ≥ 0.8× raw GET, ≥ 2×
rclone crypt). Exported bytes are compared with the source after each run.
"""

from __future__ import annotations

import argparse
import asyncio
import filecmp
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "backends"))

from servers import SeaweedServer, running  # noqa: E402

from sigmavault.config import Tuning, tune_malloc  # noqa: E402
from sigmavault.config import tuning as default_tuning  # noqa: E402

PASS = "bench passphrase"
OBJ = 4 << 20  # raw object size
MB = 1e6


def aws_env(server: SeaweedServer, work: Path) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key,
            "AWS_REGION": server.region, "AWS_CONFIG_FILE": str(work / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(work / "none"), "AWS_EC2_METADATA_DISABLED": "true"}


# -- the vault -------------------------------------------------------------------------------------


async def vault_import(url: str, src: Path, tuning: Tuning) -> float:
    import sigmavault

    vault = await sigmavault.create(url, passphrase=PASS, kdf="minimum", tuning=tuning)
    async with vault:
        began = time.perf_counter()
        await vault.put("/big", str(src))
        await vault.commit()
        return time.perf_counter() - began


async def vault_export(url: str, dst: Path, tuning: Tuning) -> float:
    import sigmavault

    async with await sigmavault.open(url, passphrase=PASS, tuning=tuning) as vault:
        began = time.perf_counter()
        await vault.get("/big", dst)
        return time.perf_counter() - began


# -- raw aiobotocore -------------------------------------------------------------------------------


def _client(server: SeaweedServer, pool: int) -> Any:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    config = AioConfig(region_name=server.region, s3={"addressing_style": "path"}, max_pool_connections=pool,
                       request_checksum_calculation="when_required", response_checksum_validation="when_required")
    return get_session().create_client("s3", endpoint_url=server.endpoint, config=config)


async def raw_put(server: SeaweedServer, bucket: str, src: Path, concurrency: int) -> float:
    size = src.stat().st_size
    limit = asyncio.Semaphore(concurrency)
    fd = os.open(src, os.O_RDONLY)
    try:
        async with _client(server, max(concurrency, 10)) as client:
            async def one(i: int) -> None:
                async with limit:
                    body = await asyncio.to_thread(os.pread, fd, OBJ, i * OBJ)
                    await client.put_object(Bucket=bucket, Key=f"raw/{i:08d}", Body=body, IfNoneMatch="*")

            began = time.perf_counter()
            async with asyncio.TaskGroup() as tg:
                for i in range((size + OBJ - 1) // OBJ):
                    tg.create_task(one(i))
            return time.perf_counter() - began
    finally:
        os.close(fd)


async def raw_get(server: SeaweedServer, bucket: str, dst: Path, size: int, concurrency: int) -> float:
    limit = asyncio.Semaphore(concurrency)
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        async with _client(server, max(concurrency, 10)) as client:
            async def one(i: int) -> None:
                async with limit:
                    response = await client.get_object(Bucket=bucket, Key=f"raw/{i:08d}")
                    async with response["Body"] as stream:
                        body = await stream.read()
                    await asyncio.to_thread(os.pwrite, fd, body, i * OBJ)

            began = time.perf_counter()
            async with asyncio.TaskGroup() as tg:
                for i in range((size + OBJ - 1) // OBJ):
                    tg.create_task(one(i))
            await asyncio.to_thread(os.fsync, fd)
            return time.perf_counter() - began
    finally:
        os.close(fd)


# -- rclone crypt ----------------------------------------------------------------------------------


def rclone_env(server: SeaweedServer, bucket: str) -> dict[str, str]:
    obscured = subprocess.run(["rclone", "obscure", PASS], capture_output=True, text=True, check=True).stdout.strip()
    inherited = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}  # rclone rejects it with http
    return {
        **inherited, "RCLONE_CONFIG": "/dev/null",
        "RCLONE_CONFIG_SVS3_TYPE": "s3", "RCLONE_CONFIG_SVS3_PROVIDER": "Other",
        "RCLONE_CONFIG_SVS3_ACCESS_KEY_ID": server.access_key,
        "RCLONE_CONFIG_SVS3_SECRET_ACCESS_KEY": server.secret_key,
        "RCLONE_CONFIG_SVS3_ENDPOINT": server.endpoint, "RCLONE_CONFIG_SVS3_REGION": server.region,
        "RCLONE_CONFIG_SVS3_FORCE_PATH_STYLE": "true",
        "RCLONE_CONFIG_SVC_TYPE": "crypt", "RCLONE_CONFIG_SVC_REMOTE": f"svs3:{bucket}/rclone",
        "RCLONE_CONFIG_SVC_PASSWORD": obscured,
    }


def timed(cmd: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr[-2000:]}")
    return took


# -- the run -------------------------------------------------------------------------------------------


def same(a: Path, b: Path) -> None:
    if not filecmp.cmp(a, b, shallow=False):
        raise SystemExit(f"export differs from the source: {b}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tools", default="vault,raw,rclone")
    ap.add_argument("--upload-concurrency", type=int, default=None, help="vault Tuning.upload_concurrency")
    ap.add_argument("--readahead", type=int, default=None, help="vault Tuning.readahead (chunks)")
    ap.add_argument("--put-concurrency", type=int, default=None, help="raw PUT (default Tuning.upload_concurrency)")
    ap.add_argument("--get-concurrency", type=int, default=None, help="raw GET (default the S3 backend's pool)")
    args = ap.parse_args()
    tools = args.tools.split(",")

    tune_malloc()
    tuning = default_tuning()
    if args.upload_concurrency or args.readahead:
        tuning = replace(tuning, upload_concurrency=args.upload_concurrency or tuning.upload_concurrency,
                         readahead=args.readahead or tuning.readahead)
    put_c = args.put_concurrency or tuning.upload_concurrency
    get_c = args.get_concurrency or 16  # S3Backend(concurrency=16): its pool; the vault reads with readahead
    size = args.size_mib << 20
    results: dict[tuple[str, str], list[float]] = {}

    with tempfile.TemporaryDirectory(prefix="svbench-", dir=os.environ.get("BENCH_DIR")) as d:
        work = Path(d)
        src = work / "src"
        with open(src, "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(1 << 20))
        server = SeaweedServer(root=work / "seaweedfs")
        with running(server):
            os.environ.update(aws_env(server, work), SIGMAVAULT_HOME=str(work / "home"))
            print(f"SeaweedFS {server.endpoint} (started in {server.start_seconds:.1f} s); {args.size_mib} MiB file, "
                  f"{args.runs} runs; vault mixer={tuning.mixer} upload_concurrency={tuning.upload_concurrency} "
                  f"readahead={tuning.readahead}; raw PUT x{put_c}, GET x{get_c} of 4 MiB objects; rclone defaults",
                  flush=True)

            def record(tool: str, op: str, seconds: float) -> None:
                results.setdefault((tool, op), []).append(size / seconds / MB)
                print(f"  {tool:7} {op:6} {size / seconds / MB:8.1f} MB/s  ({seconds:.2f} s)", flush=True)

            out = work / "out"
            for run in range(1, args.runs + 1):
                print(f"run {run}", flush=True)
                steps: list[tuple[str, Callable[[str], None]]] = []
                if "vault" in tools:
                    def vault(bucket: str) -> None:
                        url = f"s3://{bucket}/v?endpoint={server.endpoint}&path_style=true"
                        record("vault", "import", asyncio.run(vault_import(url, src, tuning)))
                        record("vault", "export", asyncio.run(vault_export(url, out, tuning)))
                    steps.append(("vault", vault))
                if "raw" in tools:
                    def raw(bucket: str) -> None:
                        record("raw", "import", asyncio.run(raw_put(server, bucket, src, put_c)))
                        record("raw", "export", asyncio.run(raw_get(server, bucket, out, size, get_c)))
                    steps.append(("raw", raw))
                if "rclone" in tools:
                    def rclone(bucket: str) -> None:
                        env = rclone_env(server, bucket)
                        record("rclone", "import", timed(["rclone", "copyto", str(src), "svc:big"], env))
                        record("rclone", "export", timed(["rclone", "copyto", "svc:big", str(out)], env))
                    steps.append(("rclone", rclone))
                for _name, step in steps:
                    out.unlink(missing_ok=True)
                    shutil.rmtree(work / "home", ignore_errors=True)
                    step(server.new_bucket())
                    same(src, out)
        report(results)
        out = ROOT / "bench" / "results"
        out.mkdir(parents=True, exist_ok=True)
        (out / "cloud.json").write_text(json.dumps(
            {"size_mib": args.size_mib, "runs_mbps": {f"{t}/{o}": v for (t, o), v in results.items()},
             "median_mbps": {f"{t}/{o}": statistics.median(v) for (t, o), v in results.items()}}, indent=1))


def report(results: dict[tuple[str, str], list[float]]) -> None:
    med = {k: statistics.median(v) for k, v in results.items()}
    print()
    print(f"{'tool':8} {'op':7} {'runs (MB/s)':>28} {'median':>8}  vs raw  vs rclone")
    for (tool, op), runs in results.items():
        raw, rc = med.get(("raw", op)), med.get(("rclone", op))
        vr = f"{med[tool, op] / raw:6.2f}x" if raw else "      -"
        vc = f"{med[tool, op] / rc:7.2f}x" if rc else "       -"
        print(f"{tool:8} {op:7} {' '.join(f'{r:8.1f}' for r in runs):>28} {med[tool, op]:8.1f}  {vr}  {vc}")
    if ("vault", "import") in med:
        print("\ntargets: import >= 0.8x raw PUT, export >= 0.8x raw GET, >= 2x rclone crypt")
        for op in ("import", "export"):
            v = med["vault", op]
            checks = []
            if ("raw", op) in med:
                checks.append(f"{v / med['raw', op]:.2f}x raw ({'ok' if v >= 0.8 * med['raw', op] else 'MISSED'})")
            if ("rclone", op) in med:
                rc = med["rclone", op]
                checks.append(f"{v / rc:.2f}x rclone ({'ok' if v >= 2 * rc else 'MISSED'})")
            print(f"  {op}: " + ", ".join(checks))


if __name__ == "__main__":
    main()
