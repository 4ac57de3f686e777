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


@pytest.mark.parametrize("kind", ["s3", "azure"])
def test_prune_repacks_on_cloud(kind: str, request: pytest.FixtureRequest, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Twenty small files, fifteen removed and the generation holding them forgotten: ``prune`` repacks
    their data pack (the map lands in the bucket's or container's chain), deletes it, and a second
    device restores the kept generation byte for byte and verifies clean (SeaweedFS and Azurite)."""
    place = place_on(request.getfixturevalue(f"{kind}_server"), tmp_path, monkeypatch)
    home = tmp_path / "home"
    ok(place, home, "create", "--kdf", "minimum", "--chunk-size", "1")
    files = make_tree(tmp_path / "a", {f"f{i:02d}.bin": 4000 + i for i in range(20)})
    ok(place, home, "import", str(tmp_path / "a"), "--to", "/t")  # 1
    ok(place, home, "rm", *[f"/t/f{i:02d}.bin" for i in range(20) if i % 4])  # 2: five left, spread out
    ok(place, home, "forget", "--keep-last", "1")  # 3
    before = asyncio.run(header_epochs(place.url))
    dry = json.loads(ok(place, home, "--json", "prune", "--dry-run").splitlines()[-1])
    assert dry["packs"]["repacked"] == 1 and asyncio.run(header_epochs(place.url)) == before
    done = json.loads(ok(place, home, "--json", "prune").splitlines()[-1])
    assert done["packs"]["repacked"] == 1 and done["after"]["bytes"] < done["before"]["bytes"]
    left = asyncio.run(header_epochs(place.url))
    assert len(set(before) - set(left)) >= 2  # the data pack and the forgotten generation's pages
    other = tmp_path / "other-home"
    ok(place, other, "restore", "--at", "2", "/t", str(tmp_path / "g2"))
    assert read_tree(tmp_path / "g2") == {n: d for n, d in files.items() if int(n[1:3]) % 4 == 0}
    ok(place, other, "verify", "--full")
    assert "repacked: moved 5 blobs" in ok(place, other, "audit")
