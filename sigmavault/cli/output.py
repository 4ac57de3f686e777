"""What the CLI prints: human text for a terminal, or ``--json`` for scripts.

Every command reports through one :class:`Output`. In JSON mode a command writes exactly one
JSON document to stdout (:meth:`Output.result`), or, for streams (import, export, cat), one JSON
object per line (:meth:`Output.event`) ending with a ``{"event":"done",…}`` line. Human mode
prints plain lines that fit a terminal; notes and warnings go to stderr so stdout stays data.
Errors are printed by ``main`` only: one line on stderr and, in JSON mode, an error document
(``{"error":{…}}``) unless the command already wrote its result document (``verify`` with problems).
"""

from __future__ import annotations

import json
import stat as stat_mod
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

from .. import Stat


class Output:
    def __init__(self, json_mode: bool, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.json = json_mode
        self._out = stdout or sys.stdout
        self._err = stderr or sys.stderr
        #: a result document was written (an error then goes only to stderr, keeping one document)
        self.has_result = False

    def result(self, doc: dict[str, Any], human: str | Iterable[str] | None = None) -> None:
        """The command's result: ``doc`` as one JSON document, or the ``human`` lines."""
        if self.json:
            self._write_json(doc)
            self.has_result = True
        elif human is not None:
            self.lines([human] if isinstance(human, str) else human)

    def event(self, doc: dict[str, Any]) -> None:
        """One JSON line of a stream (ignored in human mode)."""
        if self.json:
            self._write_json(doc)

    def lines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self._out.write(line + "\n")
        self._out.flush()

    def note(self, text: str) -> None:
        """A remark for the person at the terminal (stderr; not in JSON mode)."""
        if not self.json:
            self._err.write(text + "\n")
            self._err.flush()

    def warn(self, text: str) -> None:
        """A warning (stderr, always: also useful to scripts)."""
        self._err.write(f"sigmavault: warning: {text}\n")
        self._err.flush()

    def _write_json(self, doc: dict[str, Any]) -> None:
        self._out.write(json.dumps(doc, separators=(",", ":")) + "\n")
        self._out.flush()


_TYPE_BITS = {"file": stat_mod.S_IFREG, "dir": stat_mod.S_IFDIR, "symlink": stat_mod.S_IFLNK}


def stat_doc(st: Stat) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": st.name, "type": st.type, "size": st.size, "mode": f"{st.mode:04o}", "uid": st.uid, "gid": st.gid,
        "mtime_ns": st.mtime_ns,
    }
    if st.target is not None:
        doc["target"] = st.target
    return doc


def long_lines(entries: list[Stat]) -> list[str]:
    """``ls -l`` lines: mode, size, modification time, name (and a symlink's target), sizes right-aligned
    to the widest one so the columns line up whatever the sizes (``1023.9 KiB`` is ten characters)."""
    sizes = [human_size(st.size) for st in entries]
    width = max(map(len, sizes), default=0)
    out = []
    for st, size in zip(entries, sizes, strict=True):
        mode = stat_mod.filemode(_TYPE_BITS[st.type] | st.mode)
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(st.mtime_ns / 1e9))
        shown = st.name + ("/" if st.type == "dir" else "")
        if st.target is not None:
            shown += f" -> {st.target}"
        out.append(f"{mode} {size:>{width}}  {when}  {shown}")
    return out


_PLURALS = {"directory": "directories", "entry": "entries"}


def count(n: int, noun: str) -> str:
    """``1 file``, ``2 files``, ``1 directory``, ``0 directories``."""
    return f"{n} {noun if n == 1 else _PLURALS.get(noun, noun + 's')}"


def human_size(n: int) -> str:
    """Binary units everywhere (the progress bar too): ``512 B``, ``1.5 KiB``, ``110.0 MiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def iso_time(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def shown(text: str, limit: int = 80) -> str:
    """Untrusted text (a label or host name another writer recorded) made safe for one terminal
    line: every non-printable character (controls, escapes, line breaks, bidi overrides) becomes a
    ``\\x..``/``\\u....`` escape, and the result is cut to ``limit`` characters with ``…``."""
    out = "".join("\\\\" if c == "\\" else c if c.isprintable() else ascii(c)[1:-1] for c in text)
    return out if len(out) <= limit else out[: limit - 1] + "…"
