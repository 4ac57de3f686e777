"""Catalog pages and blob refs: the exact encoding of CRYPTO.md §4.5 (pure, synchronous).

A page is canonical JSON (``canonical.dumps``: UTF-8, sorted keys, no whitespace, integers only,
byte strings as unpadded base64url)::

    page  = {"entries":[entry, …],"v":1}                    # entries sorted by raw name bytes, unique
    entry = {"n":b64u(name),"t":"f"|"d"|"l","mode":int,"uid":int,"gid":int,
             "mtime_ns":int,"ctime_ns":int,
             "x":{b64u(xattr name):b64u(value)},            # omitted when empty
             file:    "size":int + ("blobs":[ref, …] | "inline":b64u(content))
             dir:     "pages":[ref, …]                      # kind-2 refs of the child's pages, name order
             symlink: "target":b64u(bytes)}
    ref   = a blob ref (:mod:`.blobref`, re-exported here)

Canonical choices (two writers must produce the same bytes): a file of size ≤ ``INLINE_MAX``
is always inline (an empty file is ``"inline":""``) and a larger one always has ``blobs`` whose
lengths sum to its size; ``mode`` holds permission bits only; an empty directory has
``"pages":[]``. Names are raw POSIX bytes: not empty, not ``.`` or ``..``, no ``/`` or NUL.

Constructors raise ``ValueError`` on a value the format cannot hold (a writer bug).
:func:`decode_page` reads untrusted bytes and ends only in the one ``IntegrityError``: it
requires the exact canonical bytes (decode then re-encode must give the input back).
This module does not seal, fetch or verify blob ids against content; the reader does (§4.1).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal, cast

from ..keys.schedule import KIND_PAGE_PACK
from .blobref import DATA_KINDS, ID_LEN, MIN_OVERHEAD, REF_KINDS, BlobRef, ref_from_json, ref_to_json
from .canonical import array, b64u, dumps, fail, loads, obj, unb64u

INLINE_MAX = 1024  # v1 vault parameter `inline_max` (CRYPTO.md §1.2: the only accepted value)
PAGE_TARGET = 256 * 1024  # default size a writer aims each page below
DEFAULT_CHUNK = 4 * 1024 * 1024  # pages must stay below the vault's chunk_size
MAX_U32 = (1 << 32) - 1
MAX_I64 = (1 << 63) - 1
MIN_I64 = -(1 << 63)
XATTR_NAME_MAX = 255  # Linux XATTR_NAME_MAX
XATTR_SIZE_MAX = 65536  # Linux XATTR_SIZE_MAX
TARGET_MAX = 4096  # PATH_MAX: a symlink target longer than this cannot be created

EntryType = Literal["f", "d", "l"]
FILE: EntryType = "f"
DIR: EntryType = "d"
LINK: EntryType = "l"

_EMPTY_PAGE = len(dumps({"entries": [], "v": 1}))


def valid_name(name: bytes) -> bool:
    """Whether ``name`` is a storable directory entry name (raw bytes, one path component)."""
    return bool(name) and name not in (b".", b"..") and b"/" not in name and b"\x00" not in name


# --- entries ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One directory entry. Files set ``size`` and ``blobs`` or ``inline``; directories ``pages``;
    symlinks ``target``; every field of another type stays ``None``.

    ``xattrs`` are (name, value) pairs; they are kept sorted by name whatever order is given.
    """

    name: bytes
    type: EntryType
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    ctime_ns: int
    xattrs: tuple[tuple[bytes, bytes], ...] = ()
    size: int | None = None
    blobs: tuple[BlobRef, ...] | None = None
    inline: bytes | None = None
    pages: tuple[BlobRef, ...] | None = None
    target: bytes | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, bytes) or not valid_name(self.name):
            raise ValueError("invalid entry name")
        if type(self.mode) is not int or not 0 <= self.mode <= 0o7777:
            raise ValueError("mode must hold permission bits only")
        for ident in (self.uid, self.gid):
            if type(ident) is not int or not 0 <= ident <= MAX_U32:
                raise ValueError("uid/gid out of range")
        for t in (self.mtime_ns, self.ctime_ns):
            if type(t) is not int or not MIN_I64 <= t <= MAX_I64:
                raise ValueError("timestamp out of range")
        for pair in self.xattrs:
            if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(b, bytes) for b in pair)):
                raise ValueError("xattrs are (name, value) pairs of bytes")
            k, v = pair
            if not 0 < len(k) <= XATTR_NAME_MAX or b"\x00" in k or len(v) > XATTR_SIZE_MAX:
                raise ValueError("invalid xattr")
        xattrs = tuple(sorted(self.xattrs))
        if any(a[0] == b[0] for a, b in pairwise(xattrs)):
            raise ValueError("duplicate xattr name")
        object.__setattr__(self, "xattrs", xattrs)
        if self.type == FILE:
            self._check_file()
        elif self.type == DIR:
            if self.size is not None or self.blobs is not None or self.inline is not None or self.target is not None:
                raise ValueError("a directory holds only pages")
            if self.pages is None or any(r.kind != KIND_PAGE_PACK for r in self.pages):
                raise ValueError("a directory lists kind-2 page refs")
        elif self.type == LINK:
            if self.size is not None or self.blobs is not None or self.inline is not None or self.pages is not None:
                raise ValueError("a symlink holds only its target")
            link = self.target
            if not isinstance(link, bytes) or not 0 < len(link) <= TARGET_MAX or b"\x00" in link:
                raise ValueError("invalid symlink target")
        else:
            raise ValueError("entry type must be 'f', 'd' or 'l'")

    def _check_file(self) -> None:
        if self.pages is not None or self.target is not None:
            raise ValueError("a file holds no pages or target")
        size = self.size
        if type(size) is not int or not 0 <= size <= MAX_I64:
            raise ValueError("file size out of range")
        if size <= INLINE_MAX:
            if self.blobs is not None or not isinstance(self.inline, bytes) or len(self.inline) != size:
                raise ValueError("a file of at most INLINE_MAX bytes is stored inline, whole")
        else:
            if self.inline is not None or self.blobs is None:
                raise ValueError("a file above INLINE_MAX bytes is stored in blobs")
            if any(r.kind not in DATA_KINDS or r.length == 0 for r in self.blobs):
                raise ValueError("file blobs are non-empty kind-1 or kind-4 refs")
            if sum(r.length for r in self.blobs) != size:
                raise ValueError("blob lengths do not add up to the file size")


