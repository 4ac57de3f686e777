"""sigmavault vaults as an fsspec filesystem: ``fsspec.open("sigmavault:///data.csv", vault=…, passphrase=…)``.

Holds :class:`VaultFileSystem` (protocol ``sigmavault``, registered through the ``fsspec.specs``
entry point) in :mod:`.core`, its read and write files in :mod:`.files` and the mapping of vault
errors to built-in ones in :mod:`.errors`. Needs the ``fsspec`` extra. See ``docs/fsspec.md``.
"""

from __future__ import annotations

from .core import VaultFileSystem

__all__ = ["VaultFileSystem"]
