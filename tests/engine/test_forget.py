"""forget and audit through the library on a real local vault, with commit times injected (no sleeping):
the decision lands in the hash chain, forgotten generations are gone from log/at/diff for every
client, and the audit reads who did what from the chain."""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path

import pytest
from vaulttools import PASS, new_vault, reopen

import sigmavault
from sigmavault import IntegrityError, NotFound, Rules, UsageError, Vault
from sigmavault.engine.format.canonical import dumps
from sigmavault.engine.format.commits import Commit, commit_name, encode_commit, seal_body

DAY = 86400
T0 = 1_700_000_000  # 2023-11-14T22:13:20Z


async def daily_history(root: Path, days: int) -> Vault:
    """Generations 1..days, one a day at T0 + i days (the clock injected through the committer)."""
    v = await new_vault(root)
    for i in range(days):
        v._commits.clock = lambda i=i: T0 + i * DAY
        await v.put(f"day{i}", f"content of day {i}".encode())
        await v.commit()
    return v


def c_files(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "c").iterdir() if not p.name.startswith("."))


async def test_forget_hides_generations_everywhere_and_records_the_decision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "v"
    async with await daily_history(root, 6) as v:
        v._commits.clock = lambda: T0 + 6 * DAY
        r = await v.forget(Rules(last=3), tz=UTC)
        assert r.forgotten == (0, 1, 2, 3) and sorted(r.kept) == [4, 5, 6] and r.records == (7,)
        assert r.kept[6] == ("newest", "last") and not r.dry_run and r.rules == {"last": 3}
        assert await v.kept_generations() == {4, 5, 6, 7}
        assert [e.generation for e in await v.log()] == [7, 6, 5, 4]
        for gen in (0, 2, 3):
            with pytest.raises(NotFound, match=f"generation {gen} was forgotten"):
                await v.at(gen)
        with pytest.raises(NotFound):
            [c async for c in v.diff(3, 6)]
        assert [c.path for c in [c async for c in v.diff(4, 6)]] == ["/day4", "/day5"]
        assert await (await v.at(4)).read_bytes("day3") == b"content of day 3"  # a kept snapshot reads whole
        entries = {e.generation: e for e in await v.log(changes=True)}
        assert entries[7].forgot == (0, 1, 2, 3) and entries[7].added == 0  # the record: same root as 6
        assert entries[4].added == 4  # day0..day3, against the empty start: nothing older is kept
        assert (await v.verify()).ok
    # a fresh device (no local state, trust on first use) sees the same: the decision is in the chain
    monkeypatch.setenv("SIGMAVAULT_HOME", str(tmp_path / "other-device"))
    async with await reopen(root) as v2:
        assert await v2.kept_generations() == {4, 5, 6, 7}
        with pytest.raises(NotFound):
            await v2.at(1)


async def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "v"
    async with await daily_history(root, 4) as v:
        before = c_files(root)
        r = await v.forget(Rules(last=1), dry_run=True, tz=UTC)
        assert r.dry_run and r.forgotten == (0, 1, 2, 3) and r.records == ()
        assert c_files(root) == before and v.generation == 4
        assert await v.kept_generations() == set(range(5))
        await v.at(1)


async def test_nothing_to_forget_writes_no_record_and_empty_rules_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "v"
    async with await daily_history(root, 3) as v:
        before = c_files(root)
        with pytest.raises(UsageError):
            await v.forget(Rules())
        r = await v.forget(Rules(last=10), tz=UTC)
        assert r.forgotten == () and r.records == () and c_files(root) == before


async def test_a_second_forget_drops_the_earlier_record_and_rules_ignore_records(tmp_path: Path) -> None:
    root = tmp_path / "v"
    async with await daily_history(root, 4) as v:
        v._commits.clock = lambda: T0 + 4 * DAY
        assert (await v.forget(Rules(last=2), tz=UTC)).records == (5,)  # keeps 3, 4
        for i in (6, 7):
            v._commits.clock = lambda i=i: T0 + i * DAY
            await v.put(f"later{i}", b"x")
            await v.commit()  # generations 6 and 7
        r = await v.forget(Rules(last=2), tz=UTC)  # the record (5) is no snapshot: last 2 = 6, 7
        assert r.forgotten == (3, 4) and sorted(r.kept) == [6, 7] and r.records == (8,)
        assert await v.kept_generations() == {6, 7, 8}
        audit = [(e.event, e.generation) for e in await v.audit()]
        assert ("forget", 5) in audit and ("forget", 8) in audit  # both records stay in the chain
        gone = {e.generation: e.forgotten_by for e in await v.audit()}
        assert gone[5] == 8 and gone[0] == 5 and gone[6] is None


