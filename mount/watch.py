"""The mount's guard (``mount --guard warn|freeze``): notice a burst that looks like mass encryption
or mass deletion while it happens, and (``freeze``) switch the mount to read-only (EROFS on every
change) until ``sigmavault guard unfreeze MOUNTPOINT`` (SIGUSR1 to the serving process) resumes it.

Signals come from the bytes the mount already holds (:meth:`Watch.wrote` samples each write's
buffer, no extra read): an existing file (not one created on this mount since it opened) whose
rewritten content is near-random without a known format signature at its release is a *rewrite*;
a rename to a new extension (``a.docx`` → ``a.docx.locked``) counts as one too; an unlink of a file
is a *deletion*. Events older than ``guard_window`` seconds drop out; ``guard_rewrites`` rewrites or
``guard_deletions`` deletions inside the window trip the guard. Every trip is logged with the counts,
and the mount's next commit carries it in ``meta.guard`` (suspect, the reasons), as a backup's does.

Reads (exfiltration): files opened for reading within ``guard_read_window`` seconds, counted once
each (by inode). At least ``guard_reads`` of them *and* at least ``guard_reads_permille`` ‰ of the
files the vault holds is logged as exfiltration-like (a copy of most of the tree) and counted in
:attr:`Watch.read_warnings`; then the count starts over. Reads never freeze the mount and never
mark a commit (reading changes nothing). The vault's file count is taken only when the reads
counted would reach the share of the last count taken (or that count is older than the window).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..engine.anomaly import known_format, looks_renamed
from ..engine.content.signals import Sampler
from .options import MountOptions

log = logging.getLogger(__name__)

RANDOM = 7.5


class Watch:
    """One mount's burst detector (a no-op without ``--guard``)."""

    def __init__(self, opts: MountOptions, clock: Callable[[], float] = time.monotonic) -> None:
        self.mode = opts.guard
        self.rewrites_limit = opts.guard_rewrites
        self.deletions_limit = opts.guard_deletions
        self.window = opts.guard_window
        self.clock = clock
        self._sampler = Sampler()
        self._sampling: set[int] = set()  # handles of existing files opened for writing
        self._rewrites: deque[float] = deque()
        self._deletions: deque[float] = deque()
        #: why the mount is frozen (None: it is not)
        self.frozen: str | None = None
        self.trips = 0
        self._unrecorded: list[str] = []  # trips not yet in a commit's meta
        self.reads_min = opts.guard_reads
        self.reads_permille = opts.guard_reads_permille
        self.read_window = opts.guard_read_window
        self._reads: dict[int, float] = {}  # inode -> when it was last opened for reading (in the window)
        self._total: tuple[int, float] | None = None  # the vault's file count and when it was taken
        #: how many times reads looked like exfiltration (logged; never frozen)
        self.read_warnings = 0

    def meta(self) -> dict[str, Any] | None:
        """``meta.guard`` for the mount's next commit: it is marked suspect if the guard tripped since
        the last one (:meth:`recorded` once it landed)."""
        if not self._unrecorded:
            return None
        return {"guard": {"run": {"mount_trips": len(self._unrecorded)}, "suspect": True,
                          "reasons": [f"mount: {r}"[:200] for r in self._unrecorded[-16:]]}}

    def counters(self) -> dict[str, Any]:
        """What ``sigmavault stats`` shows of the guard."""
        return {"mode": self.mode, "frozen": self.frozen is not None, "trips": self.trips,
                "read_warnings": self.read_warnings, "reads_counted": len(self._reads)}

    def recorded(self) -> None:
        self._unrecorded.clear()

    def opened(self, fh: int) -> None:
        """An existing file was opened for writing on handle ``fh``."""
        if self.mode is not None:
            self._sampling.add(fh)

    def wrote(self, fh: int, off: int, buf: bytes) -> None:
        if fh in self._sampling:
            self._sampler.piece(fh, 0 if off == 0 else 1, buf)

    def released(self, fh: int) -> None:
        if fh not in self._sampling:
            return
        self._sampling.discard(fh)
        sig = self._sampler.take(fh)
        if sig.entropy >= RANDOM and not known_format(sig.head):
            self._event(self._rewrites, "rewrite")

    def read(self, inode: int) -> bool:
        """A file was opened for reading. True: the caller must count the vault's files and pass the
        count to :meth:`judge_reads` (the reads counted may be a large share of them)."""
        if self.mode is None:
            return False
        now = self.clock()
        self._reads[inode] = now
        if len(self._reads) < self.reads_min:
            return False
        self._reads = {i: t for i, t in self._reads.items() if t >= now - self.read_window}
        if len(self._reads) < self.reads_min:
            return False
        if self._total is None or self._total[1] < now - self.read_window:
            return True
        return self._share_hit(self._total[0])

    def judge_reads(self, total: int) -> None:
        """``total``: the files the vault holds now. Warn if the reads counted are a large share of them."""
        self._total = (total, self.clock())
        if len(self._reads) < self.reads_min or not self._share_hit(total):
            return
        self.read_warnings += 1
        log.warning("guard: suspicious reads: %d distinct files of %d (%.0f%%) opened for reading within %g s "
                    "(looks like exfiltration: a copy of most of the tree; reads are never frozen)",
                    len(self._reads), total, 100 * len(self._reads) / max(1, total), self.read_window)
        self._reads.clear()

    def _share_hit(self, total: int) -> bool:
        return 1000 * len(self._reads) >= self.reads_permille * total

    def deleted(self) -> None:
        if self.mode is not None:
            self._event(self._deletions, "deletion")

    def renamed(self, old: bytes, new: bytes) -> None:
        if self.mode is not None and looks_renamed(old, new):
            self._event(self._rewrites, "rename")

    def unfreeze(self) -> None:
        if self.frozen is not None:
            log.warning("guard: unfrozen: the mount is writable again (was: %s)", self.frozen)
        self.frozen = None
        self._rewrites.clear()
        self._deletions.clear()

    def _event(self, events: deque[float], what: str) -> None:
        now = self.clock()
        events.append(now)
        for q in (self._rewrites, self._deletions):
            while q and q[0] < now - self.window:
                q.popleft()
        why = None
        if len(self._rewrites) >= self.rewrites_limit:
            why = (f"{len(self._rewrites)} existing files rewritten to near-random content or renamed to a new "
                   f"extension within {self.window:g} s (looks like mass encryption)")
        elif len(self._deletions) >= self.deletions_limit:
            why = f"{len(self._deletions)} files deleted within {self.window:g} s (looks like mass deletion)"
        if why is None or self.frozen is not None:
            return
        self.trips += 1
        self._unrecorded.append(why)
        if self.mode == "freeze":
            self.frozen = why
            log.warning("guard: suspicious change: froze the mount read-only: %s; "
                        "`sigmavault guard unfreeze MOUNTPOINT` resumes", why)
        else:
            log.warning("guard: suspicious change: %s", why)
            self._rewrites.clear()
            self._deletions.clear()
