"""The mixer and writer stages: seal full chunks in the mixer's pool, upload them create-only.

``mixing`` hands each :class:`ToSeal` to the :class:`Mixer` (whose slots bound how many sealed
objects exist at once) and passes settled pieces through. ``writer`` uploads each sealed object with
``put_if_absent`` — "found" is a dedup hit, the name being a content address — releases the mixer
slot, reports the stored blob to the engine (``stored``) and passes a :class:`Placed` on. Retries
on transient errors belong to the backend wrapper (``RetryingBackend``), not here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..backends.base import Backend
from ..engine.keys.schedule import KIND_CHUNK
from .mailbox import ReceiveChannel, SendChannel
from .messages import Placed, SealedChunk, ToSeal
from .mixer import Mixer


def mixing(mixer: Mixer) -> Callable[[ReceiveChannel[ToSeal | Placed], SendChannel[SealedChunk | Placed]],
                                     Awaitable[None]]:
    async def run(inbox: ReceiveChannel[ToSeal | Placed], outbox: SendChannel[SealedChunk | Placed]) -> None:
        async for item in inbox:
            if isinstance(item, Placed):
                await outbox.send(item)
                continue
            sealed = await mixer.seal(KIND_CHUNK, item.name, item.data)
            try:
                await outbox.send(SealedChunk(item.token, item.index, item.final, item.ref, item.name, sealed))
            except BaseException:
                sealed.release()
                raise

    return run


def writer(backend: Backend, stored: Callable[[Any, int], None]
           ) -> Callable[[ReceiveChannel[SealedChunk | Placed], SendChannel[Placed]], Awaitable[None]]:
    async def run(inbox: ReceiveChannel[SealedChunk | Placed], outbox: SendChannel[Placed]) -> None:
        async for item in inbox:
            if isinstance(item, Placed):
                await outbox.send(item)
                continue
            with item.obj:
                size = len(item.obj)
                created = await backend.put_if_absent(item.name, item.obj.view)
            stored(item.ref, size)
            await outbox.send(Placed(item.token, item.index, item.final, item.ref.length, item.ref,
                                     uploaded=size if created else 0, deduped=not created))

    return run
