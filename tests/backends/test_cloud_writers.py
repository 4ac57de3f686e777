"""Write-only clients through the real command on SeaweedFS (S3) and Azurite (Azure): a server
drops with only its writer credential, the owner's ``ingest`` takes the drop in, a record the
provider rewrote is refused (and recorded), and a removed writer's next drop is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cloud_vault import cli, ok, one_line_error, place_on

from sigmavault import WriterCredential
from sigmavault.backends.urls import open_backend


@pytest.mark.parametrize("kind", ["s3", "azure"])
async def test_drop_ingest_and_refusals_in_the_cloud(kind: str, request: pytest.FixtureRequest, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    server = request.getfixturevalue("s3_server" if kind == "s3" else "azure_server")
    place = place_on(server, tmp_path, monkeypatch)
    owner, web = tmp_path / "owner", tmp_path / "web"
    ok(place, owner, "create", "--kdf", "minimum")
    cred = tmp_path / "web-1.cred"
    ok(place, owner, "key", "add", "--writer", "--label", "web-1", "--to", "/web-1", "--out", str(cred))
    src = tmp_path / "www"
    (src / "img").mkdir(parents=True)
    (src / "index.html").write_text("<h1>one</h1>")
    (src / "img" / "big.bin").write_bytes(bytes(range(256)) * 20_000)
    done = json.loads(ok(place, web, "--json", "--writer-credential", str(cred), "import", str(src)).splitlines()[-1])
    assert done["drop"] == 1 and done["destination"] == "/web-1"
    denied = cli(place, web, "--writer-credential", str(cred), "ls", "/", SIGMAVAULT_PASSPHRASE="")
    assert denied.returncode == 3 and "write-only credential" in one_line_error(denied.stderr)
    took = json.loads(ok(place, owner, "--json", "ingest"))
    assert [d["drop"] for d in took["ingested"]] == [1]
    assert ok(place, owner, "cat", "/web-1/index.html") == "<h1>one</h1>"
    # the provider rewrites the next record: refused, recorded, the vault stays healthy
    (src / "index.html").write_text("<h1>two</h1>")
    ok(place, web, "--writer-credential", str(cred), "backup", str(src))
    writer_hex = WriterCredential.from_bytes(cred.read_bytes()).writer_id.hex()
    backend = open_backend(place.url)
    try:
        records = [n async for n in backend.list(f"d/{writer_hex}/") if len(n) == 51]  # not o/, g/, l/
        assert len(records) == 2
        name = max(records)
        data = bytearray(await backend.get(name))
        data[100] ^= 1
        await backend.delete(name)
        assert await backend.put_if_absent(name, bytes(data))
    finally:
        await backend.aclose()
    took = json.loads(ok(place, owner, "--json", "ingest"))
    assert took["ingested"] == [] and [r["drop"] for r in took["refused"]] == [2]
    assert ok(place, owner, "cat", "/web-1/index.html") == "<h1>one</h1>"
    assert "refused" in ok(place, owner, "audit")
    ok(place, owner, "verify", "--full")
    # prune collects the refused drop's objects (drop 1's are the vault's, its pages the next merge base)
    pruned = json.loads(ok(place, owner, "--json", "prune").splitlines()[-1])["write_only_clients"]
    assert pruned["deleted"] >= 1 and pruned["leases_cleared"] == 2, pruned
    assert ok(place, owner, "cat", "/web-1/index.html") == "<h1>one</h1>"
    ok(place, owner, "verify", "--full")
