"""Write tests/data/drops-kat.json, the drop-record vectors (docs/format.md, "Write-only clients: drop records").

    PYTHONPATH=$PWD .venv/bin/python tests/data/make_drops_kat.py

Everything deterministic is derived from the fixed inputs below and reproduces byte for byte. X-Wing
encapsulation and ML-DSA signing are randomised: each run stores new ``enc`` and signatures (so the
record bytes and their hashes change), and the test checks that those open and verify and that the
rest of every record is exactly what the fixed inputs and the stored ``enc`` give.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sigmavault.engine.format import drops
from sigmavault.engine.format.pages import BlobRef
from sigmavault.engine.keys import sign, xwing
from sigmavault.engine.keys.schedule import EPOCH_LABELS, KIND_PAGE_PACK, EpochKeys
from sigmavault.engine.keys.secret import Secret

OUT = Path(__file__).resolve().parent / "drops-kat.json"
VAULT_ID = bytes(range(32))
ROOT_KEY = b"\x42" * 32
EPOCH = 1
SIGNING = bytes(range(64, 128))
WRITER_ID = bytes.fromhex("11" * 16)
WRITER_KEY = b"\x77" * 32
CHUNK = b"hello, drop"
PACK_ID = b"\x33" * 32
# one record per seq: (drop key, body AEAD salt, body fields)
RECORDS = (
    (b"\x99" * 32, b"\x01" * 24, b"/web-1", 2, 12_345, 1_767_225_600, 1_767_225_660),
    (b"\x9a" * 32, b"\x02" * 24, b"/web-1", 3, 23_456, 1_767_312_000, 1_767_312_100),
)
SUBKEYS = ("data_enc", "page_enc", "commit_enc", "chunk_id", "page_id", "obj_name", "shard_mac", "cdc_key")


def _drop_keys(prf: str, drop_key: bytes) -> EpochKeys:
    return EpochKeys.for_drop(VAULT_ID, EPOCH, prf, WRITER_ID, Secret(WRITER_KEY), Secret(drop_key))  # type: ignore[arg-type]


def _prf_vectors(prf: str) -> dict[str, object]:
    keys = _drop_keys(prf, RECORDS[0][0])
    cid = keys.chunk_id_of(CHUNK)
    return {
        "chunk": CHUNK.hex(), "chunk_id": cid.hex(), "chunk_name": keys.chunk_name(cid),
        "pack_id": PACK_ID.hex(), "page_pack_name": keys.pack_name(KIND_PAGE_PACK, PACK_ID),
    }


def main() -> None:
    epoch = EpochKeys.derive(ROOT_KEY, VAULT_ID, EPOCH, "blake3-keyed-256")
    assert epoch.drop_kem is not None
    drop_pk = xwing.public_key(epoch.drop_kem)
    seeds = Secret(SIGNING)
    vk = sign.verify_key(seeds)
    prev = drops.ZERO_HASH
    records = []
    for seq, (dk, salt, dest, files, size, started, finished) in enumerate(RECORDS, 1):
        keys = _drop_keys("blake3-keyed-256", dk)
        root = tuple(BlobRef(EPOCH, KIND_PAGE_PACK, bytes([seq, i]) * 16, keys.pack_name(KIND_PAGE_PACK, PACK_ID),
                             i * 100, 100, None) for i in range(2))
        body = drops.DropBody(dest, root, files, size, started, finished)
        info = drops.drop_info(VAULT_ID, WRITER_ID, seq, EPOCH)
        enc = xwing.seal(drop_pk, info, dk)
        data = drops.seal_record(seeds, keys, WRITER_ID, seq, prev, enc, body, salt=salt)
        records.append({
            "name": drops.record_name(WRITER_ID, seq), "seq": seq, "prev": prev.hex(), "drop_key": dk.hex(),
            "salt": salt.hex(), "info": info.hex(),
            "context": drops.body_context(VAULT_ID, WRITER_ID, seq, EPOCH).hex(),
            "body": drops.encode_body(body).decode(), "record_key": keys.commit_enc.reveal().hex(),
            "record_len": len(data), "record": data.hex(), "record_hash": drops.record_hash(data).hex(),
        })
        prev = drops.record_hash(data)
    kat = {
        "comment": "Write-only clients (docs/format.md, Write-only clients: drop records): the epoch's drop key "
                   "pair, a writer's verify key, a drop's key set (drop key of record 1) and a chain of two records; "
                   "reproduced by tests/engine/test_drops_kat.py, written by tests/data/make_drops_kat.py. enc and "
                   "signatures are randomised: stored, checked to open and verify; all else reproduces byte for byte.",
        "vault_id": VAULT_ID.hex(), "root_key": ROOT_KEY.hex(), "epoch": EPOCH,
        "drop_kem": {"label": "vault/v1/drop-kem", "seed": epoch.drop_kem.reveal().hex(),
                     "public_key_sha256": hashlib.sha256(drop_pk).hexdigest()},
        "signing": {"seeds": SIGNING.hex(), "verify_key_sha256": hashlib.sha256(vk).hexdigest()},
        "writer": {"id": WRITER_ID.hex(), "key": WRITER_KEY.hex(), "prefix": f"d/{WRITER_ID.hex()}/o/"},
        "drop_subkeys": {name: getattr(_drop_keys("hmac-sha256", RECORDS[0][0]), name).reveal().hex()
                         for name in SUBKEYS},
        "prf": {prf: _prf_vectors(prf) for prf in ("blake3-keyed-256", "hmac-sha256")},
        "records": records,
    }
    assert set(EPOCH_LABELS) == {s.replace("_", "-") for s in SUBKEYS}
    OUT.write_text(json.dumps(kat, indent=1) + "\n")


if __name__ == "__main__":
    main()
