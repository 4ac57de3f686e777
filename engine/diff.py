"""What changed between two catalog trees (``sigmavault diff GEN1 GEN2``).

Walks both trees together and skips every subtree whose directory pages are identical (same keyed
page ids): content addressing makes an unchanged directory cheap to recognise without loading it.
``log`` summarizes each generation this way, so its cost is what the generation changed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from .tree import Dir, File, Node, Tree, show


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # "added" | "removed" | "modified"
    path: str
    type: str  # "file" | "dir" | "symlink"
    size: int = 0  # a regular file's size: the new one (added, modified) or the old one (removed)


def _type(n: Node) -> str:
    return "dir" if isinstance(n, Dir) else ("symlink" if n.key()[0] == "l" else "file")


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


async def diff_trees(old: Tree, new: Tree) -> AsyncIterator[Change]:
    async def walk(parts: list[bytes], a: Dir | None, b: Dir | None) -> AsyncIterator[Change]:
        if a is not None and b is not None and not a.dirty and not b.dirty and \
                [p.id for p in a.pages] == [p.id for p in b.pages]:
            return
        ak = await old.children(a) if a is not None else {}
        bk = await new.children(b) if b is not None else {}
        for name in sorted(set(ak) | set(bk)):
            x, y = ak.get(name), bk.get(name)
            p = parts + [name]
            if x is None and y is not None:
                yield Change("added", show(p), _type(y), _size(y))
                if isinstance(y, Dir):
                    async for c in walk(p, None, y):
                        yield c
            elif y is None and x is not None:
                yield Change("removed", show(p), _type(x), _size(x))
                if isinstance(x, Dir):
                    async for c in walk(p, x, None):
                        yield c
            elif isinstance(x, Dir) and isinstance(y, Dir):
                async for c in walk(p, x, y):
                    yield c
            elif x is not None and y is not None and x.key() != y.key():
                yield Change("modified", show(p), _type(y), _size(y))

    async for change in walk([], old.root, new.root):
        yield change
