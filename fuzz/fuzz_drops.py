"""Drop records of write-only clients (engine/format/drops.py): names, records, bodies.

The keys are those of the known-answer vectors (tests/data/drops-kat.json): the epoch's drop seed,
the writer's verify key and writer key, so a genuine record from there verifies and opens.

Input: one mode byte, then the body.

* 0: one selector byte (which record name: seq 1 or 2), then the body as record bytes: parsed,
  verified, its drop key opened with the epoch's drop seed and its body opened, as an owner does.
* 1: the body as body plaintext, framed, sealed under the drop's record key with the record's real
  header and ``enc`` (the fuzzer gets past the AEAD, as a hostile writer could), then parsed and
  opened; also decoded directly. Whatever decodes must re-encode byte for byte.
* 2: the body as a record name (UTF-8, errors replaced).
"""

from __future__ import annotations

import json
from pathlib import Path

from sigmavault.engine.format import aead as chunked
from sigmavault.engine.format import drops
from sigmavault.engine.format.framing import frame
from sigmavault.engine.keys import sign
from sigmavault.engine.keys.schedule import EpochKeys
from sigmavault.engine.keys.secret import Secret

from .common import allowed

KAT = json.loads((Path(__file__).resolve().parents[1] / "tests" / "data" / "drops-kat.json").read_text())
VAULT_ID = bytes.fromhex(KAT["vault_id"])
EPOCH: int = KAT["epoch"]
WRITER_ID = bytes.fromhex(KAT["writer"]["id"])
WRITER_KEY = Secret(bytes.fromhex(KAT["writer"]["key"]), "fuzz writer key")
DROP_SEED = Secret(bytes.fromhex(KAT["drop_kem"]["seed"]), "fuzz drop seed")
VERIFY_KEY = sign.verify_key(Secret(bytes.fromhex(KAT["signing"]["seeds"])))
RECORDS: list[dict[str, object]] = KAT["records"]
FIRST = bytes.fromhex(str(RECORDS[0]["record"]))
NAMES = [str(r["name"]) for r in RECORDS]
KEYS = EpochKeys.for_drop(VAULT_ID, EPOCH, "blake3-keyed-256", WRITER_ID, WRITER_KEY,
                          Secret(bytes.fromhex(str(RECORDS[0]["drop_key"]))))


def _owner(data: bytes, name: str) -> None:
    rec = allowed(drops.parse_record, data, name)
    if rec is None:
        return
    assert rec.signed + rec.signature == data and rec.hash == drops.record_hash(data)
    allowed(drops.verify_record, rec, VERIFY_KEY)
    dk = allowed(drops.open_drop_key, rec, DROP_SEED)
    if dk is not None:
        keys = EpochKeys.for_drop(rec.vault_id, rec.epoch, "blake3-keyed-256", rec.writer_id, WRITER_KEY, dk)
        allowed(drops.open_body, rec, keys)


def _sealed(plain: bytes) -> bytes:
    """Record 1 with its body replaced by ``plain`` (framed and padded when it fits), signature unchanged."""
    msg = frame(plain, drops.MAX_BODY, drops.PAD_FLOOR) if len(plain) <= drops.MAX_BODY else plain
    ct = chunked.seal(KEYS.commit_enc.reveal(), drops.body_context(VAULT_ID, WRITER_ID, 1, EPOCH), msg)
    return FIRST[:1265] + len(ct).to_bytes(4, "big") + ct + FIRST[-sign.SIG_LEN:]


def test_one_input(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0] % 3, data[1:]
    if mode == 0:
        _owner(body[1:], NAMES[body[0] % 2] if body else NAMES[0])
    elif mode == 1:
        got = allowed(drops.decode_body, body, WRITER_ID, EPOCH)
        assert got is None or drops.encode_body(got) == body, "a decoded body must be canonical"
        rec = allowed(drops.parse_record, _sealed(body), NAMES[0])
        if rec is not None:
            opened = allowed(drops.open_body, rec, KEYS)
            assert opened is None or drops.encode_body(opened) == body
    else:
        name = body.decode("utf-8", "replace")
        parsed = allowed(drops.parse_record_name, name)
        assert parsed is None or drops.record_name(*parsed) == name
