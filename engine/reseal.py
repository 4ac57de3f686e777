"""W2 of a rekey: a commit newly refers to no object of an older key epoch than its own.

After a rekey (docs/format.md, "Rekey beside writers"; ``models/rekey.py``), a writer that uploaded
under the old epoch, or deduplicated against an old-epoch object, or takes in a drop sealed to the
old epoch, must not make the new commit refer to those objects: a revoked party that kept the old
keys and storage access could have replaced them. What the parent commit already held at the same
path stays (the history held it before); everything else of an older epoch is read and stored
again under the current one (the old objects become garbage for prune).

Only the dirty part of the tree is walked (clean subtrees are the parent's).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from .catalog.tree import Dir, File, Node, Tree
from .errors import NotADirectory, NotFound
from .format.refs import Blob

Copy = Callable[[Blob], Awaitable[Blob]]
"""Read one blob and store its bytes again under the current epoch; returns the new blob."""


async def _base_children(base: Tree, where: list[bytes]) -> dict[bytes, Node]:
    """The entries ``base`` holds in the directory at ``where`` (none if it is no directory there)."""
    try:
        d = await base.lookup(where) if where else base.root
    except (NotFound, NotADirectory):
        return {}
    return dict(await base.children(d, where)) if isinstance(d, Dir) else {}


def _same_blobs(old: Node | None, node: File) -> bool:
    """Whether ``old`` is a file with the very same blobs (the parent referred to them there)."""
    return isinstance(old, File) and [(b.object_name, b.id) for b in old.blobs] == \
        [(b.object_name, b.id) for b in node.blobs]


async def reseal(tree: Tree, base: Tree, epoch: int, copy: Copy) -> int:
    """Re-seal, in ``tree``'s dirty part, every file with a blob of an epoch older than ``epoch``
    that ``base`` does not hold at the same path; returns how many files were re-sealed. ``base``
    is read once per directory that has such a file."""
    done = 0
    stack: list[tuple[Dir, list[bytes]]] = [(tree.root, [])]
    while stack:
        d, where = stack.pop()
        kids = d.children or {}
        held: dict[bytes, Node] | None = None
        for name, node in list(kids.items()):
            if isinstance(node, Dir) and node.dirty:
                stack.append((node, [*where, name]))
            elif isinstance(node, File) and any(b.epoch < epoch for b in node.blobs):
                if held is None:
                    held = await _base_children(base, where)
                if _same_blobs(held.get(name), node):
                    continue
                blobs = [await copy(b) if b.epoch < epoch else b for b in node.blobs]
                kids[name] = dataclasses.replace(node, blobs=blobs)
                done += 1
    return done
