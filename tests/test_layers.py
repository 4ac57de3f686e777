"""The structure of the product, enforced: which room may import which, no cycles, no giant modules.

Rooms, from the bottom up (a room may import its own modules and the rooms listed for it)::

    engine.errors                      the error tree: imports nothing of ours
    engine.format, engine.keys         pure bytes and keys: no asyncio, no I/O, no backends, no actors
    backends                           object stores: errors and format only
    actors                             pipeline stages: format, keys, errors and backends.base (the protocol)
    engine.local                       this device: state folder, sealed cache, settings
    engine.repo                        objects in a backend: store, packs, index, history, key changes
    engine.catalog                     the tree, its pages in the store, merge, diff
    engine.content                     file bytes through the actors: the write pipeline, the chunk reader
    engine.transfer                    local trees in and out: import, export, verify
    engine (front)                     Vault, Snapshot, committer, opening, results: any engine room
    mount                              FUSE: the engine front and its errors
    sigmavault (cli, config, __init__) the public front: anything

The engine never imports the public front (``sigmavault.__init__``, ``config``, ``cli``) nor the mount:
settings are passed in. Imports under ``TYPE_CHECKING`` count like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOPS = {"engine": "sigmavault.engine", "actors": "sigmavault.actors", "backends": "sigmavault.backends",
        "mount": "sigmavault.mount", "sigmavault": "sigmavault"}
MAX_LINES = 450

PURE = {"engine.errors", "engine.format", "engine.keys"}
ALLOWED: dict[str, set[str]] = {
    "engine.errors": set(),
    "engine.format": {"engine.errors", "engine.keys"},
    "engine.keys": {"engine.errors", "engine.format"},
    "backends": {"engine.errors", "engine.format"},
    "actors": PURE | {"backends.base"},
    "engine.local": PURE | {"backends"},
    "engine.repo": PURE | {"backends", "actors", "engine.local"},
    "engine.catalog": PURE | {"backends", "actors", "engine.local", "engine.repo"},
    "engine.content": PURE | {"backends", "actors", "engine.local", "engine.repo", "engine.catalog"},
    "engine.transfer": PURE | {"backends", "actors", "engine.local", "engine.repo", "engine.catalog",
                               "engine.content"},
    "engine": {"engine", "backends", "actors"},
    "mount": {"engine", "mount"},
    "sigmavault": {"engine", "backends", "actors", "mount", "sigmavault"},
}
NO_ASYNCIO = {"engine.errors", "engine.format", "engine.keys"}


def modules() -> dict[str, Path]:
    """Dotted name (without the ``sigmavault.`` prefix) of every product module -> its file."""
    out = {}
    for top, pkg in TOPS.items():
        base = ROOT / top
        for p in base.rglob("*.py"):
            rel = p.relative_to(base).with_suffix("").parts
            if top == "sigmavault" and rel[0] in TOPS:
                continue  # the symlinks to the four rooms
            parts = pkg.split(".")[1:] + [x for x in rel if x != "__init__"]
            out[".".join(parts) or "sigmavault"] = p
    return out


def room(mod: str) -> str:
    """The room a module belongs to: the longest key of ALLOWED that is it or a parent of it."""
    best = "sigmavault"
    for r in ALLOWED:
        if (mod == r or mod.startswith(r + ".")) and len(r) > len(best if best != "sigmavault" else ""):
            best = r
    return best


def imports(mod: str, path: Path, known: set[str]) -> set[str]:
    """The product modules (and ``asyncio``) ``mod`` imports, resolved to dotted names."""
    full = "sigmavault" if mod == "sigmavault" else f"sigmavault.{mod}"
    pkg = full if path.name == "__init__.py" else full.rpartition(".")[0]

    def ours(name: str) -> str | None:
        """``name`` (absolute) as a key of ``known``, or None when it is not a product module."""
        if name == "sigmavault":
            return "sigmavault"
        return name.removeprefix("sigmavault.") if name.startswith("sigmavault.") else None

    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "asyncio":
                    found.add("asyncio")
                elif (m := ours(a.name)) is not None:
                    found.add(m)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                up = pkg.split(".")
                base = ".".join(up[: len(up) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
                if base.split(".")[0] == "asyncio":
                    found.add("asyncio")
            b = ours(base)
            if b is None:
                continue
            for a in node.names:  # ``from pkg import module`` imports the module, else the package itself
                sub = f"{base}.{a.name}"
                m = ours(sub)
                found.add(m if m in known else b)
    found.discard(mod)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports(m, p, known) for m, p in mods.items()}


def allowed(src: str, dst: str) -> bool:
    if dst == "asyncio":
        return room(src) not in NO_ASYNCIO
    rs, rd = room(src), room(dst)
    if rs == rd:
        return True
    targets = ALLOWED[rs]
    if rs == "engine":  # the front may use every engine room, never the public front or the mount
        return dst.startswith("engine") or rd in targets
    return any(dst == t or dst.startswith(t + ".") or rd == t for t in targets)


def test_rooms_import_only_what_the_layers_allow() -> None:
    bad = sorted(f"{src} -> {dst}" for src, deps in graph().items() for dst in deps if not allowed(src, dst))
    assert not bad, "imports against the layer rules:\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    g = graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, path: list[str]) -> None:  # iterative enough for our depth; recursion is fine here
        state[m] = 1
        for d in sorted(g.get(m, ())):
            if d not in g:
                continue
            if state.get(d) == 1:
                cycles.append(path[path.index(d):] + [d] if d in path else [m, d])
            elif d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_module_over_the_size_limit() -> None:
    big = sorted(f"{m}: {n} lines" for m, p in modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES)
    assert not big, f"modules over {MAX_LINES} lines:\n" + "\n".join(big)


def test_the_checker_sees_a_bad_import_and_a_cycle() -> None:
    """The rules themselves: a format module importing a backend or asyncio, a backend importing the
    engine front, the engine importing the CLI; and a two-module cycle."""
    assert not allowed("engine.format.pages", "backends.base")
    assert not allowed("engine.keys.slots", "asyncio")
    assert not allowed("backends.s3", "engine.vault")
    assert not allowed("engine.vault", "config")
    assert not allowed("engine.repo.store", "mount.files")
    assert not allowed("actors.writer", "engine.vault")
    assert allowed("actors.mixer", "engine.format.framing")
    assert allowed("engine.vault", "engine.repo.store")
    assert room("engine.format.pages") == "engine.format" and room("engine.vault") == "engine"
