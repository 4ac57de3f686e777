"""The guard's state read from a real vault's chain: a tune record is not undone by a run scored
with older thresholds that lands after it, scoring reads only the last few dozen commits, and
forget keeps the last clean snapshot before a suspect one unless forced."""

from __future__ import annotations

from pathlib import Path

import pytest
from vaulttools import new_vault, reopen

from sigmavault import Rules
from sigmavault.engine.anomaly import DEFAULTS, GuardRefusal, GuardState, run_meta

RUN = {"existing": 10, "added": 0, "modified": 1, "jumped": 0, "renamed": 0, "deleted": 0, "truncated": 0}


async def test_a_stale_run_after_a_tune_record_does_not_undo_it(tmp_path: Path) -> None:
    v = await new_vault(tmp_path / "v")
    stale = await v.guard_state(scoring=True)  # a client scores with the defaults ...
    tuned = await v.guard_record({"guard": {"tune": {**DEFAULTS, "jumped_min": 9}}})  # ... another tunes
    await v.put("f", b"x")
    await v.commit(run_meta(RUN, [], stale))  # ... and the first one's run lands after the tune
    other = await reopen(tmp_path / "v")
    for st in (await v.guard_state(), await v.guard_state(scoring=True), await other.guard_state(scoring=True)):
        assert st.thresholds["jumped_min"] == 9 and st.tune_at == tuned
    await other.aclose()
    await v.aclose()


async def test_scoring_reads_only_the_window(tmp_path: Path) -> None:
    v = await new_vault(tmp_path / "v")
    for i in range(30):
        await v.put(f"f{i}", b"x")
        await v.commit(run_meta(RUN, [], await v.guard_state(scoring=True)))
    read: list[int] = []
    fresh = await reopen(tmp_path / "v")
    real = fresh._history.commit_at

    async def counting(gen: int):  # type: ignore[no-untyped-def]
        read.append(gen)
        return await real(gen)

    fresh._history.commit_at = counting  # type: ignore[method-assign]
    st = await fresh.guard_state(scoring=True)
    assert len(st.baseline) == DEFAULTS["window"] and len(set(read)) <= DEFAULTS["window"] + 1
    await fresh.aclose()
    await v.aclose()


async def test_forget_keeps_the_last_clean_snapshot_before_a_suspect_one(tmp_path: Path) -> None:
    v = await new_vault(tmp_path / "v")
    gens = []
    for i, bad in enumerate((False, False, True, False)):
        await v.put(f"f{i}", b"x")
        gens.append(await v.commit(run_meta(RUN, ["why"] if bad else [], GuardState())))
    assert (await v.guard_state()).marks == {gens[2]: ("why",)}
    with pytest.raises(GuardRefusal, match=f"generation {gens[1]} is the newest clean"):
        await v.forget(Rules(last=1))
    assert await v.kept_generations() == frozenset(range(gens[-1] + 1))
    r = await v.forget(Rules(last=1), force=True)
    assert gens[1] in r.forgotten
    await v.aclose()


async def test_recent_runs_for_slow_encryption_start_after_the_newest_mark_or_clear(tmp_path: Path) -> None:
    v = await new_vault(tmp_path / "v")
    slow = {**RUN, "jumped": 1}

    async def run(counts: dict[str, int], reasons: list[str] | None = None) -> int:
        await v.put(f"f{v.generation}", b"x")
        return await v.commit(run_meta(counts, reasons or [], await v.guard_state(scoring=True)))

    await run(slow)
    marked = await run(slow, ["slow"])
    await run(slow)
    await run(RUN)
    st = await v.guard_state(scoring=True)
    assert [r["jumped"] for r in st.recent] == [0, 1]  # the runs above the mark, newest first
    await v.guard_record({"guard": {"clear": [marked]}})
    other = await reopen(tmp_path / "v")  # another client (a new device) reads the same from the chain
    for s in (await v.guard_state(scoring=True), await other.guard_state()):
        assert s.recent == [] and len(s.baseline) == 4  # the cleared run joins the baseline, not the recent runs
    await other.aclose()
    await v.aclose()
