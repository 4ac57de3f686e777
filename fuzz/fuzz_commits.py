"""Commit bodies and the hash chain (engine/format/commits.py).

Input: one mode byte, then the body.

* 0: the body as commit body bytes, decoded strictly; a decoded commit must re-encode exactly.
* 1: the body sealed as ``c/{g}`` under the fixed test keys (g from the first byte), then opened
  and checked as the reader does: the fuzzer gets past the AEAD into the body parser and the
  generation/vault/epoch binding.
* 2: a chain of up to 6 commits, each chosen by one flag byte: an honest link, a link with the
  wrong parent, a withheld commit, or a hostile sealed body; walked by ``verify_chain`` and
  ``find_head`` from nothing and from a fuzzed high-water mark. Only RollbackError/IntegrityError
  (VaultErrors) may come out, and an all-honest chain must verify.
"""

from __future__ import annotations

import contextlib
import time

from sigmavault.engine.errors import VaultError
from sigmavault.engine.format import commits
from sigmavault.engine.format.pages import BlobRef

from .common import KEYS, SEALER, VAULT_ID, allowed, run

OPEN = commits.opener({SEALER.keys.epoch: SEALER})
PAGE = BlobRef(KEYS.epoch, 2, bytes(32), "o/" + "cd" * 32, 0, 10, None)


def _decode(raw: bytes) -> None:
    c = allowed(commits.decode_commit, raw)
    if c is not None:
        assert commits.encode_commit(c) == raw, "a decoded commit must be canonical"
        time.gmtime(c.time)  # `log` and `history` show every commit's time


def _body(gen: int, parent: bytes | None) -> bytes:
    c = commits.Commit(VAULT_ID, gen, parent, KEYS.epoch, 1, (PAGE,), bytes(16), 1_700_000_000 + gen)
    return commits.encode_commit(c)


async def _chain(flags: bytes, rest: bytes) -> None:
    objects: dict[int, bytes] = {}
    parent: bytes | None = None
    honest = True
    for gen, flag in enumerate(flags[:6]):
        choice = flag % 4
        if gen and parent is None:  # the link before was withheld
            parent = bytes(32)
        if choice == 0 or (gen == 0 and choice == 1):
            body = _body(gen, parent)
        elif choice == 1:
            body, honest = _body(gen, bytes(32)), False
        elif choice == 2:
            honest = False
            continue  # withheld
        else:
            body, honest = rest, False
        obj = commits.seal_body(SEALER, gen, body)
        objects[gen] = obj
        parent = commits.object_hash(obj)

    async def fetch(gen: int) -> bytes | None:
        return objects.get(gen)

    head = len(flags[:6]) - 1
    try:
        got = await commits.verify_chain(None, head, fetch, OPEN)
        assert got.gen == head
    except VaultError:
        assert not honest or head < 0, "an honest chain must verify"
    state = commits.ChainState(flags[-1] % 8 if flags else 0, commits.object_hash(objects.get(0, b"")))
    for start in (None, state):
        with contextlib.suppress(VaultError):
            await commits.find_head(start, fetch, OPEN, limit=8)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0] % 3, data[1:]
    if mode == 0:
        _decode(body)
    elif mode == 1:
        gen = body[0] % 4 if body else 0
        obj = commits.seal_body(SEALER, gen, body[1:])
        c = allowed(commits.open_commit, SEALER, gen, obj)
        assert c is None or c.gen == gen
        allowed(OPEN, gen, obj)
        allowed(OPEN, gen + 1, obj)  # under another name: must not open
    else:
        n = body[0] % 7 if body else 0
        run(_chain(body[1 : 1 + n], body[1 + n :]))