def entry_to_json(e: Entry) -> dict[str, Any]:
    out: dict[str, Any] = {
        "n": b64u(e.name), "t": e.type, "mode": e.mode, "uid": e.uid, "gid": e.gid,
        "mtime_ns": e.mtime_ns, "ctime_ns": e.ctime_ns,
    }
    if e.xattrs:
        out["x"] = {b64u(k): b64u(v) for k, v in e.xattrs}
    if e.size is not None:
        out["size"] = e.size
    if e.inline is not None:
        out["inline"] = b64u(e.inline)
    if e.blobs is not None:
        out["blobs"] = [ref_to_json(r) for r in e.blobs]
    if e.pages is not None:
        out["pages"] = [ref_to_json(r) for r in e.pages]
    if e.target is not None:
        out["target"] = b64u(e.target)
    return out


_COMMON = {"n", "t", "mode", "uid", "gid", "mtime_ns", "ctime_ns"}
#: the exact fields of each kind of entry, without and with ``"x"`` (xattrs)
_FIELDS = {kind: (frozenset(_COMMON | extra), frozenset(_COMMON | extra | {"x"}))
           for kind, extra in (("inline", {"size", "inline"}), (FILE, {"size", "blobs"}), (DIR, {"pages"}),
                               (LINK, {"target"}))}


def _xattrs_from_json(value: object) -> tuple[tuple[bytes, bytes], ...]:
    if not isinstance(value, dict) or not value:
        fail("xattrs")
    return tuple((unb64u(k), unb64u(v)) for k, v in value.items())


def _refs(value: object, kinds: Sequence[int]) -> tuple[BlobRef, ...]:
    return tuple(ref_from_json(r, kinds) for r in array(value))


