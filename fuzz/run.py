"""Run one harness under atheris (libFuzzer): ``python -m fuzz.run NAME [--work DIR] [libFuzzer flags]``.

The seed corpus ``fuzz/corpus/NAME`` is read but never written: new inputs go to the work
directory (default ``$TMPDIR/sigmavault-fuzz/NAME``), and so do crash artifacts. Defaults bound
each input in time and memory (``-timeout=10 -rss_limit_mb=1536``) and in size
(``-max_len=65536``); later flags override them. Without ``-max_total_time``/``-runs`` it runs
until stopped. Exit status 0: no finding.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
HARNESSES = ("objects", "canonical", "bech32", "pages", "blobrefs", "commits", "keystore", "localstate", "drops")
DEFAULTS = ["-timeout=10", "-rss_limit_mb=1536", "-max_len=65536"]
JSON_HARNESSES = ("canonical", "pages", "commits", "keystore", "localstate", "drops")  # get fuzz/json.dict
# bech32 checksums are pure-Python loops (slow under instrumentation): inputs a little longer than
# an age1pq1 recipient (1,959 characters) reach every check without spending the run on 8 KiB strings
MAX_LEN = {"bech32": 2600}


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in HARNESSES:
        sys.exit(f"usage: python -m fuzz.run {{{'|'.join(HARNESSES)}}} [--work DIR] [libFuzzer flags]")
    name, rest = argv[0], argv[1:]
    work = Path(tempfile.gettempdir()) / "sigmavault-fuzz" / name
    if len(rest) >= 2 and rest[0] == "--work":
        work, rest = Path(rest[1]), rest[2:]
    work.mkdir(parents=True, exist_ok=True)
    import atheris  # type: ignore[import-untyped]  # only here: the harness modules themselves run without it (replay test)

    with atheris.instrument_imports(include=["sigmavault"]):
        module = importlib.import_module(f"fuzz.fuzz_{name}")
    flags = [*DEFAULTS, f"-artifact_prefix={work}/"]
    if name in JSON_HARNESSES:
        flags.append(f"-dict={HERE / 'json.dict'}")
    if name in MAX_LEN:
        flags.append(f"-max_len={MAX_LEN[name]}")
    flags += rest
    atheris.Setup([sys.argv[0], *flags, str(work), str(HERE / "corpus" / name)], module.test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv[1:])
