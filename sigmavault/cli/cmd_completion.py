"""``sigmavault completion bash|zsh``: print a shell completion script made from the CLI's own parser.

The script is generated, not written by hand: :func:`tree` walks the argparse subparsers
``main.build_parser`` registered (every command, its options, the options' fixed choices, nested
commands such as ``key list|passwd|add|remove``, positional choices such as ``bash|zsh``), so a new
command or option completes as soon as it exists. Options hidden from ``--help`` are left out.
The script knows words, and the names of named vaults: after ``--vault`` and ``vaults remove`` it
asks ``sigmavault vaults list --names`` (which reads ``vaults.toml`` and opens no vault). Paths
inside a vault are not completed (that would need the passphrase), and everything else falls back
to the shell's file-name completion. This command opens no vault and asks for nothing.

Install: ``sigmavault completion bash > ~/.local/share/bash-completion/completions/sigmavault``,
or for zsh ``sigmavault completion zsh > "${fpath[1]}/_sigmavault"`` (or ``source <(…)`` in either).
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field
from typing import Any

from .access import Options
from .output import Output

SHELLS = ("bash", "zsh")
_ROOT_OPTIONS = ("-h", "--help", "--version")  # the top parser's own, which ``common`` does not carry
#: where a vault name may come (also a path or URL after --vault); completed from `vaults list --names`
_NAME_AFTER, _NAME_CMD = "--vault", "vaults remove"


@dataclass
class Node:
    """What may follow one command path: its words (subcommands or positional choices) and options."""

    words: dict[str, str] = field(default_factory=dict)  # word -> its help line
    options: list[str] = field(default_factory=list)
    takes_value: set[str] = field(default_factory=set)  # options that consume the next word
    choices: dict[str, list[str]] = field(default_factory=dict)  # option -> the values it accepts
    children: dict[str, Node] = field(default_factory=dict)  # subcommand -> what follows it


def _visible(action: argparse.Action) -> bool:
    return action.help != argparse.SUPPRESS


def _add_options(node: Node, actions: list[argparse.Action]) -> None:
    for a in actions:
        if not a.option_strings or not _visible(a):
            continue
        for opt in a.option_strings:
            if opt not in node.options:
                node.options.append(opt)
            if a.nargs != 0:  # store, append, choices: the next word is the value
                node.takes_value.add(opt)
                if a.choices is not None:
                    node.choices[opt] = [str(c) for c in a.choices]


def _add_commands(node: Node, sub: argparse._SubParsersAction[Any]) -> None:
    helps = {c.dest: c.help or "" for c in sub._choices_actions}
    for name, parser in sub.choices.items():
        if helps.get(name) == argparse.SUPPRESS:
            continue
        node.words[name] = helps.get(name, "")
        node.children[name] = _parser_node(parser)


def _parser_node(parser: argparse.ArgumentParser) -> Node:
    node = Node()
    _add_options(node, parser._actions)
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            _add_commands(node, a)
        elif not a.option_strings and a.choices is not None and _visible(a):
            node.words.update({str(c): "" for c in a.choices})
    return node


def tree(sub: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> Node:
    """The completion tree of the whole CLI: the top level (global options, commands) and below."""
    root = Node(options=list(_ROOT_OPTIONS))
    _add_options(root, common._actions)
    _add_commands(root, sub)
    return root


def _paths(node: Node, prefix: str = "") -> list[tuple[str, Node]]:
    out = [(prefix, node)]
    for name, child in node.children.items():
        out += _paths(child, f"{prefix} {name}".strip())
    return out


def _values(root: Node) -> tuple[list[str], list[tuple[str, str, list[str]]]]:
    """Every option that takes a value (anywhere), and the fixed choices per (path, option)."""
    takes: set[str] = set()
    choices = []
    for path, node in _paths(root):
        takes |= node.takes_value
        choices += [(path, opt, vals) for opt, vals in node.choices.items()]
    return sorted(takes), choices


def _child_cases(root: Node, indent: str) -> str:
    """The shell ``case`` arms that step into a subcommand (the same in bash and zsh)."""
    q = shlex.quote
    return "\n".join(f"{indent}{q(f'{path} {name}'.strip())}) cmd={q(f'{path} {name}'.strip())}; continue;;"
                     for path, n in _paths(root) for name in n.children)


def bash_script(root: Node) -> str:
    takes, choices = _values(root)
    q = shlex.quote
    cases = "\n".join(f"        {q(path)}) words={q(' '.join(n.words))}; opts={q(' '.join(n.options))};;"
                      for path, n in _paths(root))
    children = _child_cases(root, " " * 12)
    values = "\n".join(f"        {q(f'{path}|{opt}')}) COMPREPLY=($(compgen -W {q(' '.join(vals))} -- \"$cur\"));"
                       " return;;" for path, opt, vals in choices)
    return f"""# bash completion for sigmavault (generated by `sigmavault completion bash`)
