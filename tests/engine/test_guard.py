"""The guard's pure parts: entropy estimates, a run's counts, the fixed and baseline scores, the
``meta.guard`` checks, and which generation forget must keep."""

from __future__ import annotations

import os

import numpy as np
import pytest

from sigmavault.engine.anomaly import DEFAULTS, GuardRefusal, GuardState, protected_in, refuse, run_counts, score
from sigmavault.engine.content.signals import FileSignal, Sampler, entropy, pack, unpack
from sigmavault.engine.errors import IntegrityError
from sigmavault.engine.format.meta import check


def sig(text: bytes, existed: bool = True, same: bool = False, old_size: int = -1) -> FileSignal:
    s = Sampler()
    s.piece(1, 0, text)
    out = s.take(1)
    out.existed, out.same, out.old_size, out.size = existed, same, old_size, len(text)
    return out


def test_entropy_tells_random_from_text_and_has_no_estimate_for_tiny_samples() -> None:
    assert sig(os.urandom(4096)).entropy > 7.8
    assert sig(os.urandom(300)).entropy > 7.5  # the bias correction: a short random sample still reads high
    assert sig(b"the quick brown fox jumps over the lazy dog\n" * 100).entropy < 5
    assert sig(os.urandom(100)).entropy == -1.0
    assert entropy(np.zeros(256, dtype=np.int64)) == -1.0


def test_the_signal_survives_the_cache_row_and_rejects_other_layouts() -> None:
    s = sig(b"\xff\xd8\xff\xe0" + os.urandom(5000))
    back = unpack(pack(s))
    assert back is not None and back.head == s.head and abs(back.entropy - s.entropy) < 0.05
    assert unpack(b"") is None and unpack(None) is None and unpack(b"\x02" + bytes(10)) is None


TEXT = b"plain words and more plain words\n" * 200


def test_run_counts_see_jumps_renames_deletions_truncation_and_never_new_files() -> None:
    existing = [f"d/f{i}.txt".encode() for i in range(100)]
    signals = {
        b"d/f0.txt": sig(os.urandom(7000)),  # encrypted in place: jumped
        b"d/f1.txt": sig(b"\xff\xd8\xff\xe0" + os.urandom(7000)),  # a JPEG signature: not jumped
        b"d/f2.txt": sig(TEXT, old_size=100_000),  # truncated
        b"d/f3.txt": sig(TEXT, same=True),  # re-read, same content: not modified
        b"d/f4.txt.locked": sig(os.urandom(7000), existed=False),  # f4 renamed and encrypted
        b"d/f5.txt.gz": sig(b"\x1f\x8b" + os.urandom(7000), existed=False),  # f5 rotated and gzipped: benign
        b"d/new.bin": sig(os.urandom(9000), existed=False),  # new: never counts
    }
    on_disk = [p for p in existing if p not in (b"d/f4.txt", b"d/f5.txt", b"d/f6.txt")] + [
        b"d/f4.txt.locked", b"d/f5.txt.gz", b"d/new.bin"]
    c = run_counts(existing, on_disk, signals, {})
    assert c == {"existing": 100, "added": 3, "modified": 3, "jumped": 1, "renamed": 1, "deleted": 1, "truncated": 1}
    # a known low-entropy prior with the same head and a still-plain new version is no jump
    assert run_counts(existing, existing, {b"d/f0.txt": sig(TEXT)}, {b"d/f0.txt": sig(TEXT)})["jumped"] == 0


def counts(**kw: int) -> dict[str, int]:
    return {"existing": 200, "added": 0, "modified": 0, "jumped": 0, "renamed": 0, "deleted": 0, "truncated": 0,
            **kw}


def test_fixed_thresholds_before_a_baseline_exists() -> None:
    t = dict(DEFAULTS)
    assert score(counts(jumped=2), [], t) == []  # 1 %: below the count floor
    assert score(counts(jumped=3), [], t) == []  # 1.5 %: below the share
    assert "near-random" in score(counts(jumped=4), [], t)[0]  # 2 %
    assert "renamed" in score(counts(renamed=10), [], t)[0]
    assert score(counts(deleted=49), [], t) == [] and "deleted" in score(counts(deleted=50), [], t)[0]
    assert score(counts(modified=200), [], t) == []  # modifying everything is not a reason on its own


