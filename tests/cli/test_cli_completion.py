"""``sigmavault completion bash|zsh``: scripts generated from the parser, checked in a real bash (and zsh -n)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import pytest
from clitools import Cli

from sigmavault.cli.cmd_completion import Node, tree
from sigmavault.cli.main import build_parser

BASH = shutil.which("bash")
ZSH = shutil.which("zsh")


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both scripts, from the real command run with no vault, no passphrase and an empty home."""
    home = tmp_path_factory.mktemp("home")
    cli = Cli(home, None)
    out = {}
    for shell in ("bash", "zsh"):
        r = cli.ok("completion", shell, passphrase=None)
        assert r.err == ""
        path = home.parent / f"sigmavault.{shell}"
        path.write_text(r.out)
        out[shell] = path
    assert list(home.iterdir()) == []  # no vault opened, no state folder made
    return out


def complete(script: Path, *words: str) -> list[str]:
    """What the bash function offers for the command line ``words`` (the last one is being typed)."""
    assert BASH is not None
    line = " ".join(f"'{w}'" for w in words)
    code = (f'source "{script}"\nCOMP_WORDS=({line})\nCOMP_CWORD={len(words) - 1}\n'
            'COMP_LINE="${COMP_WORDS[*]}"\n_sigmavault\nprintf "%s\\n" "${COMPREPLY[@]}"\n'
            'complete -p sigmavault >&2\n')
    done = subprocess.run([BASH, "--norc", "--noprofile", "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "-F _sigmavault" in done.stderr  # the function is registered for the command
    return [w for w in done.stdout.splitlines() if w]


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_bash_script_is_valid_and_completes_commands_subcommands_and_options(scripts: dict[str, Path]) -> None:
    bash = scripts["bash"]
    check = subprocess.run([BASH or "bash", "-n", str(bash)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    assert complete(bash, "sigmavault", "ex") == ["export"]
    assert complete(bash, "sigmavault", "key", "") == ["list", "passwd", "add", "device", "remove"]
    assert complete(bash, "sigmavault", "--json", "key", "re") == ["remove"]  # global options are skipped
    after_value = complete(bash, "sigmavault", "--vault", "key", "")  # "key" is --vault's value, not a command
    assert "create" in after_value and "list" not in after_value
    imports = complete(bash, "sigmavault", "import", "--")
    assert {"--to", "--help", "--vault", "--json", "--passphrase-file"} <= set(imports)
    assert "--kdf" not in imports and "--full" not in imports
    assert complete(bash, "sigmavault", "import", "--to", "/x", "--t") == ["--to"]
    assert complete(bash, "sigmavault", "key", "add", "--kdf", "") == ["interactive", "minimum", "strong"]
    assert complete(bash, "sigmavault", "key", "add", "--label", "") == []  # a free value: file names
    assert complete(bash, "sigmavault", "import", "") == []  # a local path: bash's default completion
    assert complete(bash, "sigmavault", "completion", "") == ["bash", "zsh"]
    assert "completion" in complete(bash, "sigmavault", "")
    assert "--child" not in complete(bash, "sigmavault", "mount", "--")  # hidden from --help: not offered


@pytest.mark.skipif(ZSH is None, reason="zsh is not installed (scripts/bootstrap --test installs it)")
def test_zsh_script_parses(scripts: dict[str, Path]) -> None:
    check = subprocess.run([ZSH or "zsh", "-n", str(scripts["zsh"])], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr


def test_zsh_script_names_every_command_with_its_help(scripts: dict[str, Path]) -> None:
    text = scripts["zsh"].read_text()
    assert text.startswith("#compdef sigmavault\n") and "compdef _sigmavault sigmavault" in text
    assert "'export:copy a vault file or tree" in text and "'key add')" in text
    assert "'key add|--kdf') compadd -- interactive minimum strong" in text


def _all_nodes(node: Node) -> list[Node]:
    return [node, *(n for child in node.children.values() for n in _all_nodes(child))]


def test_the_tree_follows_the_parser_and_value_options_are_unambiguous() -> None:
    """The scripts skip an option's value using one list of value-taking options for every command:
    that is exact only while no option is a flag in one command and takes a value in another."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    common = next(iter(sub.choices.values()))  # any command's parser carries the global options
    root = tree(sub, common)
    assert set(root.words) == set(sub.choices) and "completion" in root.words
    assert list(root.children["key"].words) == ["list", "passwd", "add", "device", "remove"]
    nodes = _all_nodes(root)
    takes = set().union(*(n.takes_value for n in nodes))
    flags = {o for n in nodes for o in n.options if o not in n.takes_value}
    assert not takes & flags, takes & flags


def test_bad_shell_is_a_usage_error(tmp_path: Path) -> None:
    r = Cli(tmp_path / "home", None)("completion", "fish", passphrase=None)
    assert r.code == 2 and "fish" in r.one_line_error()
    r = Cli(tmp_path / "home", None)("completion", passphrase=None)
    assert r.code == 2


def test_json_mode_wraps_the_script(tmp_path: Path) -> None:
    doc = Cli(tmp_path / "home", None).ok("--json", "completion", "bash", passphrase=None).json()
    assert doc["shell"] == "bash" and doc["script"].startswith("# bash completion for sigmavault")
