"""Every command starts fast: the CLI loads no optional heavy library until a command needs it.

Each check runs in a fresh interpreter and reads ``sys.modules`` there: the S3 and Azure SDKs,
numpy (the guard's sampler), aiohttp, prometheus_client, fsspec, pyfuse3 and rich (the progress
bar), as well as statistics and multiprocessing, stay unloaded by ``import sigmavault.cli.main``,
by ``sigmavault --help`` and by ``ls`` on a local vault (issue 15: they cost every small command a
large share of its time).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from clitools import Cli, drive_tty, env_for, make_tree

HEAVY = ("botocore", "aiobotocore", "azure", "numpy", "aiohttp", "prometheus_client", "fsspec", "pyfuse3", "rich",
         "statistics", "multiprocessing")  # and two of the standard library's: the guard's median, the mixer's pool

_LOADED = f"""
import json, sys
print(json.dumps(sorted({{m.partition(".")[0] for m in sys.modules}} & set({list(HEAVY)!r}))))
"""


def _loaded_after(code: str, home: Path) -> list[str]:
    """The heavy libraries loaded once ``code`` has run in a new interpreter (its own stdout is dropped)."""
    script = ("import contextlib, io\nwith contextlib.redirect_stdout(io.StringIO()):\n"
              + "".join(f"    {line}\n" for line in code.splitlines()) + _LOADED)
    p = subprocess.run([sys.executable, "-c", script], env=env_for(home), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    loaded: list[str] = json.loads(p.stdout.splitlines()[-1])
    return loaded


def test_importing_the_cli_loads_no_heavy_library(tmp_path: Path) -> None:
    assert _loaded_after("import sigmavault.cli.main", tmp_path) == []


def test_help_loads_no_heavy_library(tmp_path: Path) -> None:
    code = ("from sigmavault.cli.main import run\ntry:\n    run(['--help'])\nexcept SystemExit as e:\n"
            "    assert e.code == 0")
    assert _loaded_after(code, tmp_path) == []


def test_ls_on_a_local_vault_loads_no_heavy_library(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    cli = Cli(tmp_path / "home", vault)
    cli.ok("create", "--kdf", "minimum")
    cli.ok("mkdir", "/docs")
    code = f"from sigmavault.cli.main import run\nassert run(['--vault', {str(vault)!r}, 'ls', '/']) == 0"
    assert _loaded_after(code, tmp_path / "home") == []


def test_on_a_terminal_the_bars_still_draw(tmp_path: Path) -> None:
    """The progress bars, now imported on use, still run on a TTY: import, export and prune."""
    vault, home = tmp_path / "vault", tmp_path / "home"
    Cli(home, vault).ok("create", "--kdf", "minimum")
    base = [sys.executable, "-m", "sigmavault", "--vault", str(vault)]
    src = make_tree(tmp_path / "src")
    for argv in (["import", str(src)], ["export", "/docs", str(tmp_path / "out")], ["prune"]):
        code, transcript, _ = drive_tty([*base, *argv], env_for(home))
        assert code == 0 and "Traceback" not in transcript, (argv, transcript)
    assert (tmp_path / "out" / "a.txt").read_text() == "hello\n"


def test_the_check_sees_a_heavy_library(tmp_path: Path) -> None:
    """The probe itself: a library the code did load is reported."""
    assert _loaded_after("import numpy", tmp_path) == ["numpy"]
