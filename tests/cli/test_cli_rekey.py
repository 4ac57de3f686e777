"""``sigmavault rekey`` and ``key remove SLOT --rekey`` through the real command, on a local vault.

What they must do (docs/format.md, "Rekey beside writers"): new writes are sealed under the new
epoch (the object header carries it), the old epoch is retired right before the first commit of
the new one, a revoked passphrase no longer opens (exit 3), a provider serving the old keystore
again is a rollback (exit 7), a commit that goes back to the old epoch is refused (exit 6), and a
rekey killed after R1 or R3 is finished by the next client.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from clitools import PASS, Cli, env_for

from sigmavault.engine.format.commits import Commit, commit_name, object_hash, open_commit, seal_commit
from sigmavault.engine.format.envelope import Sealer
from sigmavault.engine.keys import keystore
from sigmavault.engine.keys.credentials import Passphrase
from sigmavault.engine.keys.keystore import Unlocked

OTHER = "someone else's passphrase"


@pytest.fixture()
def vault(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "home", tmp_path / "v")
    cli.ok("create", "--kdf", "minimum")
    (tmp_path / "old.bin").write_bytes(os.urandom(300_000))
    cli.ok("import", str(tmp_path / "old.bin"), "--to", "/old.bin")
    return cli


def root(cli: Cli) -> Path:
    return Path(str(cli.vault))


def keyring(cli: Cli, phrase: str = PASS) -> Unlocked:
    """The newest keystore, opened with ``phrase`` (for looking at its epochs)."""
    name = sorted(os.listdir(root(cli) / "k"))[-1]
    return keystore.unlock((root(cli) / "k" / name).read_bytes(), f"k/{name}", Passphrase.of(phrase))


def epochs(cli: Cli) -> dict[int, tuple[str, int | None]]:
    return {e.epoch: (e.state, e.retired_at_gen) for e in keyring(cli).keyring.epochs}


def header_epochs(cli: Cli) -> dict[str, int]:
    """Every ``o/`` object's header epoch (``01 01 ‖ u32 epoch``), by name."""
    out = {}
    for p in (root(cli) / "o").rglob("*"):
        if p.is_file() and not p.name.startswith("."):
            head = p.read_bytes()[:6]
            assert head[:2] == b"\x01\x01"
            out[p.name] = int.from_bytes(head[2:6], "big")
    return out


def commit_epoch(cli: Cli, gen: int) -> int:
    return int.from_bytes((root(cli) / commit_name(gen)).read_bytes()[2:6], "big")


def test_rekey_seals_new_writes_under_the_new_epoch(vault: Cli, tmp_path: Path) -> None:
    before = header_epochs(vault)
    assert set(before.values()) == {1}
    done = vault.ok("--json", "rekey").json()
    assert done["epoch"] == 2 and done["record"] == 2 and done["retired"] == {"1": 1} and not done["resumed"]
    assert done["exposed_through"] == 1 and done["removed"] is None and done["dropped"] == []
    assert commit_epoch(vault, 2) == 2
    assert epochs(vault) == {1: ("retired", 1), 2: ("active", None)}
    (tmp_path / "new.bin").write_bytes(os.urandom(300_000))
    vault.ok("import", str(tmp_path / "new.bin"), "--to", "/new.bin")
    after = header_epochs(vault)
    new = {e for n, e in after.items() if n not in before}
    assert new == {2}  # every object the import wrote is sealed under epoch 2
    assert commit_epoch(vault, 3) == 2
    vault.ok("verify", "--full")
    vault.ok("export", "/", str(tmp_path / "out"))
    assert (tmp_path / "out" / "old.bin").read_bytes() == (tmp_path / "old.bin").read_bytes()
    assert (tmp_path / "out" / "new.bin").read_bytes() == (tmp_path / "new.bin").read_bytes()
    # a second device opens the rekeyed vault with the same passphrase and reads both epochs
    other = Cli(tmp_path / "home2", vault.vault)
    assert other.ok("ls").out.split() == ["new.bin", "old.bin"]
    assert vault.ok("rekey").out.startswith("key epoch 3 is current")


