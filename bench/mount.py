"""Sequential write and read of one large file through sigmavault's mount, gocryptfs and rclone mount.

    .venv/bin/python bench/mount.py --size-mib 1024 --runs 3

Each round mounts every filesystem fresh, writes the file with ``dd bs=1M conv=fsync`` (so the
time includes getting the data durable: for sigmavault, sealed, stored and committed), unmounts,
drops the page cache, mounts again and reads it back with ``dd bs=1M``. Prints MB/s, ratios, the
CPU seconds each mount process spent during each ``dd`` (user + system: steadier than wall time on a
busy machine) and the peak RSS of each mount process (VmHWM), and writes ``bench/results/mount.json``.
``--profile DIR`` records a ``py-spy`` profile (collapsed stacks, native frames and thread ids
included: ``DIR/write.txt``, ``DIR/read.txt``, input for any flame graph tool) of sigmavault's mount
process during each ``dd``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SV = str(Path(sys.executable).parent / "sigmavault")
PASSWORD = "bench-passphrase-not-secret"


def sh(cmd: list[str], env: dict[str, str] | None = None, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env={**os.environ, **(env or {})}, check=True, capture_output=True, text=True,
                          **kw)  # type: ignore[call-overload, no-any-return]


def drop_caches() -> None:
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        pass  # not allowed here: reads may then come partly from the page cache, for every tool alike


def wait_mounted(mnt: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.ismount(mnt):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{mnt} did not mount")
        time.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Fs:
    name = ""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.mnt = work / "mnt"
        self.proc: subprocess.Popen[bytes] | None = None

    def fresh(self) -> None:
        self.unmount()
        shutil.rmtree(self.work, ignore_errors=True)
        self.mnt.mkdir(parents=True)
        self.setup()

    def setup(self) -> None: ...

    def mount(self) -> None:
        raise NotImplementedError

    def unmount(self) -> None:
        if self.proc is not None:
            subprocess.run(["fusermount3", "-u", str(self.mnt)], check=False, capture_output=True)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None
        elif self.mnt.exists() and os.path.ismount(self.mnt):
            subprocess.run(["fusermount3", "-u", str(self.mnt)], check=False, capture_output=True)

    def peak(self) -> float:
        return hwm_mib(self.proc.pid) if self.proc is not None else 0.0

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid) if self.proc is not None else 0.0


class Sigmavault(Fs):
    name = "sigmavault mount"

    def __init__(self, work: Path) -> None:
        super().__init__(work)
        self.env = {"SIGMAVAULT_HOME": str(work / "home"), "SIGMAVAULT_PASSPHRASE": PASSWORD,
                    "SIGMAVAULT_VAULT": str(work / "vault")}

    def setup(self) -> None:
        sh([SV, "create", "--kdf", "minimum"], self.env)

    def mount(self) -> None:
        self.proc = subprocess.Popen([SV, "mount", str(self.mnt)], env={**os.environ, **self.env},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_mounted(self.mnt)

    def unmount(self) -> None:
        if self.proc is not None:
            self.proc.terminate()  # SIGTERM: flush, commit, unmount
            self.proc.wait(timeout=300)
            self.proc = None
        super().unmount()


class Gocryptfs(Fs):
    name = "gocryptfs"

    def setup(self) -> None:
        (self.work / "pass").write_text(PASSWORD)
        (self.work / "cipher").mkdir()
        sh(["gocryptfs", "-init", "-q", "-passfile", str(self.work / "pass"), str(self.work / "cipher")])

    def mount(self) -> None:
        self.proc = subprocess.Popen(["gocryptfs", "-f", "-q", "-passfile", str(self.work / "pass"),
                                      str(self.work / "cipher"), str(self.mnt)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_mounted(self.mnt)


class RcloneMount(Fs):
    name = "rclone mount (crypt)"

    def setup(self) -> None:
        obscured = sh(["rclone", "obscure", PASSWORD]).stdout.strip()
        self.env = {"RCLONE_CONFIG_SVB_TYPE": "crypt", "RCLONE_CONFIG_SVB_REMOTE": str(self.work / "remote"),
                    "RCLONE_CONFIG_SVB_PASSWORD": obscured, "RCLONE_CONFIG": "/dev/null"}
        (self.work / "remote").mkdir()

    def mount(self) -> None:
        self.proc = subprocess.Popen(["rclone", "mount", "svb:", str(self.mnt), "--vfs-cache-mode", "writes",
                                      "--cache-dir", str(self.work / "cache")],
                                     env={**os.environ, **self.env}, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_mounted(self.mnt)


def dd(fs: Fs, op: str, args: list[str], profile: Path | None) -> tuple[float, float]:
    """Wall seconds of the ``dd`` and CPU seconds the mount process spent meanwhile."""
    spy: subprocess.Popen[bytes] | None = None
    if profile is not None and isinstance(fs, Sigmavault) and fs.proc is not None:
        profile.mkdir(parents=True, exist_ok=True)
        out = profile / f"{op}.txt"
        spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--native", "--threads",
                                "--format", "raw", "--pid", str(fs.proc.pid), "-o", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)  # py-spy attaches
    cpu = fs.cpu()
    t = time.perf_counter()
    sh(["dd", "bs=1M", *args])
    wall, cpu = time.perf_counter() - t, fs.cpu() - cpu
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=120)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "data" / "mount")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--tools", default="sigmavault,gocryptfs,rclone")
    ap.add_argument("--profile", type=Path, help="py-spy flame graphs of sigmavault's mount process go here")
    args = ap.parse_args()
    src = args.work / "src.bin"
    args.work.mkdir(parents=True, exist_ok=True)
    if not src.exists() or src.stat().st_size != args.size_mib << 20:
        sh(["dd", "if=/dev/urandom", f"of={src}", "bs=1M", f"count={args.size_mib}"])
    makers = {"sigmavault": Sigmavault, "gocryptfs": Gocryptfs, "rclone": RcloneMount}
    fss = [makers[t](args.work / t) for t in args.tools.split(",")]
    times: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    rss: dict[str, float] = {}
    nbytes = args.size_mib << 20
    for round_no in range(args.runs):
        for fs in fss:
            fs.fresh()
            fs.mount()
            w, wc = dd(fs, "write", [f"if={src}", f"of={fs.mnt / 'big.bin'}", "conv=fsync"], args.profile)
            rss[fs.name] = max(rss.get(fs.name, 0.0), fs.peak())
            fs.unmount()
            drop_caches()
            fs.mount()
            r, rc = dd(fs, "read", [f"if={fs.mnt / 'big.bin'}", "of=/dev/null"], args.profile)
            rss[fs.name] = max(rss.get(fs.name, 0.0), fs.peak())
            fs.unmount()
            times.setdefault((fs.name, "write"), []).append(w)
            times.setdefault((fs.name, "read"), []).append(r)
            cpus.setdefault((fs.name, "write"), []).append(wc)
            cpus.setdefault((fs.name, "read"), []).append(rc)
            print(f"round {round_no + 1} {fs.name:<22} write {nbytes / 1e6 / w:7.1f} MB/s ({wc:5.1f} CPU s)  "
                  f"read {nbytes / 1e6 / r:7.1f} MB/s ({rc:5.1f} CPU s)", flush=True)
    mbps = {k: nbytes / 1e6 / statistics.median(v) for k, v in times.items()}
    cpu = {k: statistics.median(v) for k, v in cpus.items()}
    print(f"\n{'filesystem':<22} {'op':<6} {'MB/s':>8} {'CPU s':>6} {'peak RSS':>9}  ratio of sigmavault to it")
    for (name, op), value in sorted(mbps.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        ours = mbps.get(("sigmavault mount", op), 0.0)
        ratio = f"{ours / value:.2f}x" if name != "sigmavault mount" and value else ""
        print(f"{name:<22} {op:<6} {value:>8.1f} {cpu[name, op]:>6.1f} {rss.get(name, 0):>7.1f}M  {ratio}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mount.json").write_text(json.dumps(
        {"size_mib": args.size_mib, "memory_cache_mib": 64, "mbps": {f"{k[0]}/{k[1]}": v for k, v in mbps.items()},
         "cpu_seconds": {f"{k[0]}/{k[1]}": v for k, v in cpu.items()}, "peak_rss_mib": rss},
        indent=1))


if __name__ == "__main__":
    main()
