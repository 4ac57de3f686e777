"""Device slots and this device's state on a dispersed vault, through the real command (issue 12):
`key device` over places named in any order, enrolment by the printed key, no pin on first use,
`forget-device` by the places, and the clear errors of a bad device key file or missing places."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from clitools import Cli

from sigmavault import config


def flags(places: list[Path]) -> list[str]:
    return [a for p in places for a in ("--vault", str(p))]


def keystores(places: list[Path]) -> list[list[str]]:
    return [sorted(os.listdir(p / "k")) if (p / "k").is_dir() else [] for p in places]


@pytest.fixture()
def spread(tmp_path: Path) -> tuple[Cli, list[Path], str]:
    """A 2-of-3 vault over three local places, made on the first device (which pinned it)."""
    places = [tmp_path / f"place{i}" for i in range(3)]
    cli = Cli(tmp_path / "home", None)
    made = cli.ok(*flags(places), "--json", "create", "--kdf", "minimum", "--needed", "2").json()
    cli.ok(*flags(places), "mkdir", "/kept")
    return cli, places, made["fingerprint"]


def test_enrol_another_device_by_its_printed_key(spread: tuple[Cli, list[Path], str], tmp_path: Path) -> None:
    cli, places, fp = spread
    given, reordered = flags(places), flags([places[2], places[0], places[1]])
    phone = Cli(tmp_path / "phone", None)
    pk = phone.ok(*given, "--json", "key", "device", passphrase=None).json()["public_key"]
    assert pk.startswith("age1pq1")
    assert phone.ok(*reordered, "key", "device", passphrase=None).out.strip() == pk  # by vault id, not order
    assert phone.ok(*flags(places[1:]), "key", "device", passphrase=None).out.strip() == pk  # one place left out
    assert phone(*given, "ls", passphrase=None).code == 3  # not enrolled, nothing pinned: no way in
    before = keystores(places)
    bad = cli(*given, "key", "add", "--device", "--public-key", "age1pq1notakey")
    assert bad.code == 2 and "device key" in bad.one_line_error() and keystores(places) == before
    cli.ok(*reordered, "key", "add", "--device", "--public-key", pk, "--label", "phone")
    assert all(len(ks) == 1 and ks != b for ks, b in zip(keystores(places), before, strict=True))
    # enrolled but not pinned: a public-key slot never pins on first use, and trying leaves no pin
    for _ in range(2):
        r = phone(*reordered, "ls", passphrase=None)
        assert r.code == 3 and "no passphrase given" in r.one_line_error()
    assert phone.ok(*reordered, "ls", "--fingerprint", fp, passphrase=None).out == "kept/\n"
    other_order = flags([places[1], places[2], places[0]])
    assert phone.ok(*other_order, "ls", passphrase=None).out == "kept/\n"  # pinned now, whatever the order
    phone.ok(*other_order, "mkdir", "/from-phone", passphrase=None)
    listed = phone.ok(*given, "--json", "key", "list", passphrase=None).json()["slots"]
    assert [(s["kind"], s["label"]) for s in listed if s["unlocked_with"]] == [("device", "phone")]
    assert cli.ok(*given, "ls").out == "from-phone/\nkept/\n"
    laptop = Cli(tmp_path / "laptop", None)  # a device whose key was not enrolled
    assert laptop(*given, "ls", "--fingerprint", fp, passphrase=None).code == 3
    # forgetting the phone's state drops its pin: the device slot alone does not pin again
    forgot = phone.ok(*reordered, "--json", "forget-device", passphrase=None).json()
    assert forgot["removed"] and not Path(forgot["state_dir"]).exists()
    assert phone(*given, "ls", passphrase=None).code == 3
    assert phone.ok(*given, "ls", "--fingerprint", fp, passphrase=None).out == "from-phone/\nkept/\n"


def test_this_device_slot_and_a_bad_device_key_file(spread: tuple[Cli, list[Path], str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    cli, places, _ = spread
    given, reordered = flags(places), flags([places[1], places[0], places[2]])
    added = cli.ok(*given, "--json", "key", "add", "--device").json()
    assert added["slot"]["kind"] == "device" and added["slot"]["label"] == "this device"
    monkeypatch.setenv("SIGMAVAULT_HOME", str(cli.home))
    key = config.places().device_key
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.stat().st_size == 32
    assert cli.ok(*reordered, "ls", passphrase=None).out == "kept/\n"
    listed = cli.ok(*reordered, "--json", "key", "list", passphrase=None).json()["slots"]
    assert [s["kind"] for s in listed if s["unlocked_with"]] == ["device"]
    again = cli(*given, "key", "add", "--device", passphrase=None)
    assert again.code == 2 and "already has a slot" in again.one_line_error()
    before = keystores(places)
    key.chmod(0o644)  # a key others can read is refused, not used, and nothing changes
    for args in (("ls",), ("key", "device"), ("key", "add", "--device")):
        r = cli(*reordered, *args, passphrase=None)
        assert r.code != 0 and "chmod 600" in r.one_line_error(), args
    assert keystores(places) == before and stat.S_IMODE(key.stat().st_mode) == 0o644
    key.chmod(0o600)
    assert cli.ok(*given, "ls", passphrase=None).out == "kept/\n"
    shutil.rmtree(places[0])  # one place lost: the device key still opens it, with one warning
    r = cli.ok(*reordered, "ls", passphrase=None)
    assert r.out == "kept/\n" and r.err.startswith("sigmavault: warning: degraded"), r.err


def test_missing_places_are_one_clean_error_and_lose_nothing(spread: tuple[Cli, list[Path], str],
                                                             tmp_path: Path) -> None:
    cli, places, fp = spread
    phone = Cli(tmp_path / "phone", None)
    pk = phone.ok(*flags(places), "key", "device", passphrase=None).out.strip()
    cli.ok(*flags(places), "key", "add", "--device", "--public-key", pk)
    phone.ok(*flags(places), "ls", "--fingerprint", fp, passphrase=None)
    state = Path(phone.ok(*flags(places), "--json", "forget-device").json()["state_dir"])
    phone.ok(*flags(places), "ls", "--fingerprint", fp, passphrase=None)
    held = sorted(p.name for p in state.iterdir())
    before = keystores(places)
    gone = [tmp_path / "gone1", tmp_path / "gone2"]  # two of three places named wrongly: no majority
    for args in (("key", "device"), ("forget-device",), ("ls",), ("key", "add", "--device", "--public-key", pk)):
        r = phone(*flags([places[0], *gone]), *args, passphrase=None)
        assert r.code != 0 and r.one_line_error(), args
    assert not any(p.exists() for p in gone)
    assert keystores(places) == before and sorted(p.name for p in state.iterdir()) == held
    assert phone.ok(*flags(places), "ls", passphrase=None).out == "kept/\n"
    empty = [tmp_path / f"empty{i}" for i in range(3)]
    for p in empty:
        p.mkdir()
    r = phone(*flags(empty), "forget-device")
    assert r.code != 0 and "no vault" in r.one_line_error()
    assert sorted(p.name for p in state.iterdir()) == held
    mine = cli.ok(*flags([places[2], places[1], places[0]]), "--json", "forget-device").json()
    assert mine["removed"] and not Path(mine["state_dir"]).exists()
    again = cli.ok(*flags(places), "ls")  # as on a fresh device: pinned again on first use, said once
    assert "now pins vault" in again.err and "trust on first use" in again.err and again.out == "kept/\n"
    assert cli.ok(*flags(places), "ls").err == ""
