"""The ``sigmavault`` command: builds the argument parser and maps every failure to an exit code, here only.

Each command lives in its own module (``cmd_*.py``) with a ``register(sub, common)`` that adds its
parser and an ``async`` handler ``run(opts, args, out)``. This module runs the handler under
``asyncio.run`` and turns what escapes into one line on stderr,
``sigmavault: error: <message>``, and the exit code of the error class (``engine/errors.py``)::

    0 ok   1 other   2 usage   3 auth   4 not found   5 exists   6 integrity   7 rollback
    8 backend   9 unreachable   10 storage credentials   11 local I/O   12 concurrent change
    13 locked / agent   130 interrupted (Ctrl-C)

Unexpected exceptions print one line and "run with --debug for details" (exit 1); ``--debug``
prints the traceback of any failure. With ``--json`` the error is also written to stdout as
``{"error":{"type":…,"message":…,"exit_code":…}}``. Global options work before or after the
command name.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import sys
import traceback
from collections.abc import Coroutine, Sequence
from typing import Any, NoReturn

from .. import AuthError, Interrupted, LocalIOError, NoSpace, UsageError, VaultError, __version__, config
from .._internal import first_error, harden
from . import (
    cmd_agent,
    cmd_completion,
    cmd_create,
    cmd_device,
    cmd_export,
    cmd_files,
    cmd_guard,
    cmd_history,
    cmd_import,
    cmd_inspect,
    cmd_key,
    cmd_lifecycle,
    cmd_places,
    cmd_prune,
    cmd_rekey,
    cmd_serve,
    cmd_vaults,
    mount,
)
from .access import Options
from .output import Output

COMMANDS = (cmd_create, cmd_import, cmd_export, cmd_files, cmd_inspect, cmd_history, cmd_lifecycle, cmd_prune,
            cmd_guard, cmd_key, cmd_rekey, cmd_agent, cmd_device, mount, cmd_serve, cmd_vaults, cmd_places,
            cmd_completion)
_GLOBAL = ("vault", "json", "debug", "passphrase_file", "recovery_code", "recovery_code_file", "identity_file",
           "fingerprint", "no_agent", "single_writer", "audit_host",
           "write_quorum", "writer_credential")
#: the commands a write-only credential may run (every other one needs to read the vault)
WRITER_COMMANDS = ("import", "backup")


class _Commands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """Subcommands whose ``--vault`` values add to those given before the command name (argparse
    parses a command into a new namespace, whose list would replace the earlier one)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        before: list[str] | None = getattr(namespace, "vault", None)
        super().__call__(parser, namespace, values, option_string)
        after: list[str] | None = getattr(namespace, "vault", None)
        if before and after and after is not before:
            namespace.vault = [*before, *after]


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", _Commands)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _add_global(p: argparse.ArgumentParser, suppress: bool) -> None:
    def d(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    g = p.add_argument_group("global options")
    g.add_argument("--vault", metavar="URL", action="append", default=d(None),
                   help="vault location: a path, file://, mem://, s3://, az://, or a name from `sigmavault vaults` "
                        "(env SIGMAVAULT_VAULT); repeat it, in any order, for each place of a dispersed vault")
    g.add_argument("--write-quorum", metavar="N", type=int, default=d(None),
                   help="dispersed vaults: places that must take each write (default max(needed, majority))")
    g.add_argument("--json", action="store_true", default=d(False), help="machine-readable output")
    g.add_argument("--debug", action="store_true", default=d(False), help="show tracebacks")
    g.add_argument("--passphrase-file", metavar="FILE", default=d(None),
                   help="read the passphrase from FILE ('-' = stdin; env SIGMAVAULT_PASSPHRASE)")
    g.add_argument("--recovery-code", action="store_true", default=d(False),
                   help="open with the recovery code (prompt or env SIGMAVAULT_RECOVERY_CODE); also pins the vault")
    g.add_argument("--recovery-code-file", metavar="FILE", default=d(None), help="read the recovery code from FILE")
    g.add_argument("--identity-file", metavar="FILE", default=d(None),
                   help="open a recipient slot with the AGE-SECRET-KEY-PQ-1… identity in FILE")
    g.add_argument("--fingerprint", metavar="HEX", default=d(None),
                   help="pin a vault seen for the first time on this device")
    g.add_argument("--no-agent", action="store_true", default=d(False), help="do not ask the unlock agent")
    g.add_argument("--single-writer", action="store_true", default=d(False),
                   help="accept a store that ignores create-only writes (only this device may then write)")
    g.add_argument("--writer-credential", metavar="FILE", default=d(None),
                   help="write-only: import or backup into this writer's folder with the credential in FILE "
                        "(from `key add --writer`); never asks for a passphrase, cannot read the vault")
    g.add_argument("--audit-host", action="store_true", default=d(False),
                   help="record this machine's host name in the commits it writes (shown by log -v and audit)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sigmavault", description="Encrypted, metadata-hiding file vault.")
    parser.add_argument("--version", action="version", version=f"sigmavault {__version__}")
    _add_global(parser, suppress=False)
    common = _Parser(add_help=False)
    _add_global(common, suppress=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in COMMANDS:
        module.register(sub, common)
    return parser


def _as_vault_error(exc: BaseException) -> VaultError | None:
    if isinstance(exc, VaultError):
        return exc
    if isinstance(exc, KeyboardInterrupt | asyncio.CancelledError):
        return Interrupted("interrupted: nothing was committed; the vault is at its previous generation")
    if isinstance(exc, OSError) and exc.errno is not None:  # a local failure the code did not translate
        where = f" {exc.filename}" if exc.filename else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return NoSpace(f"disk full{where}")
        return LocalIOError(f"local I/O error{where}: {exc.strerror or exc}")
    return None


def _report(out: Output, err: VaultError | None, exc: BaseException, debug: bool) -> int:
    if debug:
        traceback.print_exception(exc)
    if err is None:
        message = f"unexpected {type(exc).__name__}: {exc}; run with --debug for details"
        code, kind = 1, type(exc).__name__
    else:
        message, code, kind = err.message, err.exit_code, type(err).__name__
    message = " ".join(message.split())
    if out.json and not out.has_result:
        with_out = {"error": {"type": kind, "message": message, "exit_code": code}}
        try:
            sys.stdout.write(json.dumps(with_out) + "\n")
            sys.stdout.flush()
        except OSError:
            pass
    sys.stderr.write(f"sigmavault: error: {message}\n")
    sys.stderr.flush()
    return code


async def _quiet(work: Coroutine[Any, Any, None], debug: bool) -> None:
    """Run a command with asyncio's own reports (e.g. a library's orphaned task failing after a
    connection broke) kept off the terminal unless --debug: the command reports its one error."""

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if debug:
            loop.default_exception_handler(context)

    asyncio.get_running_loop().set_exception_handler(handler)
    await work


def run(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (never raises, except SystemExit from --help/--version)."""
    raw = list(sys.argv[1:] if argv is None else argv)
    out = Output("--json" in raw)
    debug = "--debug" in raw
    try:
        args = build_parser().parse_args(raw)
        opts = Options(**{k: getattr(args, k) for k in _GLOBAL if k != "vault"}, vault=tuple(args.vault or ()))
        out = Output(opts.json)
        if opts.writer_credential is not None and args.command not in WRITER_COMMANDS:
            raise AuthError(f"--writer-credential is a write-only credential: `{args.command}` needs to read the "
                            "vault (it can only import and backup)")
        asyncio.run(_quiet(args.handler(opts, args, out), debug))
        return 0
    except SystemExit:
        raise
    except BrokenPipeError:  # e.g. `sigmavault cat f | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except BaseException as caught:  # the one place failures become exit codes
        exc = first_error(caught)  # a TaskGroup's group: its one error (engine/errors.py says the rule)
        return _report(out, _as_vault_error(exc), exc, debug)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    config.tune_malloc()  # flat peak memory for chunk-sized buffers (see its docstring)
    harden.harden()  # this process may hold keys: no core dumps, not dumpable
    harden.take_secret_env()  # no child inherits the passphrase
    sys.exit(run(argv))


if __name__ == "__main__":
    main()
