"""``sigmavault mount MOUNTPOINT`` and ``sigmavault umount MOUNTPOINT``: the vault as a read-write filesystem.

``mount`` runs in the foreground until unmounted or sent SIGTERM/SIGINT (then it flushes, commits
and unmounts), or with ``--background`` starts itself as a detached process, waits until the
file system is up and returns; that process logs to ``--log-file``. Either way a pid file names
the serving process, so ``umount`` can ask it to finish (SIGTERM) and wait until everything is
committed. Without a live process ``umount`` falls back to ``fusermount3 -u`` (``-z`` for a dead
mount). A mount point left dead by a crash is cleared by the next ``mount``. ``--metrics HOST:PORT``
serves Prometheus metrics while mounted (:mod:`.metrics_opt`); every mount also answers ``sigmavault
stats MOUNTPOINT`` on a private socket next to its pid file (:mod:`.stats`).

The background child gets the passphrase through a pipe on its stdin, never through its
arguments, and the places the parent resolved (a named vault is not looked up again). Runnable on
its own as ``python -m sigmavault.cli.mount [--vault URL]… mount|umount ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .. import LocalIOError, NotFound, UsageError, VaultError, config
from .._internal import Passphrase, TwoFactor, harden
from . import metrics_opt, stats
from .access import Options, interactive, open_vault, probe, unlock, without_asking
from .output import Output

MIB = 1 << 20


def _key(mountpoint: Path) -> str:
    return hashlib.sha256(os.path.realpath(mountpoint).encode()).hexdigest()[:16]


def default_pid_file(mountpoint: Path) -> Path:
    return config.runtime_dir() / "mounts" / f"{_key(mountpoint)}.pid"


def stats_socket(mountpoint: Path) -> Path:
    return config.runtime_dir() / "mounts" / f"{_key(mountpoint)}{stats.SUFFIX}"


def default_log_file(mountpoint: Path) -> Path:
    return config.state_dir() / "mounts" / f"{_key(mountpoint)}.log"


def default_cache_dir(mountpoint: Path) -> Path:
    return config.state_dir() / "mounts" / f"{_key(mountpoint)}.cache"


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``mount`` and ``umount`` commands (the convention of ``cli/main.py``)."""
    p = sub.add_parser("mount", parents=[common], help="mount the vault as a read-write filesystem",
                       description="Mount the vault at MOUNTPOINT (FUSE). Ctrl-C or `sigmavault umount` ends it.")
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    p.add_argument("--background", action="store_true", help="detach once mounted (logs to --log-file)")
    p.add_argument("--read-only", action="store_true", help="refuse every change")
    p.add_argument("--allow-other", action="store_true", help="let other users access the mount")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="local folder for the encrypted spool and chunk cache (the mount uses a private subfolder)")
    p.add_argument("--memory-cache", type=int, default=64, metavar="MiB",
                   help="chunks in memory: cached, written (at most half) and read ahead (64)")
    p.add_argument("--disk-cache", type=int, default=1024, metavar="MiB", help="clean chunks spilled to disk (1024)")
    p.add_argument("--write-cache", type=int, default=512, metavar="MiB",
                   help="dirty data spooled before writers wait (512)")
    p.add_argument("--readahead", type=int, default=8, metavar="CHUNKS", help="chunks fetched ahead (8)")
    p.add_argument("--commit-interval", type=float, default=5.0, metavar="S",
                   help="commit pending changes after S seconds of activity (5)")
    p.add_argument("--refresh-interval", type=float, default=5.0, metavar="S",
                   help="adopt other clients' commits every S seconds (5)")
    p.add_argument("--guard", choices=("warn", "freeze"),
                   help="watch for bursts that look like mass encryption or deletion: log them (warn), or also "
                        "switch the mount to read-only until `sigmavault guard unfreeze MOUNTPOINT` (freeze)")
    p.add_argument("--guard-reads", type=int, default=50, metavar="N",
                   help="with --guard: log reads of at least N distinct files that are also half of the vault's "
                        "files, within 10 minutes, as exfiltration-like (50; never frozen)")
    p.add_argument("--pid-file", metavar="FILE", help="where the serving process writes its pid")
    p.add_argument("--log-file", metavar="FILE", help="log of a --background mount")
    metrics_opt.add_arguments(p)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(handler=run_mount)
    u = sub.add_parser("umount", parents=[common], help="unmount a mounted vault (commits first)",
                       description="Ask the mount at MOUNTPOINT to flush, commit and unmount; wait for it.")
    u.add_argument("mountpoint", metavar="MOUNTPOINT")
    u.add_argument("--timeout", type=float, default=600.0, metavar="S", help="how long to wait (600)")
    u.add_argument("--pid-file", metavar="FILE", help="the pid file the mount wrote")
    u.set_defaults(handler=run_umount)
    s = sub.add_parser("stats", parents=[common], help="print the metrics of a running mount",
                       description="Print the counters of the mount at MOUNTPOINT (without it: of every running "
                                   "mount of this user): object store requests, caches, the write pipeline. "
                                   "Asks the mount over its private socket; opens no vault, needs no passphrase.")
    s.add_argument("mountpoint", metavar="MOUNTPOINT", nargs="?")
    s.set_defaults(handler=run_stats)


