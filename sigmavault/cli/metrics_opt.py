"""``--metrics HOST:PORT`` and ``--metrics-public``: the Prometheus exporter of ``mount`` and ``serve http``.

:func:`add_arguments` adds the two options to a command; :func:`address` checks them before the
vault is opened (a malformed address, or one off loopback without ``--metrics-public``, is a
UsageError: object counts, sizes and request rates tell an observer how active the vault is);
:func:`serving` runs :func:`sigmavault.metrics.serve_metrics` while the command serves. Without
``--metrics`` nothing is imported and prometheus-client is not needed.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .. import UsageError
from .listen import is_loopback, parse_listen

if TYPE_CHECKING:
    from .. import Vault
    from ..metrics import MetricsServer


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics", metavar="HOST:PORT",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics (loopback only unless "
                        "--metrics-public; needs prometheus-client)")
    p.add_argument("--metrics-public", action="store_true",
                   help="allow --metrics on an address other than loopback (the metrics show how active the vault is)")


def address(args: Any) -> tuple[str, int] | None:
    """Where ``--metrics`` asks to listen, checked; None without it. Raises UsageError."""
    if not getattr(args, "metrics", None):
        if getattr(args, "metrics_public", False):
            raise UsageError("--metrics-public needs --metrics HOST:PORT")
        return None
    host, port = parse_listen(args.metrics, "--metrics")
    if not is_loopback(host) and not args.metrics_public:
        raise UsageError(f"refusing to serve metrics on {host}, which is not a loopback address, without "
                         "--metrics-public: object counts and sizes show how active the vault is")
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise UsageError("--metrics needs prometheus-client: pip install 'sigmavault[metrics]'") from None
    return host, port


@contextlib.contextmanager
def serving(vault: Vault, where: tuple[str, int] | None) -> Iterator[MetricsServer | None]:
    """The exporter for ``vault`` at ``where`` while the block runs (nothing when ``where`` is None)."""
    if where is None:
        yield None
        return
    from ..metrics import serve_metrics

    server = serve_metrics(vault, *where)
    try:
        yield server
    finally:
        server.close()
