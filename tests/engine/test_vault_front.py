"""The thin front: a Snapshot that cannot write and keeps its generation, the ``keys`` facet, settings passed in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from vaulttools import PASS, new_vault, reopen

import sigmavault
from sigmavault import AuthError, NotFound, Snapshot, Tuning, UsageError
from sigmavault.engine.local.settings import DEFAULT_MIXER, Places, auto_mixer

WRITES = ["put", "ingest", "patch", "mkdir", "symlink", "set_meta", "rm", "mv", "set_xattr", "commit", "refresh",
          "rebuild_index"]


async def test_a_snapshot_has_no_write_methods(tmp_path: Path) -> None:
    async with await new_vault(tmp_path / "v") as v:
        await v.put("a.txt", b"one")
        g1 = await v.commit()
        snap = await v.at(g1)
        assert isinstance(snap, Snapshot) and not isinstance(snap, sigmavault.Vault)
        for name in WRITES:
            assert not hasattr(snap, name), name  # no method at all, not a method that says no
        with pytest.raises(AttributeError):
            await snap.put("b.txt", b"two")  # type: ignore[attr-defined]
        with pytest.raises(AttributeError):
            await snap.rm("a.txt")  # type: ignore[attr-defined]
        assert await snap.read_bytes("a.txt") == b"one"  # and it still reads
        assert [st.name for st in await snap.ls("/")] == ["a.txt"]


async def test_a_snapshot_keeps_its_generation_while_the_vault_moves_on(tmp_path: Path) -> None:
    url = tmp_path / "v"
    async with await new_vault(url) as v:
        v.refresh_interval = 0.0  # the vault adopts other clients' commits before every read
        await v.put("a.txt", b"old")
        g1 = await v.commit()
        snap = await v.at(g1)
        await v.put("a.txt", b"mine, newer")
        await v.put("b.txt", b"new")
        await v.commit()
        async with await reopen(url) as other:  # another client commits a newer generation still
            await other.put("c.txt", b"theirs")
            await other.commit()
        assert await v.read_bytes("c.txt") == b"theirs"  # the vault adopted it
        assert v.generation == g1 + 2
        assert snap.generation == g1
        assert await snap.read_bytes("a.txt") == b"old"
        with pytest.raises(NotFound):  # a snapshot never adopts newer commits, even on NotFound
            await snap.stat("c.txt")
        assert [st.name for st in await snap.ls("/")] == ["a.txt"]
        assert [p async for p, _ in snap.walk("/")] == ["/a.txt"]
    with pytest.raises(UsageError):  # it shares the vault's connections: closed with it
        await snap.read_bytes("a.txt")


async def test_keys_facet_adds_lists_and_removes_slots(tmp_path: Path) -> None:
    url = tmp_path / "v"
    async with await new_vault(url) as v:
        first = v.keys.slots()
        assert len(first) == 2 and v.keys.generation == 1  # passphrase + recovery code
        added = await v.keys.add_passphrase("a second passphrase", "laptop", "minimum")
        assert added.slot is not None and added.slot.label == "laptop" and added.generation == 2
        assert v.keys.generation == 2 and len(v.keys.slots()) == 3  # the facet moved to the new keystore
        slot = v.keys.find(added.slot.id_hex[:8])
        assert slot == added.slot.id
        assert v.keys.opened_slot in {s.id for s in first}
        await v.put("kept", b"data")
    async with await sigmavault.open(str(url), passphrase="a second passphrase") as v:
        assert await v.read_bytes("kept") == b"data"
        assert v.keys.opened_slot == slot
    async with await reopen(url) as v:
        removed = await v.keys.remove(slot)  # a second change from the same open works too
        assert removed.slot is None and removed.generation == 3 and len(v.keys.slots()) == 2
        with pytest.raises(UsageError):
            await v.keys.add_passphrase("x", "bad", "no-such-profile")
    with pytest.raises(AuthError):
        await sigmavault.open(str(url), passphrase="a second passphrase")
    async with await sigmavault.open(str(url), passphrase=PASS) as v:
        assert v.keys.generation == 3 and "secret" not in repr(v.keys).lower()


async def test_settings_are_passed_in(tmp_path: Path) -> None:
    places = Places(state=tmp_path / "elsewhere" / "state", config=tmp_path / "elsewhere" / "config")
    async with await sigmavault.create(str(tmp_path / "v"), passphrase=PASS, kdf="minimum", places=places,
                                       tuning=Tuning(mixer="thread")) as v:
        await v.put("a", b"x" * 5000)
        assert (await v.mixer()).kind == "thread"
        added = await v.keys.add_two_factor("two factors", "here", "minimum")
        assert added.slot is not None
    assert len(list((places.state).iterdir())) == 1  # this device's state went where it was told
    assert places.device_secret.exists()
    async with await sigmavault.open(str(tmp_path / "v"), passphrase=PASS) as v:  # the default: one source
        assert DEFAULT_MIXER == "auto" and (await v.mixer()).kind == Tuning().mixer == auto_mixer(os.cpu_count())
    with pytest.raises(sigmavault.UsageError, match="unknown mixer 'fastest'"):  # a VaultError, exit code 2
        Tuning(mixer="fastest")


def test_auto_mixer_is_inline_below_four_cores_and_a_pool_from_there() -> None:
    assert [auto_mixer(n) for n in (None, 1, 2, 3, 4, 16)] == ["inline"] * 4 + ["process"] * 2
    t = Tuning()
    assert t.mixer in ("inline", "process") and t.mixer_workers >= 2 and t.mixer_slots >= max(4, t.mixer_workers)
    assert Tuning(mixer="process", mixer_workers=7).mixer_slots == 9  # enough in flight to keep 7 workers busy
    assert Tuning(mixer_workers=1, mixer_slots=3).mixer_slots == 3  # what is given is kept
