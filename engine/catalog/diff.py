"""What changed between two catalog trees (``sigmavault diff GEN1 GEN2``).

Walks both trees together and skips every subtree whose directory pages are identical (same keyed
page ids): content addressing makes an unchanged directory cheap to recognise without loading it.
``log`` summarizes each generation this way, so its cost is what the generation changed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from .tree import Dir, File, Link, Node, Tree, show


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # "added" | "removed" | "modified"
    path: str
    type: str  # "file" | "dir" | "symlink"
    size: int = 0  # a regular file's size: the new one (added, modified) or the old one (removed)


def _type(n: Node) -> str:
    return "dir" if isinstance(n, Dir) else ("symlink" if isinstance(n, Link) else "file")


def _size(n: Node) -> int:
    return n.size if isinstance(n, File) else 0


@dataclass(frozen=True, slots=True)
class Summary:
    """What one generation changed: counts of paths, and the bytes of the files it added or modified."""

    added: int = 0
    modified: int = 0
    removed: int = 0
    bytes: int = 0


async def summarize(old: Tree, new: Tree) -> Summary:
    counts = {"added": 0, "modified": 0, "removed": 0}
    nbytes = 0
    async for c in diff_trees(old, new):
        counts[c.kind] += 1
        if c.kind != "removed":
            nbytes += c.size
    return Summary(counts["added"], counts["modified"], counts["removed"], nbytes)


async def file_counts(old: Tree, new: Tree) -> dict[str, int]:
    """What a commit records in ``meta.counts``: files (not directories) added, changed, removed,
    and the bytes of the files added or changed, between the head ``old`` and the working tree ``new``.

    Reads no page of ``new`` that editing did not load, and of ``old`` only the earlier versions of
    the directories edited: a directory moved or removed whole, unread, counts none of the files
    below it (the counts are then a lower bound), so a commit never costs more than its edits did.
    """
    counts = {"added": 0, "changed": 0, "removed": 0, "bytes": 0}
    async for kind, _parts, _name, node in _changes(old, new, loaded_only=True):  # no path built per file
        if isinstance(node, Dir):
            continue
        counts["changed" if kind == "modified" else kind] += 1
        if kind != "removed" and isinstance(node, File):
            counts["bytes"] += node.size
    return counts


async def diff_trees(old: Tree, new: Tree, *, loaded_only: bool = False) -> AsyncIterator[Change]:
    """Every change, depth first in name order; a directory's own change comes before its contents.

    Iterative, with one frame per open directory (a tree may be deeper than Python's recursion limit).
    ``loaded_only``: do not descend where ``new``'s directory is not loaded, nor into a removed
    directory that is not (see :func:`file_counts`).
    """
    async for kind, parts, name, node in _changes(old, new, loaded_only=loaded_only):
        yield Change(kind, show([*parts, name]), _type(node), _size(node))


async def _changes(old: Tree, new: Tree, *, loaded_only: bool) -> AsyncIterator[tuple[str, list[bytes], bytes, Node]]:
    """:func:`diff_trees` as (kind, parent's parts, name, the node that says it: the new one, or the
    removed one)."""

    async def frame(parts: list[bytes], a: Dir | None, b: Dir | None
                    ) -> tuple[list[bytes], dict[bytes, Node], dict[bytes, Node], Iterator[bytes]] | None:
        if a is not None and b is not None and not a.dirty and not b.dirty and \
                [p.id for p in a.pages] == [p.id for p in b.pages]:
            return None  # identical pages: nothing below changed
        if loaded_only and (b.children is None if b is not None else a is None or a.children is None):
            return None
        ak = await old.children(a) if a is not None else {}
        bk = await new.children(b) if b is not None else {}
        return parts, ak, bk, iter(sorted(set(ak) | set(bk)))

    top = await frame([], old.root, new.root)
    stack = [top] if top is not None else []
    while stack:
        parts, ak, bk, names = stack[-1]
        name = next(names, None)
        if name is None:
            stack.pop()
            continue
        x, y = ak.get(name), bk.get(name)
        below = None
        if x is None and y is not None:
            yield "added", parts, name, y
            if isinstance(y, Dir):
                below = await frame([*parts, name], None, y)
        elif y is None and x is not None:
            yield "removed", parts, name, x
            if isinstance(x, Dir):
                below = await frame([*parts, name], x, None)
        elif isinstance(x, Dir) and isinstance(y, Dir):
            below = await frame([*parts, name], x, y)
        elif x is not None and y is not None and _changed(x, y):
            yield "modified", parts, name, y
        if below is not None:
            stack.append(below)


def _changed(x: Node, y: Node) -> bool:
    """Content or metadata differ. A symlink's ctime is when it was written into the vault, not part
    of what it is: a symlink re-stored unchanged is not a change."""
    if isinstance(x, Link) and isinstance(y, Link):
        return (x.target, x.meta.mode, x.meta.uid, x.meta.gid, x.meta.mtime_ns, sorted(x.meta.xattrs.items())) != \
            (y.target, y.meta.mode, y.meta.uid, y.meta.gid, y.meta.mtime_ns, sorted(y.meta.xattrs.items()))
    return x.key() != y.key()
