"""``serve_metrics`` scraped over real HTTP on 127.0.0.1, and the backend counters under failures:
errors and retries counted per operation, a NotFound answer not counted as an error."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from metricstools import MIB, PASS, SECRET_NAMES, new_vault, samples, scrape, value

import sigmavault.metrics as svm
from sigmavault.backends.faulty import FaultyBackend
from sigmavault.backends.memory import MemoryBackend
from sigmavault.backends.metered import Histogram, MeteredBackend
from sigmavault.backends.retrying import RetryingBackend
from sigmavault.engine.errors import BackendUnavailable, LocalIOError, NotFound

NAME = "c/" + "0" * 16


async def test_serve_metrics_answers_over_http(tmp_path: Path) -> None:
    root = tmp_path / "vault"
    async with await new_vault(root) as vault:
        for i, secret in enumerate(SECRET_NAMES):
            await vault.put(f"{secret}/{secret}", os.urandom(1000 + i))
        await vault.put("big", os.urandom(MIB + 1))  # a full chunk: every read fetches it
        await vault.commit()
        server = svm.serve_metrics(vault, "127.0.0.1", 0)
        try:
            assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}/metrics"
            text = await asyncio.to_thread(scrape, server.url)
            assert len(await vault.read_bytes("big")) == MIB + 1
            again = samples(await asyncio.to_thread(scrape, server.url))  # every scrape reads anew
        finally:
            server.close()
        with pytest.raises(OSError):
            await asyncio.to_thread(scrape, server.url)  # closed: nothing listens any more
        found = samples(text)
        assert value(found, "sigmavault_pipelines_started_total") == len(SECRET_NAMES) + 1
        assert value(found, "sigmavault_stage_items_total", stage="chunker", direction="in") == len(SECRET_NAMES) + 1
        assert value(found, "sigmavault_vault_generation") == 1
        assert value(again, "sigmavault_backend_requests_total", op="get") > value(
            found, "sigmavault_backend_requests_total", op="get")
        for secret in (*SECRET_NAMES, str(root), PASS):
            assert secret not in text
        labels = {k for (_, ls) in found for k, _ in ls}
        assert labels <= {"op", "stage", "direction", "cache", "le"}


async def test_serve_metrics_on_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    async with await new_vault(tmp_path / "vault") as vault:
        server = svm.serve_metrics(vault, "127.0.0.1", 0)
        try:
            with pytest.raises(LocalIOError, match=f"cannot serve metrics on 127.0.0.1:{server.port}"):
                svm.serve_metrics(vault, "127.0.0.1", server.port)
        finally:
            server.close()


async def test_errors_retries_and_latency_per_operation() -> None:
    store = MemoryBackend()
    faulty = FaultyBackend(store)
    metered = MeteredBackend(faulty)

    async def no_wait(_: float) -> None:
        return None

    backend = RetryingBackend(metered, attempts=3, sleep=no_wait)
    faulty.fail("put_if_absent", nth=1)  # the first attempt fails, the retry succeeds
    assert await backend.put_if_absent(NAME, b"abc")
    faulty.fail("get", every=1)  # every get fails: three attempts, then the error
    with pytest.raises(BackendUnavailable):
        await backend.get(NAME)
    faulty.clear()
    with pytest.raises(NotFound):
        await backend.head("c/" + "1" * 16)
    assert [n async for n in backend.list("c/")] == [NAME]
    ops = metered.snapshot()
    assert (ops["put"].requests, ops["put"].errors, ops["put"].bytes) == (2, 1, 3)
    assert backend.retries["put"] == 1
    assert (ops["get"].requests, ops["get"].errors, ops["get"].bytes) == (3, 3, 0)
    assert backend.retries["get"] == 2
    assert (ops["head"].requests, ops["head"].errors) == (1, 0)  # NotFound is an answer
    assert ops["list"].requests == 1 and ops["list"].latency.count == 1
    assert all(c.latency.count == c.requests for c in ops.values())
    ops["put"].requests += 10  # a snapshot is a copy
    assert metered.ops["put"].requests == 2


async def test_a_cancelled_request_counts_but_is_not_timed() -> None:
    faulty = FaultyBackend(MemoryBackend())
    metered = MeteredBackend(faulty)
    faulty.hang("get", nth=1)
    task = asyncio.create_task(metered.get(NAME))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert metered.ops["get"].requests == 1 and metered.ops["get"].errors == 0
    assert metered.ops["get"].latency.count == 0


def test_histogram_buckets() -> None:
    h = Histogram((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 1.0, 7.0):
        h.observe(v)
    assert h.counts == [2, 2, 1] and h.count == 5 and h.total == pytest.approx(8.65)
    with pytest.raises(ValueError, match="strictly increasing"):
        Histogram((1.0, 0.5))
