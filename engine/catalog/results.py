"""What the library API reports: stats of paths, log entries, verify reports (frozen records)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .tree import Dir, File, Node


@dataclass(frozen=True, slots=True)
class Stat:
    """What ``stat``/``ls`` report about one path."""

    name: str
    type: str  # "file" | "dir" | "symlink"
    size: int
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    ctime_ns: int
    target: str | None = None


@dataclass(frozen=True, slots=True)
class LogEntry:
    generation: int
    time: int
    client: str
    #: what the generation changed against the one before (None unless asked for): paths added,
    #: modified, removed, and the bytes of the files it added or modified
    added: int | None = None
    modified: int | None = None
    removed: int | None = None
    bytes: int | None = None
    #: who wrote it, from a v2 commit's ``meta`` (None for v1 or when not recorded): the hex id and
    #: label of the slot that unlocked the writer, and its host name if its user allowed recording it
    slot: str | None = None
    slot_label: str | None = None
    host: str | None = None
    #: what the writer recorded: files added, changed, removed and bytes (``meta.counts``)
    counts: dict[str, int] | None = None
    #: a forget record: the generations it forgot (ascending); None for a snapshot
    forgot: tuple[int, ...] | None = None
    #: the guard marked this generation suspect (and no later record cleared it), and why
    suspect: bool = False
    reasons: tuple[str, ...] = ()
    #: write-only clients' drops this generation took in or refused, one line each (untrusted text:
    #: writers' labels and reasons; escape before printing)
    drops: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class VerifyReport:
    generation: int
    files: int
    directories: int
    blobs_checked: int
    bytes_checked: int
    problems: tuple[str, ...]
    #: things worth knowing that are not damage: unreferenced objects, old keystores, leftover temporaries
    notes: tuple[str, ...] = ()
    generations: int = 1
    objects_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def node_stat(name: bytes, node: Node) -> Stat:
    m = node.meta
    if isinstance(node, File):
        return Stat(os.fsdecode(name), "file", node.size, m.mode, m.uid, m.gid, m.mtime_ns, m.ctime_ns)
    if isinstance(node, Dir):
        return Stat(os.fsdecode(name), "dir", 0, m.mode, m.uid, m.gid, m.mtime_ns, m.ctime_ns)
    return Stat(os.fsdecode(name), "symlink", len(node.target), m.mode, m.uid, m.gid, m.mtime_ns, m.ctime_ns,
                os.fsdecode(node.target))
