"""Directory listings of the gateway: a JSON document, or a plain HTML page with every name escaped.

Names come from the vault and a co-writer can choose them (``<script>``, quotes, non-UTF-8
bytes), so the HTML page escapes each name for text and percent-encodes it for links, and the
response forbids scripts outright (``Content-Security-Policy``). Links are absolute vault paths,
so they work whether or not the request URL ended in ``/``.
"""

from __future__ import annotations

import html
import json
import os
from typing import Any
from urllib.parse import quote

from .. import Stat


def entry_doc(st: Stat) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": st.name, "type": st.type, "size": st.size, "mode": f"{st.mode:04o}",
                           "mtime_ns": st.mtime_ns}
    if st.target is not None:
        doc["target"] = st.target
    return doc


def as_json(path: str, generation: int, entries: list[Stat]) -> str:
    return json.dumps({"path": path, "type": "dir", "generation": generation,
                       "entries": [entry_doc(e) for e in entries]}, separators=(",", ":"))


def _href(base: str, parts: list[bytes], is_dir: bool) -> str:
    return base + quote(b"/" + b"/".join(parts), safe="/") + ("/" if is_dir and parts else "")


def _text(name: str) -> str:
    """A vault name for display: undecodable bytes as U+FFFD, then HTML-escaped."""
    return html.escape(os.fsencode(name).decode("utf-8", "replace"), quote=True)


def as_html(base: str, parts: list[bytes], entries: list[Stat]) -> str:
    """The listing page; ``base`` is the raw URL prefix the gateway is mounted at (``""`` at the root)."""
    title = _text("/" + os.fsdecode(b"/".join(parts)))
    rows = []
    if parts:
        rows.append(f'<li><a href="{html.escape(_href(base, parts[:-1], True))}">../</a></li>')
    for st in entries:
        raw = os.fsencode(st.name)
        is_dir = st.type == "dir"
        shown = _text(st.name) + ("/" if is_dir else "")
        extra = f" ({st.size} bytes)" if st.type == "file" else ""
        if st.target is not None:
            extra = f" -&gt; {_text(st.target)}"
        rows.append(f'<li><a href="{html.escape(_href(base, [*parts, raw], is_dir))}">{shown}</a>{extra}</li>')
    body = "\n".join(rows)
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Index of {title}</title></head>\n'
            f"<body><h1>Index of {title}</h1>\n<ul>\n{body}\n</ul></body></html>\n")
