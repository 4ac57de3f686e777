"""``rekey --rewrite`` then ``prune`` on a vault dispersed 2 of 3 over local folders, through the real command.

Every generation restores byte for byte afterwards, also with one place gone; no object of the old epoch is
left on any place: each place's shards from before are all deleted, and every object left is sealed under
the new epoch (its header, read from the place that holds each object's first data block, says so).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from clitools import Cli, Run
from test_cli_rewrite import GENS, restore_all, same_trees, six_generations

from sigmavault.engine.format.shards import HDR


class Places(Cli):
    """``cli(...)`` runs ``sigmavault --vault P1 --vault P2 … ARGS`` over ``places`` (any order)."""

    def __init__(self, home: Path, places: list[Path]) -> None:
        super().__init__(home, None)
        self.places = places

    def __call__(self, *args: str, **kw: Any) -> Run:
        return super().__call__(*[a for p in self.places for a in ("--vault", str(p))], *args, **kw)


def shards(place: Path) -> dict[str, bytes]:
    """Every shard a place holds under ``o/``: its name -> its first bytes (shard header, then block)."""
    out = {}
    for p in (place / "o").rglob("*"):
        if p.is_file() and not p.name.startswith("."):
            with p.open("rb") as f:
                out[str(p.relative_to(place))] = f.read(HDR + 6)
    return out


def object_epochs(places: list[Path]) -> list[int]:
    """The header epoch of every object, from its shard 0 (the first data block begins with the object's
    ``01 01 ‖ u32 epoch`` header); the one place that holds shard 0 of every object is found by the
    index byte of the shard header."""
    firsts = [[head for head in shards(p).values() if head[3] == 0] for p in places]
    held = [f for f in firsts if f]
    assert len(held) == 1, "shard 0 of the objects is on more than one place"
    assert all(head[HDR:HDR + 2] == b"\x01\x01" for head in held[0])
    return [int.from_bytes(head[HDR + 2:HDR + 6], "big") for head in held[0]]


def test_rewrite_and_prune_on_a_dispersed_vault(tmp_path: Path) -> None:
    places = [tmp_path / f"place{i}" for i in range(3)]
    cli = Places(tmp_path / "home", places)
    cli.ok("create", "--kdf", "minimum", "--chunk-size", "1", "--needed", "2")
    six_generations(cli, tmp_path)
    restore_all(cli, tmp_path / "before", GENS)
    old = [shards(p) for p in places]
    assert all(old) and len({len(o) for o in old}) == 1  # one shard of every object on every place
    assert set(object_epochs(places)) == {1}

    done = cli.ok("--json", "rekey", "--rewrite").json()
    assert done["epoch"] == 2 and done["rewrite"]["epoch"] == 2 and done["rewrite"]["blobs"] >= 6

    assert cli.ok("--json", "prune").events()[-1]["deleted"] > 0
    left = [shards(p) for p in places]
    for i, (before, after) in enumerate(zip(old, left, strict=True)):
        assert not set(before) & set(after), f"place {i} keeps a shard of an object of the old epoch"
    assert len({len(a) for a in left}) == 1  # no place keeps a shard the others lost
    assert set(object_epochs(places)) == {2}, "an object sealed under the old epoch is left"
    restore_all(cli, tmp_path / "pruned", GENS)
    for g in GENS:
        same_trees(tmp_path / "before" / str(g), tmp_path / "pruned" / str(g))
    cli.ok("verify", "--full")

    holder = next(p for p in places if any(head[3] == 0 for head in shards(p).values()))
    shutil.rmtree(holder)  # the place of the first data blocks: every read decodes from parity now
    two = Places(cli.home, [p for p in places if p != holder])
    restore_all(two, tmp_path / "degraded", GENS)
    for g in GENS:
        same_trees(tmp_path / "before" / str(g), tmp_path / "degraded" / str(g))
