"""Turn a vault URL into a backend: a path, ``file://``, ``mem://name``, ``s3://`` or ``az://``.

::

    /srv/vault, ./vault, ~/vault   LocalBackend on that folder
    file:///srv/vault              the same (percent-escapes decoded; host empty or localhost)
    mem://demo                     the in-process store "demo" (MemoryStores)
    s3://bucket/prefix?...         backends/s3.py     S3Backend.from_url(url, **opts)
    az://container/prefix?...      backends/azure.py  AzureBackend.from_url(url, **opts)

The cloud modules are imported only when their scheme is used, so a vault on disk never pays
for (or needs) aiobotocore or the Azure SDK. This module opens nothing and does no I/O; the
backend touches its store on first use. Every bad URL raises :class:`UsageError`.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..engine.errors import UsageError
from .base import Backend
from .local import LocalBackend
from .memory import STORES, MemoryStores

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_CLOUD = {"s3": ("s3", "S3Backend", "S3"), "az": ("azure", "AzureBackend", "Azure Blob")}


def open_backend(url: str, *, stores: MemoryStores | None = None, **opts: Any) -> Backend:
    """The backend ``url`` names. ``opts`` go to the backend (``create=True`` for a new local vault).

    ``stores`` picks the :class:`MemoryStores` behind ``mem://`` (default: the process-wide one).
    Raises UsageError for an empty or malformed URL, an unknown scheme, or a cloud scheme whose
    module or SDK is not installed.
    """
    if not isinstance(url, str) or not url.strip():
        raise UsageError("no vault URL given: use a path, file://, mem://, s3:// or az://")
    match = _SCHEME.match(url)
    if match is None:
        return _local(Path(url), opts)
    scheme = match.group(1).lower()
    if scheme == "file":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise UsageError(f"file:// URLs name a local folder, e.g. file:///srv/vault (got {url!r})")
        return _local(Path(unquote(parts.path)), opts)
    if scheme == "mem":
        if opts:
            raise UsageError(f"mem:// takes no options (got {', '.join(sorted(opts))})")
        return (stores or STORES).open(url[match.end() :].strip("/"))
    if scheme in _CLOUD:
        module_name, class_name, label = _CLOUD[scheme]
        try:
            module = importlib.import_module(f"{__package__}.{module_name}")
            factory = getattr(module, class_name).from_url
        except (ImportError, AttributeError) as exc:
            raise UsageError(f"{scheme}:// vaults need {label} support, which is not installed here ({exc})") from exc
        backend: Backend = factory(url, **opts)
        return backend
    raise UsageError(f"unknown vault URL scheme '{scheme}': use a path, file://, mem://, s3:// or az://")


def _local(path: Path, opts: dict[str, Any]) -> LocalBackend:
    create = bool(opts.pop("create", False))
    if opts:
        raise UsageError(f"a local vault takes only the 'create' option (got {', '.join(sorted(opts))})")
    return LocalBackend(path, create=create)