_sigmavault() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="" cmd="" words="" opts="" w i
    (( COMP_CWORD > 0 )) && prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    local takes=" {' '.join(takes)} "
    for (( i = 1; i < COMP_CWORD; i++ )); do
        w="${{COMP_WORDS[i]}}"
        [[ $w == -* ]] && continue
        [[ $takes == *" ${{COMP_WORDS[i-1]}} "* ]] && continue
        case "${{cmd:+$cmd }}$w" in
{children}
        esac
    done
    case "$cmd|$prev" in
{values}
    esac
    if [[ $prev == {_NAME_AFTER} || ( $cmd == {q(_NAME_CMD)} && $cur != -* ) ]]; then
        COMPREPLY=($(compgen -W "$("${{COMP_WORDS[0]}}" vaults list --names 2>/dev/null)" -- "$cur"))
        return  # no name fits: -o default completes file names (a path)
    fi
    [[ $takes == *" $prev "* ]] && {{ COMPREPLY=(); return; }}
    case "$cmd" in
{cases}
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    elif [[ -n $words ]]; then
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    else
        COMPREPLY=()  # a free argument: -o default completes file names
    fi
}}
complete -o default -F _sigmavault sigmavault
"""


def _zsh_words(node: Node) -> str:
    return " ".join(shlex.quote(w.replace(":", "\\:") + ":" + h) for w, h in node.words.items())


def zsh_script(root: Node) -> str:
    takes, choices = _values(root)
    q = shlex.quote
    cases = "\n".join(f"    {q(path)}) cands=({_zsh_words(n)}); opts=({' '.join(map(q, n.options))});;"
                      for path, n in _paths(root))
    children = _child_cases(root, " " * 6)
    values = "\n".join(f"    {q(f'{path}|{opt}')}) compadd -- {' '.join(map(q, vals))}; return;;"
                       for path, opt, vals in choices)
    return f"""#compdef sigmavault
# zsh completion for sigmavault (generated by `sigmavault completion zsh`)
_sigmavault() {{
  local cur=${{words[CURRENT]}} prev=${{words[CURRENT-1]}} cmd="" w i
  local -a takes cands opts
  takes=({' '.join(map(q, takes))})
  for (( i = 2; i < CURRENT; i++ )); do
    w=${{words[i]}}
    [[ $w == -* ]] && continue
    (( ${{takes[(Ie)${{words[i-1]}}]}} )) && continue
    case "${{cmd:+$cmd }}$w" in
{children}
    esac
  done
  case "$cmd|$prev" in
{values}
  esac
  if [[ $prev == {_NAME_AFTER} || ( $cmd == {q(_NAME_CMD)} && $cur != -* ) ]]; then
    compadd -- ${{(f)"$(${{words[1]}} vaults list --names 2>/dev/null)"}}
    [[ $prev == {_NAME_AFTER} ]] && _files
    return
  fi
  (( ${{takes[(Ie)$prev]}} )) && {{ _files; return; }}
  case "$cmd" in
{cases}
  esac
  if [[ $cur == -* ]]; then
    compadd -- $opts
  elif (( ${{#cands}} )); then
    _describe -t commands 'sigmavault command' cands
  else
    _files
  fi
}}
if [[ ${{zsh_eval_context[-1]}} == loadautofunc ]]; then
  _sigmavault "$@"
else
  compdef _sigmavault sigmavault
fi
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("completion", parents=[common], help="print a shell completion script (bash or zsh)",
                       description="Print a completion script for SHELL on stdout; it opens no vault. "
                                   "bash: `source <(sigmavault completion bash)`; "
                                   "zsh: `source <(sigmavault completion zsh)` after compinit.")
    p.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash or zsh")

    async def run(opts: Options, args: argparse.Namespace, out: Output) -> None:
        root = tree(sub, common)  # at run time: every command is registered by then
        script = bash_script(root) if args.shell == "bash" else zsh_script(root)
        out.result({"shell": args.shell, "script": script}, script.splitlines())

    p.set_defaults(handler=run)
