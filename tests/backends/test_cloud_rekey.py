"""``rekey`` and ``key remove --rekey`` through the real command on SeaweedFS (S3) and Azurite: the
keystores and the rekey record land with the create-only put like any commit; a second device reads
both epochs; the revoked passphrase no longer opens (exit 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cloud_vault import cli, ok, place_on

OTHER = "a passphrase to revoke"


@pytest.mark.parametrize("kind", ["s3", "azure"])
def test_rekey_and_revoke_on_cloud(kind: str, request: pytest.FixtureRequest, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    place = place_on(request.getfixturevalue(f"{kind}_server"), tmp_path, monkeypatch)
    home = tmp_path / "home"
    ok(place, home, "create", "--kdf", "minimum")
    (tmp_path / "old.bin").write_bytes(b"o" * 200_000)
    ok(place, home, "import", str(tmp_path / "old.bin"), "--to", "/old.bin")
    (tmp_path / "other").write_text(OTHER + "\n")
    slot = json.loads(ok(place, home, "--json", "key", "add", "--passphrase", "--kdf", "minimum", "--label", "bob",
                         "--new-passphrase-file", str(tmp_path / "other")))["slot"]["id"]
    done = json.loads(ok(place, home, "--json", "key", "remove", slot, "--rekey"))
    assert done["epoch"] == 2 and done["removed"]["label"] == "bob" and done["retired"] == {"1": 2}
    assert cli(place, home, "ls", SIGMAVAULT_PASSPHRASE=OTHER).returncode == 3
    (tmp_path / "new.bin").write_bytes(b"n" * 200_000)
    ok(place, home, "import", str(tmp_path / "new.bin"), "--to", "/new.bin")
    assert json.loads(ok(place, home, "--json", "rekey"))["retired"] == {"2": 4}
    other = tmp_path / "other-home"  # a second device: both epochs read, everything verifies
    assert ok(place, other, "ls").split() == ["new.bin", "old.bin"]
    ok(place, other, "verify", "--full")
    ok(place, other, "export", "/", str(tmp_path / "out"))
    assert (tmp_path / "out" / "old.bin").read_bytes() == b"o" * 200_000