def test_key_remove_rekey_revokes_a_passphrase(vault: Cli, tmp_path: Path) -> None:
    (tmp_path / "other").write_text(OTHER + "\n")
    slot = vault.ok("--json", "key", "add", "--passphrase", "--kdf", "minimum", "--label", "bob",
                    "--new-passphrase-file", str(tmp_path / "other")).json()["slot"]["id"]
    assert vault.ok("ls", passphrase=OTHER).out == "old.bin\n"
    done = vault.ok("key", "remove", slot[:8], "--rekey")
    assert f"slot {slot} (argon2id) bob revoked" in done.out
    assert "may still hold: whatever they copied of generations up to 2" in done.out  # 2: bob's key change record
    assert vault("ls", passphrase=OTHER).code == 3
    assert Cli(tmp_path / "home2", vault.vault)("ls", passphrase=OTHER).code == 3  # a device without the pin too
    assert vault.ok("ls").out == "old.bin\n"
    kinds = [(s["type"], s["label"]) for s in vault.ok("--json", "key", "list").json()["slots"]]
    assert kinds == [("argon2id", "passphrase"), ("xwing", "recovery code")]
    events = vault.ok("--json", "audit").json()["events"]
    assert [(e["generation"], e["epoch"]) for e in events if e["event"] == "rekey"] == [(3, 2)]
    assert [k["op"] for e in events if e["event"] == "keys" and e["generation"] == 3 for k in e["keys"]] == ["remove"]
    assert "key epoch 2 starts" in vault.ok("audit").out


def test_rekey_will_not_drop_passphrase_slots_unasked(vault: Cli, tmp_path: Path) -> None:
    (tmp_path / "other").write_text(OTHER + "\n")
    vault.ok("key", "add", "--passphrase", "--kdf", "minimum", "--label", "alice",
             "--new-passphrase-file", str(tmp_path / "other"))
    stores = sorted(os.listdir(root(vault) / "k"))
    refused = vault("rekey")
    assert refused.code == 2 and "alice" in refused.one_line_error() and "--drop-passphrase-slots" in refused.err
    assert sorted(os.listdir(root(vault) / "k")) == stores  # nothing was changed
    done = vault.ok("--json", "rekey", "--drop-passphrase-slots").json()
    assert [s["label"] for s in done["dropped"]] == ["alice"]
    assert vault("ls", passphrase=OTHER).code == 3
    # the recovery code still opens: its slot was re-wrapped from its public key
    assert len(keyring(vault).slots) == 2


def test_an_old_keystore_served_again_is_a_rollback(vault: Cli, tmp_path: Path) -> None:
    old = {p.name: p.read_bytes() for p in (root(vault) / "k").iterdir()}
    vault.ok("rekey")
    for p in (root(vault) / "k").iterdir():
        p.unlink()
    for name, data in old.items():
        (root(vault) / "k" / name).write_bytes(data)
    rolled = vault("ls")
    assert rolled.code == 7, rolled.err


def hostile_commit(cli: Cli, epoch: int, gen: int) -> None:
    """What a party holding only ``epoch``'s keys (the old passphrase's KSK) can write: ``c/{gen}``
    under ``epoch`` on top of the real head, naming the newest keystore."""
    u = keyring(cli)
    keys = u.epoch_keys(epoch)
    sealer = Sealer(keys, u.params.chunk_size, u.params.pad_floor)
    parent_data = (root(cli) / commit_name(gen - 1)).read_bytes()
    parent_sealer = Sealer(u.epoch_keys(commit_epoch(cli, gen - 1)), u.params.chunk_size, u.params.pad_floor)
    parent = open_commit(parent_sealer, gen - 1, parent_data)
    c = Commit(u.vault_id, gen, object_hash(parent_data), epoch, u.generation, parent.root, b"\x07" * 16,
               parent.time + 1, {})
    (root(cli) / commit_name(gen)).write_bytes(seal_commit(sealer, c))


