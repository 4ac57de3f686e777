"""Key management through the real command: passwd, two-factor, recipients, recovery code, pinning."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from clitools import PASS, Cli

from sigmavault import config
from sigmavault.engine.keys import xwing


@pytest.fixture()
def vault(tmp_path: Path) -> tuple[Cli, str, str]:
    cli = Cli(tmp_path / "home", tmp_path / "v")
    made = cli.ok("--json", "create", "--kdf", "minimum").json()
    cli.ok("mkdir", "/kept")
    return cli, made["fingerprint"], made["recovery_code"]


def keystores(cli: Cli) -> list[str]:
    return sorted(os.listdir(Path(str(cli.vault)) / "k"))


def test_passwd_then_only_the_new_passphrase_opens(vault: tuple[Cli, str, str], tmp_path: Path) -> None:
    cli, _, _ = vault
    (tmp_path / "new").write_text("a brand new passphrase\n")
    done = cli.ok("--json", "key", "passwd", "--new-passphrase-file", str(tmp_path / "new")).json()
    assert done["keystore_generation"] == 2 and keystores(cli) == ["0000000000000002"]  # older k/ deleted
    assert cli("ls").code == 3
    assert cli.ok("--json", "ls", passphrase="a brand new passphrase").json()["entries"][0]["name"] == "kept"
    assert cli.ok("ls", "--passphrase-file", str(tmp_path / "new"), passphrase=None).out == "kept/\n"
    other = Cli(tmp_path / "home2", cli.vault)  # a second device: the old passphrase is gone there too
    assert other("ls").code == 3


def device_secret(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SIGMAVAULT_HOME", str(home))
    return config.places().device_secret


def test_two_factor_slot_needs_passphrase_and_device_secret(vault: tuple[Cli, str, str], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    cli, fp, _ = vault
    (tmp_path / "tf").write_text("second factor pass\n")
    added = cli.ok("--json", "key", "add", "--two-factor", "--kdf", "minimum", "--label", "laptop",
                   "--new-passphrase-file", str(tmp_path / "tf")).json()
    assert added["slot"]["type"] == "argon2id+device" and added["slot"]["label"] == "laptop"
    device = device_secret(cli.home, monkeypatch)
    assert stat.S_IMODE(device.stat().st_mode) == 0o600 and device.stat().st_size == 32
    slots = cli.ok("--json", "ls", passphrase="second factor pass")
    assert slots.json()["entries"][0]["name"] == "kept"
    assert cli.ok("ls").code == 0  # the plain passphrase slot still opens with the device secret around
    shutil.move(device, tmp_path / "away")
    assert cli("ls", passphrase="second factor pass").code == 3  # passphrase without the device
    stranger = Cli(tmp_path / "home2", cli.vault)
    assert stranger("ls", "--fingerprint", fp, passphrase="second factor pass").code == 3
    theirs = device_secret(stranger.home, monkeypatch)
    theirs.parent.mkdir(parents=True)
    shutil.copy2(tmp_path / "away", theirs)
    assert stranger("ls", "--fingerprint", fp, passphrase="wrong").code == 3  # device without the passphrase
    assert stranger.ok("ls", "--fingerprint", fp, passphrase="second factor pass").out == "kept/\n"


def test_recipient_slot_from_an_age1pq_string(vault: tuple[Cli, str, str], tmp_path: Path) -> None:
    cli, fp, _ = vault
    seed = xwing.generate()
    recipient = xwing.recipient(xwing.public_key(seed))
    added = cli.ok("--json", "key", "add", "--recipient", recipient, "--label", "alice").json()
    assert added["slot"]["kind"] == "recipient"
    listed = cli.ok("--json", "key", "list").json()["slots"]
    assert [(s["type"], s["kind"]) for s in listed] == [("argon2id", None), ("xwing", "recovery"),
                                                        ("xwing", "recipient")]
    assert [s["unlocked_with"] for s in listed] == [True, False, False]
    bad = cli("key", "add", "--recipient", "age1pq1notakey")
    assert bad.code == 2
    ident = tmp_path / "alice.key"
    ident.write_text("# alice\n" + xwing.identity(seed) + "\n")
    alice = Cli(tmp_path / "alice-home", cli.vault)
    unpinned = alice("ls", "--identity-file", str(ident), passphrase=None)
    assert unpinned.code == 3 and "pin" in unpinned.one_line_error()
    assert alice.ok("ls", "--identity-file", str(ident), "--fingerprint", fp, passphrase=None).out == "kept/\n"
    slot = listed[2]["id"]
    assert cli.ok("--json", "key", "remove", slot[:8]).json()["keystore_generation"] == 3
    assert alice("ls", "--identity-file", str(ident), passphrase=None).code == 3
    assert cli("key", "remove", listed[0]["id"]).code == 2  # the slot this session unlocked with


def test_recovery_code_opens_and_pins(vault: tuple[Cli, str, str], tmp_path: Path) -> None:
    cli, fp, code = vault
    (tmp_path / "code").write_text(code + "\n")
    fresh = Cli(tmp_path / "new-device", cli.vault)
    info = fresh.ok("--json", "info", "--recovery-code-file", str(tmp_path / "code"), passphrase=None).json()
    assert info["fingerprint"] == fp
    assert fresh.ok("ls", "--recovery-code", passphrase=None, SIGMAVAULT_RECOVERY_CODE=code).out == "kept/\n"
    typo = code[:-3] + ("qqq" if not code.endswith("qqq") else "ppp")
    assert fresh("ls", "--recovery-code", passphrase=None, SIGMAVAULT_RECOVERY_CODE=typo).code == 3
    # the pin taken from the code now guards this device: a different vault at the same place is refused
    other = Cli(tmp_path / "elsewhere", tmp_path / "impostor")
    other.ok("create", "--kdf", "minimum")
    shutil.rmtree(Path(str(cli.vault)))
    shutil.copytree(tmp_path / "impostor", Path(str(cli.vault)))
    r = fresh("ls")
    assert r.code == 6 and "fingerprint mismatch" in r.one_line_error()


def test_fingerprint_pins_a_second_device(vault: tuple[Cli, str, str], tmp_path: Path) -> None:
    cli, fp, _ = vault
    wrong = "00" * 16
    r = Cli(tmp_path / "dev2", cli.vault)("ls", "--fingerprint", wrong)
    assert r.code == 6 and "fingerprint mismatch" in r.one_line_error()
    assert Cli(tmp_path / "dev3", cli.vault).ok("ls", "--fingerprint", fp).out == "kept/\n"
    assert Cli(tmp_path / "dev4", cli.vault)("ls", "--fingerprint", "xyz").code == 2
    assert PASS
