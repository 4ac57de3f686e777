"""``key remove SLOT --rekey --rewrite`` then ``prune`` through the real command on SeaweedFS (S3) and
Azurite: every generation restores as it was from a second device, the revoked passphrase no
longer opens (exit 3), and every ``o/`` object left in the bucket is sealed under the new epoch
(its header says so) while every object of the old epoch is deleted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from test_cloud_vault import cli, make_tree, ok, place_on, read_tree

from sigmavault.backends.urls import open_backend

OTHER = "a passphrase to revoke"


async def header_epochs(url: str) -> dict[str, int]:
    """Every ``o/`` object's header epoch (``01 01 ‖ u32 epoch``), by name."""
    backend = open_backend(url)
    try:
        names = [name async for name in backend.list("o/")]
        return {n: int.from_bytes((await backend.get(n))[2:6], "big") for n in names}
    finally:
        await backend.aclose()


@pytest.mark.parametrize("kind", ["s3", "azure"])
def test_rewrite_and_prune_leave_no_old_epoch_on_cloud(kind: str, request: pytest.FixtureRequest, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    place = place_on(request.getfixturevalue(f"{kind}_server"), tmp_path, monkeypatch)
    home = tmp_path / "home"
    ok(place, home, "create", "--kdf", "minimum", "--chunk-size", "1")
    first = make_tree(tmp_path / "a", {"big.bin": 1_200_000, "d/small.bin": 3000})
    ok(place, home, "import", str(tmp_path / "a"), "--to", "/t")  # 1
    second = make_tree(tmp_path / "b", {"more.bin": 50_000})
    ok(place, home, "import", str(tmp_path / "b" / "more.bin"), "--to", "/t/more.bin")  # 2
    ok(place, home, "rm", "/t/big.bin")  # 3
    old = asyncio.run(header_epochs(place.url))
    assert set(old.values()) == {1}
    (tmp_path / "other").write_text(OTHER + "\n")
    slot = json.loads(ok(place, home, "--json", "key", "add", "--passphrase", "--kdf", "minimum", "--label", "bob",
                         "--new-passphrase-file", str(tmp_path / "other")))["slot"]["id"]  # 4
    done = json.loads(ok(place, home, "--json", "key", "remove", slot, "--rekey", "--rewrite"))
    assert done["epoch"] == 2 and done["rewrite"]["record"] == 6 and done["rewrite"]["blobs"] >= 3
    assert cli(place, home, "ls", SIGMAVAULT_PASSPHRASE=OTHER).returncode == 3
    ok(place, home, "prune")
    left = asyncio.run(header_epochs(place.url))
    assert set(left.values()) == {2} and not set(old) & set(left)
    other = tmp_path / "other-home"  # a second device reads every generation under the new keys alone
    ok(place, other, "restore", "--at", "1", "/t", str(tmp_path / "g1"))
    assert read_tree(tmp_path / "g1") == first
    ok(place, other, "restore", "--at", "2", "/t", str(tmp_path / "g2"))
    assert read_tree(tmp_path / "g2") == {**first, "more.bin": second["more.bin"]}
    ok(place, other, "verify", "--full")
