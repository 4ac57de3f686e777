"""Checking a vault: every catalog page decodes, every object a file needs exists with the length
its ref says, and (``full``) every blob opens and matches its keyed id.

Problems are collected, each naming the affected path, instead of stopping at the first one, so a
user sees everything a damaged vault has lost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import NotFound, VaultError
from .pages import BlobRef
from .results import VerifyReport
from .store import ObjectStore
from .tree import Dir, File, Tree, show

if TYPE_CHECKING:
    from .vault import Vault


async def verify_tree(vault: Vault, tree: Tree, store: ObjectStore, full: bool) -> VerifyReport:
    problems: list[str] = []
    files = dirs = blobs = nbytes = 0
    seen: dict[str, str | None] = {}  # object name -> problem (None = fine)

    async def check_object(ref: BlobRef) -> str | None:
        if ref.object_name in seen:
            return seen[ref.object_name]
        try:
            size = await store.backend.head(ref.object_name)
            err = None if ref.object_len is None or size == ref.object_len else (
                f"object {ref.object_name} has the wrong length")
        except NotFound:
            err = f"object {ref.object_name} is missing"
        seen[ref.object_name] = err
        return err

    stack: list[tuple[list[bytes], Dir]] = [([], tree.root)]
    while stack:
        parts, d = stack.pop()
        dirs += 1
        try:
            kids = await tree.children(d)
        except VaultError as exc:
            problems.append(f"{show(parts)}: directory unreadable: {exc.message}")
            continue
        for name in sorted(kids, reverse=True):
            node = kids[name]
            p = parts + [name]
            if isinstance(node, Dir):
                stack.append((p, node))
            elif isinstance(node, File):
                files += 1
                for b in node.blobs:
                    if not isinstance(b, BlobRef):
                        continue  # still in the open pack: not committed yet
                    blobs += 1
                    err = await check_object(b)
                    if err is None and full:
                        try:
                            nbytes += len(await store.read(b))
                        except VaultError as exc:
                            err = exc.message
                    if err:
                        problems.append(f"{show(p)}: {err}")
    return VerifyReport(vault.generation, files, dirs - 1, blobs, nbytes, tuple(problems))