def entry_from_json(value: object) -> Entry:
    """Parse one untrusted entry. Raises IntegrityError.

    The fields present must be exactly those of its type; their values are checked once, by
    :class:`Entry` (types, ranges, what each type holds), after the byte strings are decoded.
    """
    if not isinstance(value, dict):
        fail("entry")
    kind = value.get("t")
    exact = _FIELDS.get("inline" if kind == FILE and "inline" in value else kind) if type(kind) is str else None
    if exact is None:
        fail("entry type")
    keys = value.keys()
    if keys != exact[0] and keys != exact[1]:
        fail("entry fields")
    try:
        return Entry(
            unb64u(value["n"]), cast(EntryType, kind), value["mode"], value["uid"], value["gid"], value["mtime_ns"],
            value["ctime_ns"], _xattrs_from_json(value["x"]) if "x" in value else (), value.get("size"),
            _refs(value["blobs"], DATA_KINDS) if "blobs" in value else None,
            unb64u(value["inline"]) if "inline" in value else None,
            _refs(value["pages"], (KIND_PAGE_PACK,)) if "pages" in value else None,
            unb64u(value["target"]) if "target" in value else None,
        )
    except ValueError:
        fail("entry")


# --- pages ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page:
    """One directory, or one name range of a large directory: entries sorted by raw name, unique."""

    entries: tuple[Entry, ...]

    def __post_init__(self) -> None:
        for a, b in pairwise(self.entries):
            if not a.name < b.name:
                raise ValueError("page entries must be sorted by name without duplicates")


def encode_page(page: Page) -> bytes:
    """The canonical bytes of ``page`` (what the page id is computed over)."""
    return dumps({"v": 1, "entries": [entry_to_json(e) for e in page.entries]})


def decode_page(data: bytes | bytearray | memoryview, *, chunk_size: int = DEFAULT_CHUNK) -> Page:
    """Parse untrusted page bytes; they must be canonical and shorter than ``chunk_size``.

    Raises IntegrityError (and nothing else) on anything malformed.
    """
    return Page(view_page(data, chunk_size=chunk_size).entries())


class PageView:
    """A page whose bytes passed the checks of the whole document (size, canonical JSON, version),
    its entries decoded on demand: a path lookup bisects a directory's pages by name and decodes a
    few names and one entry, not thousands (a 10,000-entry root: 12 ms, not 0.5 s).

    :meth:`entries` decodes all of them, checks their order and keeps them (dropping the JSON).
    A name or entry read through :meth:`name` or :meth:`find` passes the same strict checks; what
    a bisection does not read (the order of the entries it skips) is checked when the page is read
    whole, which every listing, edit and ``verify`` does.
    """

    __slots__ = ("_entries", "_items")

    def __init__(self, items: list[Any] | None, entries: tuple[Entry, ...] | None = None) -> None:
        self._items = items
        self._entries = entries

    @classmethod
    def of(cls, entries: tuple[Entry, ...]) -> PageView:
        """A view of entries already decoded (a writer's own page)."""
        return cls(None, entries)

    def __len__(self) -> int:
        return len(self._entries) if self._entries is not None else len(self._items or ())

    def name(self, i: int) -> bytes:
        if self._entries is not None:
            return self._entries[i].name
        assert self._items is not None
        item = self._items[i]
        if not isinstance(item, dict):
            fail("entry")
        return unb64u(item.get("n"))

    def find(self, name: bytes) -> Entry | None:
        """The entry named ``name`` (bisection over names), or None."""
        lo, hi = 0, len(self)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.name(mid) < name:
                lo = mid + 1
            else:
                hi = mid
        if lo == len(self) or self.name(lo) != name:
            return None
        if self._entries is not None:
            return self._entries[lo]
        assert self._items is not None
        return entry_from_json(self._items[lo])

    def entries(self) -> tuple[Entry, ...]:
        """Every entry, decoded and checked in order (once: kept for later calls)."""
        if self._entries is None:
            assert self._items is not None
            entries = tuple(entry_from_json(e) for e in self._items)
            try:
                Page(entries)
            except ValueError:
                fail("page order")
            self._entries, self._items = entries, None
        return self._entries


