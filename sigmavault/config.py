"""Where sigmavault keeps its local files, and the tunables with their defaults.

Local files (never uploaded): the default vault, per-vault state (pins, high-water marks, the
SQLite cache), device secrets and the unlock agent's socket. Each location follows the XDG base
directories and can be moved as a whole with ``SIGMAVAULT_HOME`` (tests use that).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path


def _xdg(var: str, fallback: str, short: str) -> Path:
    home = os.environ.get("SIGMAVAULT_HOME")
    if home:
        return Path(home) / short
    base = os.environ.get(var)
    return Path(base) / "sigmavault" if base else Path.home() / fallback / "sigmavault"


def data_dir() -> Path:
    """Holds the default local vault."""
    return _xdg("XDG_DATA_HOME", ".local/share", "data")


def state_dir() -> Path:
    """Per-vault local state: pins, high-water marks, caches."""
    return _xdg("XDG_STATE_HOME", ".local/state", "state")


def config_dir() -> Path:
    """Device secrets and settings."""
    return _xdg("XDG_CONFIG_HOME", ".config", "config")


def runtime_dir() -> Path:
    """The unlock agent's socket (a private directory)."""
    home = os.environ.get("SIGMAVAULT_HOME")
    if home:
        return Path(home) / "run"
    base = os.environ.get("XDG_RUNTIME_DIR")
    return Path(base) / "sigmavault" if base else Path("/tmp") / f"sigmavault-{os.getuid()}"  # noqa: S108


def default_vault_url() -> str:
    return os.environ.get("SIGMAVAULT_VAULT") or str(data_dir() / "default")


def vault_state_dir(url_key: str) -> Path:
    """The local state folder of one vault, keyed by its normalized URL."""
    return state_dir() / hashlib.sha256(url_key.encode()).hexdigest()[:32]


DEFAULT_MIXER = "inline"  # fastest measured on 2 cores (bench/library.py, bench/compare.py)


@dataclass(frozen=True, slots=True)
class Tuning:
    """Performance knobs; memory is a function of these, never of input size."""

    upload_concurrency: int = 8
    readahead: int = 4  # chunks fetched ahead when streaming a file
    pack_cache: int = 8  # whole packs kept in memory for small-blob reads
    page_target: int = 256 * 1024  # a directory page is split past this size
    mixer: str = DEFAULT_MIXER  # executor sealing and opening chunks: process | thread | inline
    mixer_workers: int = 2
    mixer_slots: int = 4  # sealed chunks in flight at once (each one object of ~chunk size)
    refresh_interval: float | None = 5.0  # a long-lived Vault adopts other clients' commits this often (as the mount)

    @classmethod
    def from_env(cls) -> Tuning:
        """Defaults, with ``SIGMAVAULT_MIXER`` choosing the executor (the benchmark sets it)."""
        kind = os.environ.get("SIGMAVAULT_MIXER", DEFAULT_MIXER)
        if kind not in ("process", "thread", "inline"):
            kind = DEFAULT_MIXER
        return cls(mixer=kind)


def tune_malloc() -> None:
    """Keep peak memory flat without paying for it in page faults: one malloc arena.

    Chunk buffers are allocated in worker threads (reads, hashing) and freed in others; glibc gives
    each thread its own arena and freed 4 MiB blocks stay behind in all of them (measured: peak RSS
    of a 1 GiB import 173 MiB). One arena reuses them (124 MiB, and the import got faster). Pinning
    the mmap threshold instead also flattened memory (112 MiB) but made every chunk buffer a fresh
    mapping: export spent twice the system time in page faults. A no-op where glibc is not the
    allocator. Called by the CLI and the mount; a service embedding the library may call it too.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        m_arena_max = -8
        libc.mallopt(m_arena_max, 1)
    except (OSError, AttributeError):
        return
