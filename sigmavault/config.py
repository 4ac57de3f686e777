"""Where sigmavault keeps its local files, and the settings read from the environment.

Local files (never uploaded): the default vault, per-vault state (pins, high-water marks, the
SQLite cache), device secrets and the unlock agent's socket. Each location follows the XDG base
directories and can be moved as a whole with ``SIGMAVAULT_HOME`` (tests use that).

This is the front's side of settings: it reads the environment and builds the engine's setting
types (:mod:`sigmavault.engine.local.settings`, which hold the one set of defaults); the engine is
handed them by :func:`sigmavault.open`/:func:`sigmavault.create` and never imports this module.
"""

from __future__ import annotations

import os
from pathlib import Path

from .engine.local.settings import DEFAULT_MIXER, MIXERS, Places, Tuning

__all__ = ["DEFAULT_MIXER", "Places", "Tuning", "config_dir", "data_dir", "default_vault", "places",
           "runtime_dir", "state_dir", "tune_malloc", "tuning"]


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


def default_vault() -> str:
    """``SIGMAVAULT_VAULT`` as given (a path, a URL or the name of a vault in vaults.toml), else the
    default local vault's path; :func:`sigmavault.named.default_vault_url` resolves a name."""
    return os.environ.get("SIGMAVAULT_VAULT") or str(data_dir() / "default")


def places() -> Places:
    """This device's folders for the engine: per-vault state and device secrets."""
    return Places(state=state_dir(), config=config_dir())


def tuning() -> Tuning:
    """The default :class:`Tuning`, with ``SIGMAVAULT_MIXER`` choosing the executor (the benchmark
    sets it; an unknown value keeps the default)."""
    kind = os.environ.get("SIGMAVAULT_MIXER", DEFAULT_MIXER)
    return Tuning(mixer=kind if kind in MIXERS else DEFAULT_MIXER)


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
