"""The reader rules of history on a real local vault: every generation read is checked against the
hash chain from the verified head (a forked old commit is refused), the epoch and keystore-generation
rules of CRYPTO.md §5.1, and the keystore re-read before a commit (§5.2 step 3)."""

from __future__ import annotations

import secrets
import time
from dataclasses import replace
from pathlib import Path

import pytest
from vaulttools import PASS, new_vault, reopen

from sigmavault import AuthError, IntegrityError, RollbackError
from sigmavault.engine.format.commits import Commit, commit_name, decode_commit, object_hash, seal_commit
from sigmavault.engine.keys import keystore
from sigmavault.engine.keys.credentials import Passphrase
from sigmavault.engine.keys.keyring import Epoch
from sigmavault.engine.keys.secret import Secret
from sigmavault.engine.keys.slots import MINIMUM
from sigmavault.engine.vault import Vault


def commit_file(root: Path, gen: int) -> Path:
    return root / "c" / commit_name(gen)[2:]


async def three_generations(root: Path) -> Vault:
    v = await new_vault(root)
    for i in range(3):
        await v.put(f"f{i}", f"content {i}".encode() * 200)
        await v.commit()
    return v


def forge(v: Vault, gen: int, parent: bytes | None, **changes: object) -> bytes:
    """A commit sealed with the vault's own keys (a co-writer or a provider replaying keys it saw)."""
    h = v._history
    c = Commit(h.vault_id, gen, parent, v._store.epoch, h.keystore_gen, (), h.client_id, int(time.time()))
    return seal_commit(v._store.sealer, replace(c, **changes))  # type: ignore[arg-type]


def unlocked(root: Path) -> keystore.Unlocked:
    name = max((root / "k").iterdir()).name
    return keystore.unlock((root / "k" / name).read_bytes(), "k/" + name, Passphrase.of(PASS))


def store_keystore(root: Path, w: keystore.Written) -> None:
    (root / w.name).write_bytes(w.data)


async def test_a_forked_old_commit_under_an_honest_head_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "v"
    async with await three_generations(root) as v:
        parent = object_hash(commit_file(root, 1).read_bytes())
        forked = forge(v, 2, parent)  # a valid, differently-rooted generation 2
    commit_file(root, 2).write_bytes(forked)
    async with await reopen(root) as v:  # the pinned head (3) is intact: open succeeds
        assert v.generation == 3
        with pytest.raises(RollbackError, match="commit 2 does not belong"):
            await v.at(2)
        with pytest.raises(RollbackError):
            [c async for c in v.diff(2, 3)]
        with pytest.raises(RollbackError):
            await v.log()
        assert await v.read_bytes("f0") == b"content 0" * 200  # the head itself still reads


async def test_old_generations_of_an_honest_chain_read_back(tmp_path: Path) -> None:
    root = tmp_path / "v"
    async with await three_generations(root):
        pass
    async with await reopen(root) as v:
        assert [e.generation for e in await v.log()] == [3, 2, 1, 0]
        assert [s.name for s in await (await v.at(2)).ls("/")] == ["f0", "f1"]
        assert v._history.verified_hash(1) == object_hash(commit_file(root, 1).read_bytes())


def retire_epoch_one(root: Path, retired_at: int) -> None:
    """Write keystore generation 2: epoch 1 retired at ``retired_at``, a new epoch 2 current (a revocation)."""
    u = unlocked(root)
    old = u.keyring.epoch(1)
    assert old is not None
    ring = replace(u.keyring, current_epoch=2,
                   epochs=(Epoch(1, "retired", old.root_key, retired_at),
                           Epoch(2, "active", Secret(secrets.token_bytes(32), "root key"))))
    store_keystore(root, keystore._write(replace(u, keyring=ring), u.slots))


async def test_a_commit_after_its_epoch_was_retired_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "v"
    async with await three_generations(root):
        pass
    retire_epoch_one(root, retired_at=2)  # generation 3 was written with epoch 1 after it was retired
    with pytest.raises(IntegrityError):
        await reopen(root)


async def test_an_epoch_retired_at_the_head_stays_readable_and_the_new_epoch_writes(tmp_path: Path) -> None:
    root = tmp_path / "v"
    async with await three_generations(root):
        pass
    retire_epoch_one(root, retired_at=3)
    async with await reopen(root) as v:
        assert [e.generation for e in await v.log()] == [3, 2, 1, 0]
        await v.put("after", b"new epoch" * 300)
        assert await v.commit() == 4
    async with await reopen(root) as v:
        assert await v.read_bytes("after") == b"new epoch" * 300
        sealed = commit_file(root, 4).read_bytes()
        assert decode_commit(v._store.sealer_for(2).open(3, commit_name(4), sealed)).epoch == 2


async def test_a_commit_naming_a_withheld_keystore_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "v"
    async with await three_generations(root) as v:
        parent = object_hash(commit_file(root, 3).read_bytes())
        ahead = forge(v, 4, parent, keystore_gen=9)
    commit_file(root, 4).write_bytes(ahead)
    with pytest.raises(IntegrityError, match="keystore generation 9"):
        await reopen(root)


async def test_a_commit_adopts_a_keystore_rewritten_elsewhere(tmp_path: Path) -> None:
    root = tmp_path / "v"
    async with await three_generations(root) as v:
        # another device changes the passphrase while this one is open: same KSK, generation 2
        store_keystore(root, keystore.change_passphrase(unlocked(root), Passphrase.of("new pass"), profile=MINIMUM))
        await v.put("late", b"x" * 5000)
        gen = await v.commit()
        c = decode_commit(v._store.sealer.open(3, commit_name(gen), commit_file(root, gen).read_bytes()))
        assert c.keystore_gen == 2


async def test_a_commit_is_refused_when_the_keys_were_rotated_elsewhere(tmp_path: Path) -> None:
    root = tmp_path / "v"
    v = await three_generations(root)
    try:
        u = unlocked(root)
        # a revocation elsewhere: a new KSK (this device's key no longer authenticates the keystore) and
        # no slot for this passphrase (the credential that opened the vault cannot re-open it either)
        kept = tuple(s for s in u.slots if s.type == "xwing")
        store_keystore(root, keystore._write(replace(u, ksk=Secret(secrets.token_bytes(32), "ksk")), kept))
        await v.put("late", b"x" * 5000)
        with pytest.raises(AuthError, match="keys were changed on another device"):
            await v.commit()
        assert not commit_file(root, 4).exists()
        assert v.pending  # nothing lost: the edits are still there
    finally:
        await v.aclose()
