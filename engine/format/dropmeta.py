"""The ``drops`` key of a commit's ``meta``: write-only clients' watermark and what a commit ingested
or refused (pure; docs/format.md "Write-only clients", models/drops.py)::

    "drops": {"mark":    {b64u(writer id): {"seq": n, "hash": b64u(SHA-256 of record n), "gen": g,
                                            "skip": b64u(SHA-256 of a refused record n+1)}},   # skip optional
                                            # seq 0: nothing ingested yet (hash all zero, gen 0)
              "in":      [{"w": b64u(writer id), "seq": n, "dest": b64u(path), "files": n, "bytes": n}, …],
              "refused": [{"w": b64u(writer id), "seq": n, "why": short text}, …]}

``mark`` is the ingest state and every commit carries it forward whole: record ``seq`` of each
writer was ingested by generation ``gen`` (the merge base of the writer's next drop). ``in`` and
``refused`` say what this commit did. Typed strictly; anything else is the generic IntegrityError.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .canonical import array, b64u, fail, integer, obj, string, unb64u

WRITER_ID_LEN = 16
HASH_LEN = 32
MAX_WRITERS = 64  # the keyring holds at most this many writers (tombstones included)
MAX_ENTRIES = 256
MAX_WHY = 200
MAX_DEST = 4096


@dataclass(frozen=True, slots=True)
class Mark:
    """The last record of one writer ingested: its seq, hash and the generation that ingested it."""

    seq: int
    hash: bytes
    gen: int
    skip: bytes | None = None  # a refused record at seq + 1, not reported again

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq, "hash": b64u(self.hash), "gen": self.gen}
        if self.skip is not None:
            out["skip"] = b64u(self.skip)
        return out


@dataclass(frozen=True, slots=True)
class Ingested:
    writer: bytes
    seq: int
    dest: bytes
    files: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"w": b64u(self.writer), "seq": self.seq, "dest": b64u(self.dest), "files": self.files,
                "bytes": self.bytes}


@dataclass(frozen=True, slots=True)
class Refused:
    writer: bytes
    seq: int
    why: str

    def to_json(self) -> dict[str, Any]:
        return {"w": b64u(self.writer), "seq": self.seq, "why": self.why[:MAX_WHY]}


@dataclass(frozen=True, slots=True)
class Drops:
    mark: Mapping[bytes, Mark]
    ingested: tuple[Ingested, ...] = ()
    refused: tuple[Refused, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mark": {b64u(w): m.to_json() for w, m in sorted(self.mark.items())}}
        if self.ingested:
            out["in"] = [i.to_json() for i in self.ingested]
        if self.refused:
            out["refused"] = [r.to_json() for r in self.refused]
        return out


def parse(value: object, gen: int) -> Drops:
    """The ``drops`` of commit ``gen`` (untrusted). IntegrityError on anything odd."""
    v = obj(value, {"mark"}, {"in", "refused"})
    raw_mark = v["mark"]
    if not isinstance(raw_mark, dict) or len(raw_mark) > MAX_WRITERS:
        fail("drops mark")
    mark: dict[bytes, Mark] = {}
    for w, m in raw_mark.items():
        e = obj(m, {"seq", "hash", "gen"}, {"skip"})
        g = integer(e["gen"])
        if g > gen:
            fail("drops mark gen")  # ingested by this commit or an older one
        skip = unb64u(e["skip"], HASH_LEN) if "skip" in e else None
        mark[unb64u(w, WRITER_ID_LEN)] = Mark(integer(e["seq"]), unb64u(e["hash"], HASH_LEN), g, skip)
    ingested = []
    for item in array(v.get("in", []), MAX_ENTRIES):
        e = obj(item, {"w", "seq", "dest", "files", "bytes"})
        dest = unb64u(e["dest"])
        if not dest.startswith(b"/") or len(dest) > MAX_DEST:
            fail("drops dest")
        ingested.append(Ingested(unb64u(e["w"], WRITER_ID_LEN), integer(e["seq"], 1), dest, integer(e["files"]),
                                 integer(e["bytes"])))
    refused = []
    for item in array(v.get("refused", []), MAX_ENTRIES):
        e = obj(item, {"w", "seq", "why"})
        refused.append(Refused(unb64u(e["w"], WRITER_ID_LEN), integer(e["seq"], 1), string(e["why"], MAX_WHY)))
    return Drops(mark, tuple(ingested), tuple(refused))


__all__ = ["Drops", "Ingested", "Mark", "Refused", "parse"]
