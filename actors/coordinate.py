"""The coordinate stage: chunk ids, dedup and placement of every piece — the one place that decides them.

For each piece: a blob the file keeps (a patch) stays where it is; a file of at most ``inline_max``
bytes stays inline (it will live in its catalog page); an empty final piece only marks the end of a
file; a full chunk gets its keyed id off the event loop (keyed BLAKE3 releases the GIL) and its
content-addressed name, and is either found — in the local index, or already on its way in this
pipeline — or sent on to be sealed; a shorter piece is appended to the open data pack unless the
index knows it, and a pack that the append closed is sent on to be sealed and stored like a chunk.
A small file read whole may arrive with its id already computed (the chunker's reading thread).

The engine injects what it owns (the keyed id and name functions, the index lookup, the pack), so
this stage holds no keys of its own and never touches the catalog.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..engine.format.pages import BlobRef
from ..engine.format.refs import PendingRef
from ..engine.keys.schedule import KIND_CHUNK
from .mailbox import ReceiveChannel, SendChannel
from .messages import Piece, Placed, ToSeal


@dataclass(frozen=True, slots=True)
class Placement:
    """What the engine lends this stage."""

    chunk_size: int
    inline_max: int
    chunk_id: Callable[[bytes], bytes]  # keyed PRF of the plaintext
    full_ref: Callable[[bytes], BlobRef]  # id -> the blob ref of its full-chunk object once stored
    known: Callable[[bytes], Awaitable[BlobRef | None]]  # id -> blob ref if the vault already holds it
    pack: Callable[[bytes, bytes], tuple[PendingRef, ToSeal | None]]  # (blob, id) -> member, closed pack
    #: waits after a pack closed until few enough closed packs are still on their way (memory)
    pack_room: Callable[[], Awaitable[None]] | None = None


def coordinate(p: Placement, settled: SendChannel[Placed] | None = None
               ) -> Callable[[ReceiveChannel[Piece], SendChannel[ToSeal | Placed]], Awaitable[None]]:
    """The stage. With ``settled`` (the collector's inbox), a piece that needs nothing sealed — kept,
    inline, empty, found in the index, or a member of the open pack — goes straight there instead of
    through the mixer and writer stages (two hops per small file); a full chunk deduplicated
    against one still on its way keeps to that route, behind it. The caller closes ``settled``."""
    in_flight: set[bytes] = set()  # full chunks already sent on in this pipeline

    async def run(inbox: ReceiveChannel[Piece], outbox: SendChannel[ToSeal | Placed]) -> None:
        done: SendChannel[Placed] | SendChannel[ToSeal | Placed] = outbox if settled is None else settled
        async for piece in inbox:
            data, n = piece.data, len(piece.data)
            if piece.kept is not None:
                await done.send(Placed(piece.token, piece.index, piece.final, piece.kept.length, piece.kept))
            elif piece.index == 0 and piece.final and n <= p.inline_max:
                await done.send(Placed(piece.token, 0, True, n, inline=data))
            elif n == 0:
                await done.send(Placed(piece.token, piece.index, piece.final, 0))
            elif n == p.chunk_size:
                blob_id = await asyncio.to_thread(p.chunk_id, data)
                found = None if blob_id in in_flight else await p.known(blob_id)
                # the index's ref: the vault's own is this same content address; a write-only
                # client's names the earlier drop that holds the chunk (its names are keyed per drop)
                ref = found or p.full_ref(blob_id)
                placed = Placed(piece.token, piece.index, piece.final, n, ref)
                if blob_id in in_flight:  # behind its chunk: the file waits until that is stored
                    await outbox.send(dataclasses.replace(placed, deduped=True))
                elif found is not None:
                    await done.send(dataclasses.replace(placed, deduped=True))
                else:
                    in_flight.add(blob_id)
                    await outbox.send(ToSeal(KIND_CHUNK, ref.object_name, data, piece=placed))
            else:
                if piece.blob_id is not None:  # hashed by the chunker's reading thread
                    blob_id = piece.blob_id
                else:
                    blob_id = p.chunk_id(data) if n < 65536 else await asyncio.to_thread(p.chunk_id, data)
                found = await p.known(blob_id)
                if found is not None:
                    await done.send(Placed(piece.token, piece.index, piece.final, n, found, deduped=True))
                    continue
                member, closed = p.pack(data, blob_id)
                if closed is not None:
                    await outbox.send(closed)
                    if p.pack_room is not None:
                        await p.pack_room()
                await done.send(Placed(piece.token, piece.index, piece.final, n, member))

    return run
