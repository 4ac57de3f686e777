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


def test_device_slot_opens_this_device_without_a_passphrase(vault: tuple[Cli, str, str], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cli, _, _ = vault
    assert "no passphrase given" in cli("ls", passphrase=None).one_line_error()  # no credential at all yet
    added = cli.ok("--json", "key", "add", "--device").json()
    assert added["slot"]["kind"] == "device" and added["slot"]["label"] == "this device"
    monkeypatch.setenv("SIGMAVAULT_HOME", str(cli.home))
    key = config.places().device_key
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.stat().st_size == 32
    assert cli.ok("ls", passphrase=None).out == "kept/\n"
    listed = cli.ok("--json", "key", "list", passphrase=None).json()["slots"]
    assert [s["kind"] for s in listed if s["unlocked_with"]] == ["device"]
    again = cli("key", "add", "--device", passphrase=None)
    assert again.code == 2 and "already has a slot" in again.one_line_error()
    key.chmod(0o644)  # a key others can read is refused, not used
    r = cli("ls", passphrase=None)
    assert r.code != 0 and "chmod 600" in r.one_line_error()
    key.chmod(0o600)
    pw = tmp_path / "pw"
    pw.write_text(PASS + "\n")
    device_slot = next(s["id"] for s in listed if s["kind"] == "device")
    cli.ok("key", "remove", device_slot, "--passphrase-file", str(pw), passphrase=None)  # a named credential
    assert cli("ls", passphrase=None).code == 3  # the removed device slot no longer opens; asks for a passphrase
    assert cli.ok("ls").out == "kept/\n"


def test_enrol_another_device_by_its_public_key(vault: tuple[Cli, str, str], tmp_path: Path) -> None:
    cli, fp, _ = vault
    other = Cli(tmp_path / "phone", cli.vault)
    pk = other.ok("--json", "key", "device", passphrase=None).json()["public_key"]
    assert pk.startswith("age1pq1") and other.ok("key", "device", passphrase=None).out.strip() == pk  # stable
    assert other("ls", passphrase=None).code == 3  # not enrolled, nothing pinned: no way in
    before = keystores(cli)
    bad = cli("key", "add", "--device", "--public-key", "age1pq1notakey")
    assert bad.code == 2 and "device key" in bad.one_line_error() and keystores(cli) == before
    alone = cli("key", "add", "--public-key", pk)
    assert alone.code == 2 and "--device" in alone.one_line_error()
    cli.ok("key", "add", "--device", "--public-key", pk, "--label", "phone")
    assert other("ls", passphrase=None).code == 3  # enrolled but not pinned: a public-key slot never pins
    assert other.ok("ls", "--fingerprint", fp, passphrase=None).out == "kept/\n"
    assert other.ok("ls", passphrase=None).out == "kept/\n"  # pinned now
    third = Cli(tmp_path / "laptop", cli.vault)  # a device whose key was not enrolled
    assert third("ls", "--fingerprint", fp, passphrase=None).code == 3
