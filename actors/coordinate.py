"""The coordinate stage: chunk ids, dedup and placement of every piece.

For each piece: a file of at most ``inline_max`` bytes stays inline (it will live in its catalog
page); an empty final piece only marks the end of a file; a full chunk gets its keyed id off the
event loop (keyed BLAKE3 releases the GIL) and its content-addressed name, and is either found —
in the local index, or already on its way in this pipeline — or sent on to be sealed; a shorter
piece goes into the open data pack unless the index knows it.

The engine injects what it owns (the keyed id and name functions, the index lookup, the pack), so
this stage holds no keys of its own and never touches the catalog.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .mailbox import ReceiveChannel, SendChannel
from .messages import Piece, Placed, ToSeal


@dataclass(frozen=True, slots=True)
class Placement:
    """What the engine lends this stage."""

    chunk_size: int
    inline_max: int
    chunk_id: Callable[[bytes], bytes]  # keyed PRF of the plaintext
    full_ref: Callable[[bytes], tuple[Any, str]]  # id -> (blob ref once stored, object name)
    known: Callable[[bytes], Awaitable[Any | None]]  # id -> blob ref if the vault already holds it
    pack: Callable[[bytes, bytes], Awaitable[Any]]  # (blob, id) -> pending ref in the open data pack


def coordinate(p: Placement) -> Callable[[ReceiveChannel[Piece], SendChannel[ToSeal | Placed]], Awaitable[None]]:
    in_flight: set[bytes] = set()  # full chunks already sent on in this pipeline

    async def run(inbox: ReceiveChannel[Piece], outbox: SendChannel[ToSeal | Placed]) -> None:
        async for piece in inbox:
            data, n = piece.data, len(piece.data)
            if piece.index == 0 and piece.final and n <= p.inline_max:
                await outbox.send(Placed(piece.token, 0, True, n, inline=data))
            elif n == 0:
                await outbox.send(Placed(piece.token, piece.index, piece.final, 0))
            elif n == p.chunk_size:
                blob_id = await asyncio.to_thread(p.chunk_id, data)
                ref, name = p.full_ref(blob_id)
                if blob_id in in_flight or await p.known(blob_id) is not None:
                    await outbox.send(Placed(piece.token, piece.index, piece.final, n, ref, deduped=True))
                else:
                    in_flight.add(blob_id)
                    await outbox.send(ToSeal(piece.token, piece.index, piece.final, ref, name, data))
            else:
                blob_id = p.chunk_id(data) if n < 65536 else await asyncio.to_thread(p.chunk_id, data)
                found = await p.known(blob_id)
                blob = found if found is not None else await p.pack(data, blob_id)
                await outbox.send(Placed(piece.token, piece.index, piece.final, n, blob, deduped=found is not None))

    return run