def view_page(data: bytes | bytearray | memoryview, *, chunk_size: int = DEFAULT_CHUNK) -> PageView:
    """Check untrusted page bytes as a whole document (below ``chunk_size``, canonical, version 1)
    and view its entries undecoded. Raises IntegrityError only."""
    raw = bytes(data)
    if len(raw) >= chunk_size:
        fail("page too large")
    doc = loads(raw, limit=chunk_size, unique_keys=False)  # a repeated key fails the comparison below
    # canonical: the parsed document re-encodes to the input (the C encoder: sorted keys, no spaces,
    # no escapes it would not write). The parsers below accept exactly one JSON value per entry and
    # ref — the exact field set of its type, base64 that round-trips, ints that are ints — so this
    # equals re-encoding the parsed page (encode_page), at a fraction of the cost (tested both ways).
    try:
        again = dumps(doc)
    except UnicodeEncodeError:  # a lone surrogate (a "\udc00" escape): no canonical page holds one
        fail("not canonical")
    if again != raw:
        fail("not canonical")
    fields = obj(doc, {"v", "entries"})
    if fields["v"] != 1 or type(fields["v"]) is not int:
        fail("page version")
    return PageView(array(fields["entries"]))


def split_pages(
    entries: Iterable[Entry], *, target: int = PAGE_TARGET, chunk_size: int = DEFAULT_CHUNK
) -> list[Page]:
    """Split sorted, unique ``entries`` by name range into pages each encoding below ``target`` bytes.

    Pages are filled greedily in name order, so concatenating their entries gives the input back.
    An entry too large for ``target`` on its own (a file with a very long blob list) gets a page
    of its own, which must still encode below ``chunk_size``; otherwise ``ValueError``.
    An empty directory yields no page at all (its ``pages`` list is empty). The runs are
    :func:`encoded_page_runs`' (one route for where pages split).
    """
    items = list(entries)
    pages, at = [], 0
    for _, n in encoded_page_runs(items, target=target, chunk_size=chunk_size):
        pages.append(Page(tuple(items[at : at + n])))
        at += n
    return pages


def encoded_pages(entries: Iterable[Entry], *, target: int = PAGE_TARGET,
                  chunk_size: int = DEFAULT_CHUNK) -> list[bytes]:
    """The bytes of ``split_pages`` then ``encode_page``, encoding each entry once (a writer's hot path).

    Canonical JSON nests: a page's bytes are its entries' canonical bytes joined inside
    ``{"entries":[…],"v":1}``, so the result is byte-identical to the two-step path (tested).
    """
    return [data for data, _ in encoded_page_runs(entries, target=target, chunk_size=chunk_size)]


def encoded_page_runs(entries: Iterable[Entry], *, target: int = PAGE_TARGET,
                      chunk_size: int = DEFAULT_CHUNK) -> list[tuple[bytes, int]]:
    """:func:`encoded_pages` with the number of entries each page holds (the runs of ``entries`` in order)."""
    if not _EMPTY_PAGE < target <= chunk_size:
        raise ValueError("page target must lie between an empty page and the chunk size")
    pages: list[tuple[bytes, int]] = []
    current: list[bytes] = []
    size = _EMPTY_PAGE
    last: bytes | None = None

    def close() -> None:
        pages.append((b'{"entries":[' + b",".join(current) + b'],"v":1}', len(current)))

    for entry in entries:
        if last is not None and not last < entry.name:
            raise ValueError("entries must be sorted by name without duplicates")
        last = entry.name
        enc = dumps(entry_to_json(entry))
        if current and size + 1 + len(enc) >= target:
            close()
            current, size = [], _EMPTY_PAGE
        if not current and size + len(enc) >= chunk_size:
            raise ValueError("one entry does not fit in a page below the chunk size")
        size += len(enc) + (1 if current else 0)
        current.append(enc)
    if current:
        close()
    return pages


__all__ = [
    "DATA_KINDS",
    "DEFAULT_CHUNK",
    "DIR",
    "FILE",
    "ID_LEN",
    "INLINE_MAX",
    "LINK",
    "MIN_OVERHEAD",
    "PAGE_TARGET",
    "REF_KINDS",
    "BlobRef",
    "Entry",
    "EntryType",
    "Page",
    "PageView",
    "decode_page",
    "encode_page",
    "encoded_page_runs",
    "encoded_pages",
    "entry_from_json",
    "entry_to_json",
    "ref_from_json",
    "ref_to_json",
    "split_pages",
    "valid_name",
    "view_page",
]