add_parser = register  # the name the mount issue asked for


def _options(args: argparse.Namespace, mountpoint: Path) -> Any:
    from ..mount.options import MountOptions

    for name in ("memory_cache", "disk_cache", "write_cache", "readahead"):
        if getattr(args, name) < (1 if name == "readahead" else 0):
            raise UsageError(f"--{name.replace('_', '-')} must not be negative")
    return MountOptions(
        cache_dir=Path(args.cache_dir) if args.cache_dir else default_cache_dir(mountpoint),
        read_only=args.read_only, allow_other=args.allow_other, memory_cache=args.memory_cache * MIB,
        disk_cache=args.disk_cache * MIB, write_cache=max(args.write_cache * MIB, 4 * MIB),
        readahead=args.readahead, commit_interval=args.commit_interval, refresh_interval=args.refresh_interval,
        guard=args.guard, guard_reads=max(1, args.guard_reads))


def _alive(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] if cmdline else "Z"
    return b"sigmavault" in cmdline and state != "Z"


def unfreeze(mountpoint: Path, pid_file: Path | None = None) -> int:
    """Ask the mount serving ``mountpoint`` to leave its guard's freeze (SIGUSR1); its pid.
    NotFound if no live mount process is recorded for it."""
    pid = _read_pid(pid_file or default_pid_file(mountpoint))
    if pid is None or not _alive(pid):
        raise NotFound(f"no running mount of {mountpoint} (was it mounted by `sigmavault mount`?)")
    os.kill(pid, signal.SIGUSR1)
    return pid


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


async def run_mount(opts: Options, args: argparse.Namespace, out: Output) -> None:
    from ..mount import session

    mountpoint = Path(args.mountpoint)
    mopts = _options(args, mountpoint)
    metrics_at = metrics_opt.address(args)  # refused before a passphrase is asked for
    if args.background and not args.child:
        _ = opts.places  # a bad name fails here, not in the detached child
        typed = await _checked_passphrase(opts, mountpoint)
        await asyncio.to_thread(_start_background, opts, args, mountpoint, typed)
        out.note(f"mounted on {mountpoint} (background; `sigmavault umount {mountpoint}` to stop)")
        return
    logging.basicConfig(level=logging.DEBUG if os.environ.get("SIGMAVAULT_DEBUG") else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    session.prepare(mountpoint)  # fail before asking for a passphrase
    pid_file = Path(args.pid_file) if args.pid_file else default_pid_file(mountpoint)
    vault = await open_vault(opts)
    try:
        pid_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        pid_file.write_text(f"{os.getpid()}\n")
        try:
            live = session.Session(vault, mopts)
            shown = os.path.realpath(mountpoint)  # now: once mounted, resolving it would ask this very process
            doc = lambda: stats.document(vault, shown, live.ops.watch.counters())  # noqa: E731
            with metrics_opt.serving(vault, metrics_at):
                async with stats.serving(stats_socket(mountpoint), doc):
                    await live.serve(mountpoint)
        finally:
            with contextlib.suppress(OSError):
                if _read_pid(pid_file) == os.getpid():
                    pid_file.unlink()
    finally:
        await vault.aclose()


def _child_argv(opts: Options, args: argparse.Namespace, mountpoint: Path, log_file: Path) -> list[str]:
    argv = [sys.executable, "-m", "sigmavault.cli.mount"]
    if not opts.is_default:  # the places this process resolved (a name is not looked up again)
        for place in opts.places:
            argv += ["--vault", place]
    for flag, value in (("--recovery-code-file", opts.recovery_code_file), ("--identity-file", opts.identity_file),
                        ("--fingerprint", opts.fingerprint)):
        if value:
            argv += [flag, value]
    if opts.no_agent:
        argv.append("--no-agent")
    if opts.single_writer:
        argv.append("--single-writer")
    if opts.audit_host:
        argv.append("--audit-host")
    if opts.write_quorum is not None:
        argv += ["--write-quorum", str(opts.write_quorum)]
    argv += ["mount", os.path.abspath(mountpoint), "--child", "--log-file", str(log_file)]
    for name in ("read_only", "allow_other", "metrics_public"):
        if getattr(args, name):
            argv.append("--" + name.replace("_", "-"))
    for name in ("memory_cache", "disk_cache", "write_cache", "readahead", "commit_interval", "refresh_interval"):
        argv += ["--" + name.replace("_", "-"), str(getattr(args, name))]
    for name in ("cache_dir", "pid_file"):
        if getattr(args, name):
            argv += ["--" + name.replace("_", "-"), os.path.abspath(getattr(args, name))]
    if args.metrics:
        argv += ["--metrics", args.metrics]
    return argv


async def _checked_passphrase(opts: Options, mountpoint: Path) -> bytes | None:
    """A passphrase typed for a background mount, checked here (asking again for a mistyped one, as
    every command does) so the detached child gets one that opens the vault; None when the child
    reads its credential itself (a file, the environment, a recovery code or an identity) or needs
    none (the unlock agent or this device's key opens the vault, as they do for every command)."""
    from ..mount.session import prepare

    if not interactive(opts) or opts.recovery_code or opts.recovery_code_file or opts.identity_file:
        return None
    prepare(mountpoint)  # fail before asking for a passphrase
    await probe(opts)
    opened = await without_asking(opts)
    if opened is not None:
        await opened.aclose()
        return None
    vault, cred = await unlock(opts)
    await vault.aclose()
    typed = cred.passphrase if isinstance(cred, TwoFactor) else cred
    return typed.secret.reveal() if isinstance(typed, Passphrase) else None


def _start_background(opts: Options, args: argparse.Namespace, mountpoint: Path, typed: bytes | None) -> None:
    from ..mount.session import fuse_mounted, prepare

    prepare(mountpoint)
    log_file = Path(args.log_file) if args.log_file else default_log_file(mountpoint)
    log_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    argv = _child_argv(opts, args, mountpoint, log_file)
    secret: bytes | None = None
    if opts.passphrase_file:
        secret = sys.stdin.buffer.read() if opts.passphrase_file == "-" else None  # noqa: S105 ("-" = stdin)
        if secret is None:
            argv[3:3] = ["--passphrase-file", os.path.abspath(opts.passphrase_file)]
    elif (env_pass := harden.secret_env("SIGMAVAULT_PASSPHRASE")) is not None:
        secret = env_pass.encode()  # through the pipe: never in the child's environment
    elif typed is not None:
        secret = typed  # checked by the parent: a typo was asked again there, not found in the log
    if secret is not None:
        argv[3:3] = ["--passphrase-file", "-"]
    with open(log_file, "ab") as log:
        child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log, stderr=log, start_new_session=True,
                                 close_fds=True, env=harden.child_env())
    assert child.stdin is not None
    with contextlib.suppress(BrokenPipeError):
        child.stdin.write(secret or b"")
    child.stdin.close()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if child.poll() is not None:
            tail = log_file.read_text(errors="replace").strip().splitlines()[-1:] if log_file.exists() else []
            raise VaultError(f"the mount process failed: {tail[0] if tail else 'see ' + str(log_file)}")
        if fuse_mounted(mountpoint):
            return
        time.sleep(0.05)
    child.terminate()
    raise VaultError(f"the mount did not come up in time; see {log_file}")


