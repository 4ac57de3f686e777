"""The settings the engine is handed: performance knobs and this device's folders.

The engine never looks a setting up itself (no environment, no home directory): the front
(:mod:`sigmavault.config` for the library and the CLI) builds a :class:`Tuning` and a
:class:`Places` and passes them to ``open``/``create``. The defaults here are the only ones:
``DEFAULT_MIXER`` is ``auto``: the executor the benchmark measured fastest for this machine's
cores (:func:`auto_mixer`); the mixer itself has no default of its own.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

MIXERS = ("auto", "process", "thread", "inline")
DEFAULT_MIXER = "auto"
POOL_FROM_CORES = 4  # bench/mixer.py: on 2 cores inline wins; the process pool pays off from 4


def auto_mixer(cores: int | None) -> str:
    """The executor ``auto`` means on a machine with ``cores`` cores: inline below
    :data:`POOL_FROM_CORES` (sealing on the event loop's thread beats shipping 4 MiB chunks to
    other processes), the process pool from there on."""
    return "process" if (cores or 1) >= POOL_FROM_CORES else "inline"


@dataclass(frozen=True, slots=True)
class Tuning:
    """Performance knobs; memory is a function of these, never of input size."""

    upload_concurrency: int = 8
    readahead: int = 4  # chunks fetched ahead when streaming a file
    pack_cache: int = 8  # whole packs kept in memory for small-blob reads
    page_target: int = 256 * 1024  # a directory page is split past this size
    mixer: str = DEFAULT_MIXER  # executor sealing and opening chunks: one of MIXERS ("auto" is resolved)
    mixer_workers: int = 0  # 0: one per core but one (at least 2) for a pool
    mixer_slots: int = 0  # sealed chunks in flight at once (each one object of ~chunk size); 0: workers + 2, >= 4
    refresh_interval: float | None = 5.0  # a long-lived Vault adopts other clients' commits this often (as the mount)

    def __post_init__(self) -> None:
        if self.mixer not in MIXERS:
            raise UsageError(f"unknown mixer {self.mixer!r}: one of {', '.join(MIXERS)}")
        cores = os.cpu_count() or 1
        if self.mixer == "auto":
            object.__setattr__(self, "mixer", auto_mixer(cores))
        if self.mixer_workers <= 0:
            object.__setattr__(self, "mixer_workers", max(2, cores - 1))
        if self.mixer_slots <= 0:
            object.__setattr__(self, "mixer_slots", max(4, self.mixer_workers + 2))


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
