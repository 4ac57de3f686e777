"""The mount's settings (bounds of every cache and queue, timers) with their defaults.

Memory of a mount is a function of these numbers, never of file sizes: the chunk cache holds at
most ``memory_cache`` bytes, dirty data lives on disk up to ``write_cache`` bytes (writers wait
beyond that), and one flush holds at most ``flush_batch`` bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class MountOptions:
    cache_dir: Path  # private folder for the dirty-chunk spool and the chunk cache's spill
    read_only: bool = False
    allow_other: bool = False
    memory_cache: int = 64 << 20  # clean chunks kept in memory
    disk_cache: int = 1 << 30  # clean chunks spilled to disk (encrypted with a per-mount key)
    write_cache: int = 512 << 20  # dirty bytes spooled before writers wait for flushes
    flush_batch: int = 32 << 20  # bytes handed to one Vault.patch call
    readahead: int = 8  # chunks fetched ahead of a sequential reader
    kernel_readahead_kb: int = 4096  # the kernel's readahead on this mount (bdi read_ahead_kb)
    commit_interval: float = 5.0  # commit pending edits after this many seconds of activity
    refresh_interval: float = 5.0  # adopt other clients' commits this often (and on open)
    attr_timeout: float = 1.0  # how long the kernel may cache names and attributes
    guard: str | None = None  # "warn" | "freeze": watch for bursts of mass encryption or deletion (mount/watch.py)
    guard_rewrites: int = 20  # opaque rewrites (or renames to a new extension) of existing files in the window
    guard_deletions: int = 50  # deletions in the window
    guard_window: float = 60.0  # seconds
    # exfiltration: distinct files opened for reading within guard_read_window, at least guard_reads of them
    # and at least guard_reads_permille of the vault's files: logged (never frozen)
    guard_reads: int = 50
    guard_reads_permille: int = 500
    guard_read_window: float = 600.0