async def run_stats(opts: Options, args: argparse.Namespace, out: Output) -> None:
    where = Path(args.mountpoint) if args.mountpoint else None
    docs = await stats.collect(where, stats_socket, config.runtime_dir() / "mounts")
    stats.report(out, docs, one=where is not None)


async def run_umount(opts: Options, args: argparse.Namespace, out: Output) -> None:
    await asyncio.to_thread(umount, Path(args.mountpoint), Path(args.pid_file) if args.pid_file else None,
                            args.timeout)
    out.note(f"unmounted {args.mountpoint}")


def umount(mountpoint: Path, pid_file: Path | None = None, timeout: float = 600.0) -> None:
    """Stop the mount at ``mountpoint``: SIGTERM its process and wait, else fusermount3. Raises VaultError."""
    from ..mount.session import detach, fuse_mounted, is_dead_mount

    pid_file = pid_file or default_pid_file(mountpoint)
    pid = _read_pid(pid_file)
    if pid is not None and _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                raise VaultError(f"the mount process {pid} is still committing after {timeout:.0f} s")
            time.sleep(0.05)
        return
    if is_dead_mount(mountpoint):
        if not detach(mountpoint, lazy=True):
            raise LocalIOError(f"cannot detach the dead mount at {mountpoint}")
        return
    if not fuse_mounted(mountpoint):
        raise UsageError(f"{mountpoint} is not mounted")
    if not detach(mountpoint, lazy=False):
        raise LocalIOError(f"cannot unmount {mountpoint} (busy?)")


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (the background child, tests): global options, then ``mount``/``umount``."""
    config.tune_malloc()
    harden.harden()
    harden.take_secret_env()
    parser = argparse.ArgumentParser(prog="sigmavault")
    parser.add_argument("--vault", action="append")
    for flag in ("--passphrase-file", "--recovery-code-file", "--identity-file", "--fingerprint"):
        parser.add_argument(flag)
    parser.add_argument("--no-agent", action="store_true")
    parser.add_argument("--single-writer", action="store_true")
    parser.add_argument("--audit-host", action="store_true")
    parser.add_argument("--write-quorum", type=int)
    parser.add_argument("--debug", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub, argparse.ArgumentParser(add_help=False))
    args = parser.parse_args(argv)
    opts = Options(vault=tuple(args.vault or ()), passphrase_file=args.passphrase_file,
                   recovery_code_file=args.recovery_code_file, identity_file=args.identity_file,
                   fingerprint=args.fingerprint, no_agent=args.no_agent, single_writer=args.single_writer,
                   audit_host=args.audit_host, write_quorum=args.write_quorum, debug=args.debug)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(args.handler(opts, args, Output(False)))
    except VaultError as exc:
        sys.stderr.write(f"sigmavault: error: {exc.message}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
