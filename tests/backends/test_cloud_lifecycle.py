"""forget and audit through the real command on SeaweedFS (S3): the forget record lands with the
create-only put like any commit, and a forgotten generation is not found (exit 4)."""

from __future__ import annotations

from pathlib import Path

import pytest
from servers import SeaweedServer
from test_cloud_vault import cli, ok, one_line_error, place_on


def test_forget_and_audit_on_s3(s3_server: SeaweedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    place = place_on(s3_server, tmp_path, monkeypatch)
    home = tmp_path / "home"
    ok(place, home, "create", "--kdf", "minimum")
    for i in range(3):
        f = tmp_path / f"f{i}"
        f.write_text(f"version {i}")
        ok(place, home, "import", str(f), "--to", f"/f{i}")
    assert '"forgotten":[0,1,2]' in ok(place, home, "--json", "forget", "--keep-last", "1", "--dry-run")
    assert '"records":[4]' in ok(place, home, "--json", "forget", "--keep-last", "1")
    done = cli(place, home, "restore", "--at", "2", "/f1", str(tmp_path / "out"))
    assert done.returncode == 4 and "forgotten" in one_line_error(done.stderr)
    assert ok(place, home, "log").splitlines()[0].split()[0] == "4"
    assert "forgot 0-2 (rules last=1)" in ok(place, home, "audit")
    # a second device reads the same decision from the chain
    other = tmp_path / "other"
    assert [line.split()[0] for line in ok(place, other, "log").splitlines()] == ["4", "3"]