def test_the_baseline_adapts_to_a_vault_whose_runs_always_look_busy() -> None:
    t = dict(DEFAULTS)
    busy = [counts(jumped=j) for j in (8, 10, 12, 9, 11, 10)]  # this vault rewrites opaque files every day
    assert score(counts(jumped=12), busy, t) == []  # usual for it (fixed thresholds alone would flag it)
    assert "z=" in score(counts(jumped=40), busy, t)[0]  # far out of its own range
    quiet = [counts() for _ in range(6)]
    assert "z=" in score(counts(jumped=4), quiet, t)[0]  # as sensitive as the fixed threshold on a quiet vault


def test_protected_is_the_newest_clean_snapshot_before_each_suspect_one() -> None:
    st = GuardState(marks={5: ("x",), 6: ("y",), 9: ("z",)}, snapshots=[0, 1, 3, 5, 6, 8, 9])
    assert protected_in(st) == {3, 8}
    refuse(st, [0, 1, 2])
    with pytest.raises(GuardRefusal, match="generation 3 is the newest clean generation before suspect generation 5"):
        refuse(st, [1, 3])


def test_meta_guard_is_checked_like_every_known_key() -> None:
    ok = check({"guard": {"run": {"existing": 3}, "suspect": True, "reasons": ["why"]}}, 5)
    assert ok.guard is not None and ok.guard.suspect and ok.guard.reasons == ("why",)
    assert check({"guard": {"clear": [2]}}, 5).guard.clear == (2,)  # type: ignore[union-attr]
    for bad in ({"suspect": "yes"}, {"clear": [5]}, {"clear": [-1]}, {"run": {"x": 1.5}}, {"run": []},
                {"reasons": ["x" * 201]}, {"other": 1}, {"tune": {"a": -1}}, []):
        with pytest.raises(IntegrityError):
            check({"guard": bad}, 5)


def test_slow_encryption_under_the_per_run_minimum_adds_up_over_recent_runs() -> None:
    t = dict(DEFAULTS)
    one = counts(jumped=1)  # 1 file of 200 per run: far under the per-run minimum (3 files and 2 %)
    assert score(one, [], t, []) == []
    assert score(one, [], t, [one, one]) == []  # 3 files: 1.5 %, under the share
    why = score(one, [], t, [one, one, counts(), one])  # 4 files over 5 runs: 2 %
    assert len(why) == 1 and "4 of 200 existing files (2.0%) rewritten to near-random content over the last 5 runs" \
        in why[0] and "slow encryption" in why[0]
    assert score(counts(), [], t, [one] * 9) == []  # a run that rewrote nothing is never the one marked
    assert score(one, [], t, [counts()] * 8 + [one] * 3) == []  # only the last slow_runs (10) runs count
    assert score(one, [], {**t, "slow_runs": 0}, [one] * 5) == []  # turned off
    assert score(one, [counts()] * 6, t, [one] * 5) != []  # a quiet baseline: still on
    busy = [counts(jumped=j) for j in (1, 2, 1, 0, 1, 2)]  # this vault rewrites an opaque file most runs
    assert score(one, busy, t, [one] * 9) == []


def test_deferred_signals_settle_in_batches_to_what_take_gives() -> None:
    """The pipeline's batched sampling (defer, settle) gives each file the entropy a file-by-file
    take gives, for tiny, empty, text, random and long multi-piece files (past HOLD_BYTES)."""
    from sigmavault.engine.content.signals import HOLD_BYTES, SETTLE_FILES

    files = [os.urandom(100), b"", TEXT, os.urandom(5000), b"\x89PNG" + os.urandom(20_000)]
    files += [os.urandom(1000 + 37 * i) for i in range(SETTLE_FILES + 5)]  # one automatic settle, then the rest
    long_pieces = [os.urandom(3 * 2048) for _ in range(HOLD_BYTES // 2048)]  # counted before it ends
    one, batched = Sampler(), Sampler()
    expected, deferred = [], []
    for token, data in enumerate(files):
        for s in (one, batched):
            s.piece(token, 0, data)
        expected.append(one.take(token))
        deferred.append(batched.defer(token))
    token = len(files)
    for i, piece in enumerate(long_pieces):
        for s in (one, batched):
            s.piece(token, i, piece)
    expected.append(one.take(token))
    deferred.append(batched.defer(token))
    assert all(d.entropy == -1.0 for d in deferred[SETTLE_FILES + 1:])  # not settled yet (the empty one never counts)
    batched.settle()
    assert [d.head for d in deferred] == [e.head for e in expected]
    assert [d.entropy for d in deferred] == pytest.approx([e.entropy for e in expected], abs=1e-9)
    assert deferred[0].entropy == -1.0 and deferred[1].entropy == -1.0 and deferred[-1].entropy > 7.9
