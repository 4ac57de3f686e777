"""The coordinate stage: chunk ids, dedup and placement of every piece — the one place that decides them.

For each piece: a blob the file keeps (a patch) stays where it is; a file of at most ``inline_max``
bytes stays inline (it will live in its catalog page); an empty final piece only marks the end of a
file; a full chunk gets its keyed id off the event loop (keyed BLAKE3 releases the GIL) and its
content-addressed name, and is either found — in the local index, or already on its way in this
pipeline — or sent on to be sealed; a shorter piece is appended to the open data pack unless the
index knows it, and a pack that the append closed is sent on to be sealed and stored like a chunk.
A small file read whole may arrive with its id, and its zstd frame, already computed (the chunker's
reading thread).

With compression on (``squeeze``), a new piece — a full chunk too — whose zstd frame is worth
keeping goes into the open data pack as that frame (its ref says so): compressed pieces are packed
like small files, so object sizes keep hiding content. The id is always over the plaintext, so the
same content dedups whether it was stored compressed or not.

The engine injects what it owns (the keyed id and name functions, the index lookup, the pack), so
this stage holds no keys of its own and never touches the catalog.
"""

from __future__ import annotations

import asyncio
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
    #: (stored bytes, id, plaintext length if those are a zstd frame) -> member, closed pack
    pack: Callable[[bytes, bytes, int | None], tuple[PendingRef, ToSeal | None]]
    #: plaintext -> the zstd frame to store instead, or None (as it is); None: compression off
    squeeze: Callable[[bytes], bytes | None] | None = None
    #: waits after a pack closed until few enough closed packs are still on their way (memory)
    pack_room: Callable[[], Awaitable[None]] | None = None


def coordinate(p: Placement, settled: SendChannel[Placed] | None = None
               ) -> Callable[[ReceiveChannel[Piece], SendChannel[ToSeal | Placed]], Awaitable[None]]:
    """The stage. With ``settled`` (the collector's inbox), a piece that needs nothing sealed — kept,
    inline, empty, found in the index, or a member of the open pack — goes straight there instead of
    through the mixer and writer stages (two hops per small file); a full chunk deduplicated
    against one still on its way keeps to that route, behind it. The caller closes ``settled``."""
    #: full chunks already seen in this pipeline: their place (a ref or a pack member) once decided
    in_flight: dict[bytes, asyncio.Future[BlobRef | PendingRef]] = {}

    async def packed(data: bytes, blob_id: bytes, outbox: SendChannel[ToSeal | Placed], piece: Piece | None = None
                     ) -> PendingRef | None:
        """Append ``data`` to the open data pack, compressed if that is worth it (None: a full chunk
        not worth compressing, for the caller to seal as its own object). A ``piece`` the chunker's
        thread already tried compressing brings its frame."""
        n = len(data)
        z = None
        if piece is not None and piece.squeezed:
            z = piece.frame
        elif p.squeeze is not None:
            z = p.squeeze(data) if n < 65536 else await asyncio.to_thread(p.squeeze, data)
        if z is None and n == p.chunk_size:
            return None
        member, closed = p.pack(data, blob_id, None) if z is None else p.pack(z, blob_id, n)
        if closed is not None:
            await outbox.send(closed)
            if p.pack_room is not None:
                await p.pack_room()
        return member

    async def decide(piece: Piece, data: bytes, blob_id: bytes, claim: asyncio.Future[BlobRef | PendingRef],
                     outbox: SendChannel[ToSeal | Placed],
                     done: SendChannel[Placed] | SendChannel[ToSeal | Placed]) -> None:
        """Place a new full chunk: found in the index, packed (compressed), or sealed as its own object."""
        n = len(data)
        # the index's ref: the vault's own is this same content address (or a packed member); a
        # write-only client's names the earlier drop that holds the chunk
        found = await p.known(blob_id)
        if found is not None:
            claim.set_result(found)
            await done.send(Placed(piece.token, piece.index, piece.final, n, found, deduped=True))
        elif (member := await packed(data, blob_id, outbox)) is not None:
            claim.set_result(member)
            await done.send(Placed(piece.token, piece.index, piece.final, n, member))
        else:
            ref = p.full_ref(blob_id)
            claim.set_result(ref)
            await outbox.send(ToSeal(KIND_CHUNK, ref.object_name, data,
                                     piece=Placed(piece.token, piece.index, piece.final, n, ref)))

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
                claim = in_flight.get(blob_id)
                if claim is not None:  # the same chunk earlier in this pipeline: its place, once decided,
                    # and the long route, behind that chunk (the file waits until it is stored)
                    await outbox.send(Placed(piece.token, piece.index, piece.final, n, await claim, deduped=True))
                    continue
                claim = in_flight[blob_id] = asyncio.get_running_loop().create_future()
                try:
                    await decide(piece, data, blob_id, claim, outbox, done)
                except BaseException:
                    if not claim.done():  # a waiter for the same chunk must not wait forever
                        claim.cancel()
                    raise
            else:
                if piece.blob_id is not None:  # hashed by the chunker's reading thread
                    blob_id = piece.blob_id
                else:
                    blob_id = p.chunk_id(data) if n < 65536 else await asyncio.to_thread(p.chunk_id, data)
                found = await p.known(blob_id)
                if found is not None:
                    await done.send(Placed(piece.token, piece.index, piece.final, n, found, deduped=True))
                    continue
                member = await packed(data, blob_id, outbox, piece)
                assert member is not None  # a short piece always goes into the pack
                await done.send(Placed(piece.token, piece.index, piece.final, n, member))

    return run
