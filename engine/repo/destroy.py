"""``sigmavault destroy``: crypto-shred a vault, resumably.

Every keystore replica (``k/``, on every place of a dispersed vault) is deleted first: without a
keystore no credential unwraps the key-sealing key, so the data is unreadable from that moment on,
whatever deletes remain. Then every other object, place by place: leases and records (``l/``),
data (``o/``, ``s/``), write-only clients' drops (``d/``), and the commit chain (``c/``) last. Each
step lists what is left and deletes it, so a run killed at any point is finished by running it
again; the vault is gone when a listing of every prefix is empty. Needs no key: a half-destroyed
vault cannot be opened any more.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ...backends.base import Backend
from ..errors import NotFound

ORDER = ("k/", "l/", "o/", "s/", "d/", "c/")  # keystores first (the shred), the chain last

#: progress: (prefix, deleted so far, listed for that prefix)
DestroyProgress = Callable[[str, int, int], None]


@dataclass
class DestroyReport:
    keystores: int = 0
    objects: int = 0  # everything else deleted

    @property
    def total(self) -> int:
        return self.keystores + self.objects


async def _delete_all(
    backend: Backend, prefix: str, names: list[str], workers: int, progress: DestroyProgress | None
) -> None:
    todo = iter(names)
    done = 0

    async def worker() -> None:
        nonlocal done
        for name in todo:
            with contextlib.suppress(NotFound):
                await backend.delete(name)
            done += 1
            if progress is not None:
                progress(prefix, done, len(names))

    async with asyncio.TaskGroup() as tg:
        for _ in range(workers):
            tg.create_task(worker())


async def destroy(places: Backend | Sequence[Backend], progress: DestroyProgress | None = None) -> DestroyReport:
    """Delete every object of the vault behind ``places`` (one backend, or a dispersed vault's
    places, each as a plain backend), every place's keystores first. Resumable."""
    backends = [places] if isinstance(places, Backend) else list(places)
    report = DestroyReport()
    for prefix in ORDER:
        for backend in backends:
            names = [n async for n in backend.list(prefix)]
            workers = 1 if prefix == "k/" else max(1, min(8, backend.properties.concurrency))
            await _delete_all(backend, prefix, names, workers, progress)
            if prefix != "k/":
                report.objects += len(names)
                continue
            report.keystores += len(names)
            left = [n async for n in backend.list("k/")]
            if left:  # a keystore written meanwhile (a key change): shred it too before any data goes
                raise NotFound(f"keystore {left[0]} appeared while destroying: run destroy again")
    return report
