"""Named vaults: short names for vault locations, kept in ``vaults.toml`` in the config directory.

``sigmavault vaults add NAME URL…`` records them; ``--vault NAME`` (or ``SIGMAVAULT_VAULT=NAME``,
also for the library's default vault) then stands for the URLs. A value is a name only if it is a
word without ``/`` or ``:`` that the file holds: anything else (and a word the file does not hold,
or no file at all) is a path or URL, as before named vaults existed. The file is read only when a
value looks like a name, so a URL works even beside a broken file. The format::

    [vaults."photos"]
    places = ["s3://bucket/photos?endpoint=http://127.0.0.1:8333&path_style=true"]

A place's endpoint options ride in its URL's query (what ``?endpoint=``… accepts today);
credentials never go into this file, they keep coming from the environment or the provider's
profile. Writes take a lock on the config directory, go to a new file (mode 0600) and replace the
old one, so a crash leaves the old or the new file, never half of one; comments are not kept.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from . import config
from .engine.errors import LocalIOError, UsageError

FILE = "vaults.toml"
#: what ``vaults add`` accepts as a name: starts with a letter or digit, no ``/``, ``:`` or spaces
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NAME_RULE = "a name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def path() -> Path:
    return config.config_dir() / FILE


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise UsageError(f"invalid vault name {name!r}: {NAME_RULE} (no '/' or ':', which mark a path or URL)")
    return name


def load() -> dict[str, list[str]]:
    """Every named vault -> its places, in the file's order; {} when there is no file.

    UsageError for a file that is not valid TOML or not in this module's shape (naming the line or
    the entry), LocalIOError for one that cannot be read.
    """
    where = path()
    try:
        text = where.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError:
        raise UsageError(f"{where} is not valid TOML (not UTF-8): fix or remove it") from None
    except OSError as exc:
        raise LocalIOError(f"cannot read {where}: {exc.strerror}") from exc
    import tomllib  # here: only a command that finds the file pays for the parser

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{where} is not valid TOML ({exc}): fix or remove it") from None
    return _entries(doc, where)


def _entries(doc: dict[str, object], where: Path) -> dict[str, list[str]]:
    if set(doc) - {"vaults"}:
        raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(set(doc) - {'vaults'}))}; only [vaults.NAME]")
    table = doc.get("vaults", {})
    if not isinstance(table, dict):
        raise UsageError(f"{where}: 'vaults' must be a table of [vaults.NAME] entries")
    out: dict[str, list[str]] = {}
    for name, entry in table.items():
        if not NAME.fullmatch(name):
            raise UsageError(f"{where}: invalid vault name {name!r}: {NAME_RULE}")
        places = entry.get("places") if isinstance(entry, dict) else None
        if (not isinstance(entry, dict) or set(entry) != {"places"} or not isinstance(places, list) or not places
                or not all(isinstance(p, str) and p for p in places)):
            raise UsageError(f"{where}: vault {name!r} must hold exactly 'places = [\"URL\", …]' (non-empty strings)")
        out[name] = list(places)
    return out


def resolve(values: Sequence[str]) -> list[str]:
    """The places ``values`` (``--vault`` arguments, in order) stand for: each name its URLs, anything
    else itself. The file is read only if some value looks like a name."""
    candidates = [v for v in values if NAME.fullmatch(v)]
    known = load() if candidates else {}
    out: list[str] = []
    for value in values:
        out += known.get(value, [value])
    return out


def default_vault_url(value: str | None = None) -> str | list[str]:
    """What ``value`` (a path, a URL or a name; None: :func:`config.default_vault`) stands for: one
    URL, or the places of a dispersed vault. Used for ``sigmavault.open(None)`` and fsspec's
    ``vault=``. UsageError for a broken vaults.toml."""
    places = resolve([value or config.default_vault()])
    return places[0] if len(places) == 1 else places


def _quote(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's; DEL, which JSON leaves raw, is escaped too)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def dumps(entries: dict[str, list[str]]) -> str:
    lines = ["# sigmavault's named vaults: `sigmavault vaults add|list|remove` rewrite this file", ""]
    for name, places in entries.items():
        lines += [f"[vaults.{_quote(name)}]", f"places = [{', '.join(map(_quote, places))}]", ""]
    return "\n".join(lines)


@contextlib.contextmanager
def editing() -> Iterator[dict[str, list[str]]]:
    """The entries, locked against other writers; saved when the block ends without an error."""
    folder = config.config_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise LocalIOError(f"cannot use the config folder {folder}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        entries = load()
        yield entries
        _save(entries, fd)
    finally:
        os.close(fd)


def _save(entries: dict[str, list[str]], dir_fd: int) -> None:
    where = path()
    tmp = where.with_name(f".{FILE}.{os.getpid()}.tmp")
    try:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(dumps(entries))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, where)
        os.fsync(dir_fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise LocalIOError(f"cannot write {where}: {exc.strerror}") from exc