def test_a_commit_of_the_retired_epoch_is_refused(vault: Cli) -> None:
    vault.ok("rekey")
    hostile_commit(vault, 1, 3)
    refused = vault("ls")
    assert refused.code == 6, refused.err


_LAUNCHER = r"""
import os, signal, sys
from sigmavault.backends.local import LocalBackend
from sigmavault.cli.main import main

point = sys.argv[1]
original = LocalBackend.put_if_absent


async def put(self, name, data):
    landed = await original(self, name, data)
    if name.startswith("k/") and point == "after-r1" or name.startswith("c/") and point == "after-r3":
        os.kill(os.getpid(), signal.SIGKILL)
    return landed

LocalBackend.put_if_absent = put
sys.exit(main(sys.argv[2:]))
"""


def killed_rekey(cli: Cli, point: str) -> None:
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, point, "--vault", str(cli.vault), "rekey"],
                          env=env_for(cli.home), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)


def test_killed_after_r1_then_a_writer_commits_and_finishes(vault: Cli, tmp_path: Path) -> None:
    killed_rekey(vault, "after-r1")
    assert epochs(vault) == {1: ("active", None), 2: ("active", None)}  # R1 only: nothing retired yet
    (tmp_path / "new.bin").write_bytes(os.urandom(5000))
    vault.ok("import", str(tmp_path / "new.bin"), "--to", "/new.bin")  # a commit of epoch 2, then the finisher
    assert commit_epoch(vault, 2) == 2
    assert epochs(vault) == {1: ("retired", 1), 2: ("active", None)}
    vault.ok("verify", "--full")


def test_killed_after_r1_then_rekey_again_resumes(vault: Cli) -> None:
    killed_rekey(vault, "after-r1")
    done = vault.ok("--json", "rekey").json()
    assert done["resumed"] and done["epoch"] == 2 and done["record"] == 2 and done["retired"] == {"1": 1}


def test_killed_after_r3_then_any_client_finishes(vault: Cli, tmp_path: Path) -> None:
    killed_rekey(vault, "after-r3")
    assert commit_epoch(vault, 2) == 2 and epochs(vault)[1] == ("active", None)
    other = Cli(tmp_path / "home2", vault.vault)  # another device, only reading
    assert other.ok("ls").out == "old.bin\n"
    assert epochs(vault) == {1: ("retired", 1), 2: ("active", None)}


def test_a_commit_going_back_to_the_old_epoch_is_refused(vault: Cli) -> None:
    killed_rekey(vault, "after-r3")  # epoch 1 still active: only the chain rule stops what follows
    hostile_commit(vault, 1, 3)
    refused = vault("ls")
    assert refused.code == 6 and "goes back to key epoch 1" in refused.one_line_error()


def test_rekey_json_and_help_are_documented(vault: Cli) -> None:
    helped = vault.ok("rekey", "--help").out
    assert "--drop-passphrase-slots" in helped
    assert "--rekey" in vault.ok("key", "remove", "--help").out
    assert json.loads(vault.ok("--json", "rekey").out)["keystore_generation"] >= 3


def test_bad_rekey_requests_are_refused_and_change_nothing(vault: Cli) -> None:
    stores = sorted(os.listdir(root(vault) / "k"))
    own = next(s["id"] for s in vault.ok("--json", "key", "list").json()["slots"] if s["unlocked_with"])
    refused = vault("key", "remove", own, "--rekey")
    assert refused.code == 2 and "used to unlock" in refused.one_line_error()
    missing = vault("key", "remove", "abcdef0123", "--rekey")
    assert missing.code == 4 and "abcdef0123" in missing.one_line_error()
    alone = vault("key", "remove", own, "--drop-passphrase-slots")
    assert alone.code == 2 and "--rekey" in alone.one_line_error()
    assert sorted(os.listdir(root(vault) / "k")) == stores and epochs(vault) == {1: ("active", None)}
    assert vault.ok("ls").out == "old.bin\n"
