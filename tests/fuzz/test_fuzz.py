"""The fuzz harnesses (fuzz/): every seed replays cleanly and fast; the slow run fuzzes each one.

The slow run gives each harness ``SIGMAVAULT_FUZZ_SECONDS`` of fuzzing (default 2: the instrumented
seed corpus, then a few hundred to a hundred thousand mutated inputs, in about 7 s of wall time, most
of it atheris instrumenting the package); ``SIGMAVAULT_FUZZ_SECONDS=20`` (or more) for a longer run.

The rule each harness checks is that only VaultError subclasses escape a parser of hostile
bytes, in bounded time and memory. The seed corpus also keeps every input that once broke that
rule, so the fast replay is the regression test for all fuzz findings.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fuzz import run
from fuzz.common import allowed
from sigmavault.engine.errors import IntegrityError

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "fuzz" / "corpus"
PER_INPUT_SECONDS = 2.0
SLOW_SECONDS = max(1, int(os.environ.get("SIGMAVAULT_FUZZ_SECONDS", "2")))  # 0 would be libFuzzer's "forever"


def test_every_harness_is_run_and_seeded() -> None:
    files = {p.stem.removeprefix("fuzz_") for p in (ROOT / "fuzz").glob("fuzz_*.py")}
    assert files == set(run.HARNESSES) == {p.name for p in CORPUS.iterdir()}


def test_the_rule_lets_only_vault_errors_through() -> None:
    def integrity() -> None:
        raise IntegrityError()

    def bug() -> None:
        raise ValueError("a parser bug")

    assert allowed(integrity) is None
    with pytest.raises(ValueError):
        allowed(bug)


@pytest.mark.parametrize("name", run.HARNESSES)
def test_seed_corpus_replays(name: str) -> None:
    harness = importlib.import_module(f"fuzz.fuzz_{name}")
    seeds = sorted((CORPUS / name).iterdir())
    assert seeds, f"no seeds for {name}"
    for seed in seeds:
        start = time.monotonic()
        harness.test_one_input(seed.read_bytes())  # raises on any finding
        assert time.monotonic() - start < PER_INPUT_SECONDS, f"{seed.name} is slow"


@pytest.mark.slow
@pytest.mark.parametrize("name", run.HARNESSES)
def test_fuzz(name: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "fuzz.run", name, "--work", str(tmp_path),
         f"-max_total_time={SLOW_SECONDS}", "-print_final_stats=1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=SLOW_SECONDS * 6 + 120,
    )
    execs = re.search(r"number_of_executed_units: (\d+)", proc.stderr)
    assert proc.returncode == 0, proc.stderr[-4000:]
    seeds = len(list((CORPUS / name).iterdir()))
    assert execs is not None and int(execs.group(1)) > seeds, "the seed corpus did not all run under instrumentation"
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("timeout-*"))
