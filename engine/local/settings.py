"""The settings the engine is handed: performance knobs and this device's folders.

The engine never looks a setting up itself (no environment, no home directory): the front
(:mod:`sigmavault.config` for the library and the CLI) builds a :class:`Tuning` and a
:class:`Places` and passes them to ``open``/``create``. The defaults here are the only ones:
``DEFAULT_MIXER`` is the executor the benchmark measured fastest, and the mixer itself has no
default of its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

MIXERS = ("process", "thread", "inline")
DEFAULT_MIXER = "inline"  # fastest measured on 2 cores (bench/library.py, bench/compare.py)


@dataclass(frozen=True, slots=True)
class Tuning:
    """Performance knobs; memory is a function of these, never of input size."""

    upload_concurrency: int = 8
    readahead: int = 4  # chunks fetched ahead when streaming a file
    pack_cache: int = 8  # whole packs kept in memory for small-blob reads
    page_target: int = 256 * 1024  # a directory page is split past this size
    mixer: str = DEFAULT_MIXER  # executor sealing and opening chunks: one of MIXERS
    mixer_workers: int = 2
    mixer_slots: int = 4  # sealed chunks in flight at once (each one object of ~chunk size)
    refresh_interval: float | None = 5.0  # a long-lived Vault adopts other clients' commits this often (as the mount)

    def __post_init__(self) -> None:
        if self.mixer not in MIXERS:
            raise UsageError(f"unknown mixer {self.mixer!r}: one of {', '.join(MIXERS)}")


@dataclass(frozen=True, slots=True)
class Places:
    """This device's folders: per-vault state below ``state``, device secrets in ``config``.

    Nothing here is ever uploaded. The state folder of one vault is keyed by its full location
    (see :mod:`.devstate`), so two vaults never share a pin.
    """

    state: Path
    config: Path

    def vault_state(self, location: str) -> Path:
        """The local state folder of one vault, keyed by its normalized location."""
        return self.state / hashlib.sha256(location.encode()).hexdigest()[:32]

    @property
    def device_secret(self) -> Path:
        """Where this device keeps the second factor of ``argon2id+device`` slots (mode 0600)."""
        return self.config / "device-secret"

    @property
    def device_key(self) -> Path:
        """Where this device keeps the key of its ``xwing`` device slots (mode 0600)."""
        return self.config / "device-key"
