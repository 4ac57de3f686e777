"""The one conformance suite every backend passes (the contract is in ``backends/base.py``).

How to use it — subclass, name the subclass ``Test...``, and give it a factory::

    from conformance import BackendConformance      # tests/backends is on sys.path under pytest

    class TestS3Conformance(BackendConformance):
        @pytest.fixture(autouse=True)
        def _server(self, s3_server):                  # any fixtures you need, stored on self
            self.url = s3_server.fresh_bucket_url()

        async def make_backend(self) -> Backend:       # called inside the test's event loop
            return S3Backend.from_url(self.url)

Each test calls ``make_backend()`` once inside its own ``asyncio.run`` loop, on an EMPTY store
(give every test a fresh folder/bucket/prefix), and ``aclose()``s the backend at the end. Knobs
a slow backend may lower as class attributes: ``racers`` (concurrent creators of one name),
``large_size`` (bytes of the large object), ``mixed_objects`` (objects in the mixed-ops test).
``self.run(body)`` runs ``async def body(backend)`` on a fresh backend; subclasses use it for
their own async tests too.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable

import pytest

from sigmavault.backends.base import Backend, Properties, get_bounded
from sigmavault.engine.errors import IntegrityError, NotFound, UsageError


def oname(i: int | str) -> str:
    """A chunk name ``o/<64 hex>`` derived from ``i``."""
    return "o/" + hashlib.sha256(str(i).encode()).hexdigest()


def cname(generation: int) -> str:
    return f"c/{generation:016x}"


def kname(generation: int) -> str:
    return f"k/{generation:016x}"


def payload(i: int | str, size: int = 1000) -> bytes:
    seed = hashlib.sha256(f"payload {i}".encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


async def names_of(backend: Backend, prefix: str = "") -> list[str]:
    return sorted([name async for name in backend.list(prefix)])


BAD_NAMES = [
    "o/../../etc/passwd",
    "o/../" + "0" * 61,
    "../" + "0" * 64,
    "/etc/passwd",
    "o/" + "0" * 63,
    "o/" + "0" * 65,
    "o/" + "A" * 64,
    "k/xyz",
    "c/" + "0" * 15 + "/",
    "x/" + "0" * 64,
    "o\\" + "0" * 64,
    "l/..",
    "",
]


class BackendConformance:
    """Every clause of the Backend contract. Subclasses implement :meth:`make_backend`."""

    racers = 200
    large_size = 4_198_486
    mixed_objects = 60

    async def make_backend(self) -> Backend:
        raise NotImplementedError("a conformance subclass must implement make_backend()")

    def run(self, body: Callable[[Backend], Awaitable[None]]) -> None:
        async def main() -> None:
            backend = await self.make_backend()
            try:
                await body(backend)
            finally:
                await backend.aclose()

        asyncio.run(main())

    # -- identity ---------------------------------------------------------------------------

    def test_protocol_and_properties(self) -> None:
        async def body(b: Backend) -> None:
            assert isinstance(b, Backend)
            assert isinstance(b.properties, Properties)
            assert b.properties.concurrency >= 1
            assert isinstance(b.description, str) and b.description
            await b.aclose()
            await b.aclose()  # idempotent (run() closes a third time)

        self.run(body)

    # -- create-only put --------------------------------------------------------------------

    def test_put_is_create_only(self) -> None:
        async def body(b: Backend) -> None:
            name = oname("create-only")
            assert await b.put_if_absent(name, b"first") is True
            assert await b.put_if_absent(name, b"second, longer") is False
            assert await b.put_if_absent(name, b"first") is False
            assert await b.get(name) == b"first"
            assert await b.head(name) == 5
            commit = cname(1)
            assert await b.put_if_absent(commit, b"winner") is True
            assert await b.put_if_absent(commit, b"loser!") is False
            assert await b.get(commit) == b"winner"

        self.run(body)

    def test_create_only_probe_passes_and_leaves_nothing(self) -> None:
        """The probe sigmavault runs before a device's first write (engine/repo/probe.py) under ``l/``."""
        from sigmavault.engine.repo import probe

        async def body(b: Backend) -> None:
            assert await probe.check(b)
            assert await names_of(b, "l/") == []

        self.run(body)

    def test_put_accepts_buffers_and_copies_them(self) -> None:
        async def body(b: Backend) -> None:
            buf = bytearray(b"abcdef")
            assert await b.put_if_absent(oname("ba"), buf) is True
            buf[:] = b"XXXXXX"  # a caller reusing its buffer must not change the stored object
            assert await b.get(oname("ba")) == b"abcdef"
            big = bytearray(payload("mv", 5000))
            assert await b.put_if_absent(oname("mv"), memoryview(big)[1000:3000]) is True
            assert await b.get(oname("mv")) == payload("mv", 5000)[1000:3000]
            assert await b.put_if_absent(kname(1), b"") is True  # an empty object is an object
            assert await b.head(kname(1)) == 0
            assert await b.get(kname(1)) == b""
            assert await b.put_if_absent(kname(1), b"") is False

        self.run(body)

    def test_concurrent_creators_exactly_one_wins(self) -> None:
        async def body(b: Backend) -> None:
            name = cname(7)
            bodies = [f"client {i:04d}".encode() * 8 for i in range(self.racers)]
            results = await asyncio.gather(*(b.put_if_absent(name, data) for data in bodies))
            assert sum(results) == 1
            winner = bodies[results.index(True)]
            assert await b.get(name) == winner
            assert await names_of(b, "c/") == [name]

        self.run(body)

    # -- reads ------------------------------------------------------------------------------

    def test_get_ranges(self) -> None:
        async def body(b: Backend) -> None:
            data = payload("ranges", 1000)
            name = oname("ranges")
            await b.put_if_absent(name, data)
            assert await b.get(name) == data
            assert await b.get(name, 0) == data
            assert await b.get(name, 10) == data[10:]
            assert await b.get(name, 0, 10) == data[:10]
            assert await b.get(name, 100, 400) == data[100:400]
            assert await b.get(name, 999) == data[999:]
            assert await b.get(name, 990, 5000) == data[990:]  # clipped at the end
            assert await b.get(name, 0, 1000) == data
            assert await b.get(name, 0, 1001) == data
            assert await b.get(name, 1000) == b""  # starts at the end
            assert await b.get(name, 5000) == b""  # starts past the end
            assert await b.get(name, 20, 20) == b""  # empty range

        self.run(body)

    def test_missing_objects_raise_not_found(self) -> None:
        async def body(b: Backend) -> None:
            for name in (oname("missing"), cname(3), kname(2), "l/gc-lease", "s/" + "ab" * 32):
                with pytest.raises(NotFound):
                    await b.get(name)
                with pytest.raises(NotFound):
                    await b.get(name, 5, 10)
                with pytest.raises(NotFound):
                    await b.head(name)

        self.run(body)

    def test_read_after_write_every_kind(self) -> None:
        async def body(b: Backend) -> None:
            names = [oname(1), "s/" + "0f" * 32, cname(0), kname(1), "l/gc-lease"]
            for i, name in enumerate(names):
                data = payload(name, 100 + i)
                assert await b.put_if_absent(name, data) is True
                assert await b.get(name) == data
                assert await b.head(name) == len(data)

        self.run(body)

    def test_large_object_round_trip(self) -> None:
        async def body(b: Backend) -> None:
            size = self.large_size
            data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
            assert len(data) == size
            name = oname("large")
            assert await b.put_if_absent(name, data) is True
            assert await b.head(name) == size
            got = await b.get(name)
            assert len(got) == size and got == data
            mid = size // 2
            assert await b.get(name, mid - 65_536, mid + 65_536) == data[mid - 65_536 : mid + 65_536]
            assert await b.get(name, size - 10) == data[-10:]

        self.run(body)

    def test_bounded_get_refuses_an_inflated_object(self) -> None:
        """Readers fetch with a bound (issue 10 item 7): one ranged GET of ``limit + 1`` bytes."""

        async def body(b: Backend) -> None:
            size = self.large_size
            data = payload("inflated", size)
            name = oname("inflated")
            assert await b.put_if_absent(name, data) is True
            head = await b.get(name, 0, 4097)  # what the bound asks for: exactly that much comes back
            assert head == data[:4097]
            with pytest.raises(IntegrityError, match="larger than"):
                await get_bounded(b, name, 4096)
            with pytest.raises(IntegrityError, match="larger than"):
                await get_bounded(b, name, size - 1)
            assert await get_bounded(b, name, size) == data
            assert await get_bounded(b, name, size + 100) == data
            with pytest.raises(NotFound):
                await get_bounded(b, oname("not there"), 100)

        self.run(body)

    # -- listing ----------------------------------------------------------------------------

    def test_list_prefixes(self) -> None:
        async def body(b: Backend) -> None:
            assert await names_of(b) == []
            chunks = [oname(i) for i in range(20)]
            commits = [cname(g) for g in range(3)]
            keys = [kname(1), kname(2)]
            others = ["l/gc-lease", "s/" + "1a" * 32]
            for name in chunks + commits + keys + others:
                await b.put_if_absent(name, payload(name, 64))
            assert await names_of(b) == sorted(chunks + commits + keys + others)
            assert await names_of(b, "o/") == sorted(chunks)
            assert await names_of(b, "c/") == sorted(commits)
            assert await names_of(b, "k/") == sorted(keys)
            assert await names_of(b, "l/") == ["l/gc-lease"]
            assert await names_of(b, "s/") == ["s/" + "1a" * 32]
            one = chunks[0]
            assert await names_of(b, one[:3]) == sorted(n for n in chunks if n.startswith(one[:3]))
            assert await names_of(b, one[:4]) == sorted(n for n in chunks if n.startswith(one[:4]))
            assert await names_of(b, one[:6]) == sorted(n for n in chunks if n.startswith(one[:6]))
            assert await names_of(b, one) == [one]
            assert await names_of(b, cname(2)) == [cname(2)]
            assert await names_of(b, "c/00000000000000") == sorted(commits)

        self.run(body)

    def test_list_empty_prefix_groups(self) -> None:
        async def body(b: Backend) -> None:
            await b.put_if_absent(kname(1), b"k")
            for prefix in ("o/", "c/", "s/", "l/", "o/ff"):
                assert await names_of(b, prefix) == []
            assert await names_of(b, "k/") == [kname(1)]

        self.run(body)

    def test_list_while_fetching(self) -> None:
        async def body(b: Backend) -> None:
            for g in range(5):
                await b.put_if_absent(cname(g), payload(g, 10))
            seen = {}
            async for name in b.list("c/"):
                seen[name] = await b.get(name)  # other calls during a listing must not deadlock
            assert seen == {cname(g): payload(g, 10) for g in range(5)}

        self.run(body)

    # -- delete -----------------------------------------------------------------------------

    def test_delete_is_idempotent(self) -> None:
        async def body(b: Backend) -> None:
            name = oname("doomed")
            keep = oname("kept")
            await b.put_if_absent(name, b"bye")
            await b.put_if_absent(keep, b"stay")
            await b.delete(name)
            with pytest.raises(NotFound):
                await b.get(name)
            with pytest.raises(NotFound):
                await b.head(name)
            assert await names_of(b) == [keep]
            await b.delete(name)  # again: no error
            await b.delete(cname(99))  # never existed: no error
            assert await b.put_if_absent(name, b"back") is True  # the name is free again
            assert await b.get(name) == b"back"
            assert await b.get(keep) == b"stay"

        self.run(body)

    # -- names ------------------------------------------------------------------------------

    def test_invalid_names_rejected_before_io(self) -> None:
        async def body(b: Backend) -> None:
            for bad in BAD_NAMES:
                with pytest.raises(UsageError):
                    await b.put_if_absent(bad, b"evil")
                with pytest.raises(UsageError):
                    await b.get(bad)
                with pytest.raises(UsageError):
                    await b.head(bad)
                with pytest.raises(UsageError):
                    await b.delete(bad)
            for bad_prefix in ("../", "o/..", "/", "x/", "O/"):
                with pytest.raises(UsageError):
                    await names_of(b, bad_prefix)
            assert await names_of(b) == []  # nothing was written anywhere we can see

        self.run(body)

    # -- concurrency ------------------------------------------------------------------------

    def test_concurrent_mixed_operations(self) -> None:
        async def body(b: Backend) -> None:
            n = self.mixed_objects
            names = [oname(f"mixed {i}") for i in range(n)]
            for i in range(0, n, 2):  # half exist before the storm
                await b.put_if_absent(names[i], payload(i, 300 + i))

            async def worker(i: int) -> tuple[str, object]:
                name = names[i]
                if i % 2:
                    return ("put", await b.put_if_absent(name, payload(i, 300 + i)))
                if i % 4 == 0:
                    return ("get", await b.get(name, 5, 50))
                if i % 8 == 2:
                    await b.delete(name)
                    return ("delete", None)
                return ("head", await b.head(name))

            async def lister() -> tuple[str, object]:
                return ("list", await names_of(b, "o/"))

            jobs = [worker(i) for i in range(n)] + [lister() for _ in range(4)]
            results = await asyncio.gather(*jobs)
            for i, (kind, value) in enumerate(results[:n]):
                if kind == "put":
                    assert value is True
                elif kind == "get":
                    assert value == payload(i, 300 + i)[5:50]
                elif kind == "head":
                    assert value == 300 + i
            for kind, value in results[n:]:
                assert kind == "list"
                assert isinstance(value, list) and set(value) <= set(names)
            deleted = {names[i] for i in range(n) if i % 8 == 2}
            assert await names_of(b, "o/") == sorted(set(names) - deleted)
            for i, name in enumerate(names):
                if name not in deleted:
                    assert await b.get(name) == payload(i, 300 + i)

        self.run(body)