async def test_audit_reads_who_when_and_key_changes(tmp_path: Path) -> None:
    root = tmp_path / "v"
    async with await daily_history(root, 2) as v:
        await v.keys.add_passphrase("second passphrase", "backup laptop", profile="minimum")
        v.audit_host = True
        v._commits.clock = lambda: T0 + 5 * DAY
        await v.put("after-key", b"y" * 10)
        await v.commit()
        events = await v.audit()
        assert [e.event for e in events] == ["commit", "commit", "commit", "keys", "commit"]
        last = events[-1]
        assert last.slot == v.keys.opened_slot.hex() and last.slot_label is not None
        assert last.host and last.counts == {"added": 1, "changed": 0, "removed": 0, "bytes": 10}
        assert events[3].keystore_generation == 2 and events[1].host is None  # host only once allowed
        # the key change is a record of its own, naming the slot added, and who added it
        assert events[3].generation == 3 and [(k["op"], k["type"], k["label"]) for k in events[3].keys] == [
            ("add", "argon2id", "backup laptop")]
        assert events[3].slot == v.keys.opened_slot.hex()
        # generation 0 was created at the real time (after T0): it is "since" too
        assert [e.generation for e in await v.audit(since=T0 + DAY)] == [0, 2, 3, 4]
        assert all(e.client == v._history.client_id.hex() for e in events)


async def test_a_forged_forget_of_its_own_or_later_generation_is_an_integrity_error(tmp_path: Path) -> None:
    root = tmp_path / "v"
    async with await daily_history(root, 2) as v:
        head, h = v._head, v._history
        c = Commit(h.vault_id, 3, head.hash, v._store.epoch, h.keystore_gen, head.commit.root, h.client_id, T0, {})
        doc = json.loads(encode_commit(c))
        doc["meta"] = {"forget": {"gens": [[1, 3]], "rules": {}}}  # names itself
        (root / "c" / commit_name(3)[2:]).write_bytes(seal_body(v._store.sealer, 3, dumps(doc)))
    with pytest.raises(IntegrityError):
        await reopen(root)


def test_the_blocking_facade_forgets_and_audits(tmp_path: Path) -> None:
    with sigmavault.sync.create(str(tmp_path / "v"), passphrase=PASS, kdf="minimum", chunk_size=1 << 20) as v:
        for i in range(3):
            v.put(f"f{i}", b"z")
            v.commit()
        assert v.audit_host is False
        r = v.forget(Rules(last=1), dry_run=True)
        assert r.forgotten == (0, 1, 2)
        assert v.forget(Rules(last=1)).records == (4,)
        assert v.kept_generations() == {3, 4}
        assert [e.event for e in v.audit()][-1] == "forget"
        with pytest.raises(NotFound):
            v.at(2)


async def test_counts_cost_no_more_than_the_edits(tmp_path: Path) -> None:
    """An import is counted file by file; a directory moved or removed whole is not read to count it."""
    root = tmp_path / "v"
    async with await new_vault(root) as v:
        for i in range(3):
            await v.put(f"a/f{i}", b"x" * 10)
        await v.commit()
        assert (await v.log(1))[0].counts == {"added": 3, "changed": 0, "removed": 0, "bytes": 30}
    async with await reopen(root) as v:
        await v.mv("a", "b")
        await v.commit()
        # unread, the moved directory is not counted (read, it would be 3 added and 3 removed): a lower bound
        assert (await v.log(1))[0].counts == {"added": 0, "changed": 0, "removed": 0, "bytes": 0}
        await v.put("b/f1", b"changed")
        await v.rm("b/f2")
        await v.commit()
        assert (await v.log(1))[0].counts == {"added": 0, "changed": 1, "removed": 1, "bytes": 7}


async def test_a_forget_that_loses_the_race_lands_on_the_new_head_and_keeps_the_rivals_commit(tmp_path: Path) -> None:
    root = tmp_path / "v"
    async with await daily_history(root, 3) as a:
        b = await reopen(root)  # another client of the same vault (this device's state is shared: same client)
        try:
            rival_done = False
            real = a._history.reread_keystore

            async def rival_commits_first() -> None:  # ordered by the call itself, no sleeping
                nonlocal rival_done
                if not rival_done:
                    rival_done = True
                    await b.put("rival", b"r")
                    await b.commit()  # takes generation 4, the one a's record was about to take
                await real()

            a._history.reread_keystore = rival_commits_first  # type: ignore[method-assign]
            r = await a.forget(Rules(last=1), tz=UTC)
        finally:
            await b.aclose()
        assert r.forgotten == (0, 1, 2) and r.records == (5,)  # decided once, recorded after the rival's 4
        assert await a.kept_generations() == {3, 4, 5}
        assert await (await a.at(5)).read_bytes("rival") == b"r"  # the record's root is the new head's
        assert [e.generation for e in await a.log()] == [5, 4, 3]
