"""The mixer and writer stages: seal objects in the mixer's pool, upload them create-only.

``mixing`` hands each :class:`ToSeal` — a full chunk or a closed data pack — to the :class:`Mixer`
(whose slots bound how many sealed objects exist at once) and passes settled pieces through.
``writer`` uploads each sealed object with ``put_if_absent`` ("found" is a dedup hit for a chunk,
its name being a content address), releases the mixer slot and passes a :class:`Stored` on: the
engine's collector records it (the dedup index, the pack's members) before the piece it carries.
Retries on transient errors belong to the backend wrapper (``RetryingBackend``), not here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..backends.base import Backend
from .mailbox import ReceiveChannel, SendChannel
from .messages import Placed, SealedObject, Stored, ToSeal
from .mixer import Mixer


def mixing(mixer: Mixer) -> Callable[[ReceiveChannel[ToSeal | Placed], SendChannel[SealedObject | Placed]],
                                     Awaitable[None]]:
    async def run(inbox: ReceiveChannel[ToSeal | Placed], outbox: SendChannel[SealedObject | Placed]) -> None:
        async for item in inbox:
            if isinstance(item, Placed):
                await outbox.send(item)
                continue
            sealed = await mixer.seal(item.kind, item.name, item.data, pad_floor=item.pad_floor)
            name, piece = item.name, item.piece
            del item  # its plaintext (a closed pack: 4 MiB) is not kept while this copy waits for the next
            try:
                await outbox.send(SealedObject(name, sealed, piece))
            except BaseException:
                sealed.release()
                raise

    return run


def writer(backend: Backend) -> Callable[[ReceiveChannel[SealedObject | Placed], SendChannel[Stored | Placed]],
                                         Awaitable[None]]:
    async def run(inbox: ReceiveChannel[SealedObject | Placed], outbox: SendChannel[Stored | Placed]) -> None:
        async for item in inbox:
            if isinstance(item, Placed):
                await outbox.send(item)
                continue
            with item.obj:
                size = len(item.obj)
                created = await backend.put_if_absent(item.name, item.obj.view)
            await outbox.send(Stored(item.name, size, created, item.piece))

    return run
