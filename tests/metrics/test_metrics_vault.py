"""The counters of a real vault on disk, through ``Vault.metrics()`` and a Prometheus collector on a
fresh registry: uploaded bytes equal what landed on disk, one put request per new object, stage
item counts, get requests for reads, pack and page cache hits on second reads; no file name in the text."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from metricstools import MIB, SECRET_NAMES, new_vault, reopen, samples, stored, value
from prometheus_client import CollectorRegistry, generate_latest

import sigmavault.metrics as svm
from sigmavault.engine.format.envelope import object_len
from sigmavault.engine.metrics import CacheCounts


def _scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return samples(generate_latest(registry).decode())


async def test_counters_follow_what_the_vault_does(tmp_path: Path) -> None:
    root = tmp_path / "vault"
    big = os.urandom(2 * MIB + 12345)  # three chunks: two full, one partial
    smalls = {f"docs/{SECRET_NAMES[0]}": os.urandom(3000), f"docs/{SECRET_NAMES[1]}": os.urandom(5000)}
    async with await new_vault(root) as vault:
        registry = CollectorRegistry()
        svm.register(vault, registry)
        before = _scrape(registry)
        files_before, bytes_before = stored(root)
        await vault.put(f"{SECRET_NAMES[2]}/{SECRET_NAMES[3]}", big)
        for name, data in smalls.items():
            await vault.put(name, data)
        await vault.commit()
        after = _scrape(registry)
        files_after, bytes_after = stored(root)

        def delta(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        # every byte uploaded is on disk, and every put created one object (nothing deduplicated), but
        # for the writer's lease (prune beside writers): created before the first upload, deleted at the commit
        leases = delta("sigmavault_backend_requests_total", op="delete")
        assert leases == 1
        sent = delta("sigmavault_backend_sent_bytes_total") - leases * object_len(4 + 24, MIB, 1024)
        assert sent == bytes_after - bytes_before > len(big)
        assert delta("sigmavault_backend_requests_total", op="put") - leases == files_after - files_before >= 4
        assert value(after, "sigmavault_backend_errors_total", op="put") == 0
        assert value(after, "sigmavault_backend_retries_total", op="put") == 0
        latency = value(after, "sigmavault_backend_request_seconds_count", op="put")
        assert latency == value(after, "sigmavault_backend_requests_total", op="put")
        assert value(after, "sigmavault_backend_request_seconds_bucket", op="put", le="+Inf") == latency
        # the pipeline: three runs, three files in, every plaintext byte chunked, three full-size chunks written
        assert value(after, "sigmavault_pipelines_started_total") == 3
        assert value(after, "sigmavault_pipelines_running") == 0
        assert value(after, "sigmavault_pipelines_failed_total") == 0
        assert value(after, "sigmavault_stage_items_total", stage="chunker", direction="in") == 3
        chunked = value(after, "sigmavault_stage_bytes_total", stage="chunker", direction="out")
        assert chunked == len(big) + sum(map(len, smalls.values()))
        assert value(after, "sigmavault_stage_items_total", stage="chunker", direction="out") == 5  # 3 + 1 + 1 pieces
        # the two full chunks; settled pieces (the partial one, pack members) go round the mixer and the writer
        assert value(after, "sigmavault_stage_items_total", stage="writer", direction="in") == 2
        assert value(after, "sigmavault_stage_busy_seconds_total", stage="mixer") > 0
        assert value(after, "sigmavault_stage_queue_high_water", stage="coordinate") >= 1
        assert value(after, "sigmavault_vault_generation") == 1
        assert value(after, "sigmavault_vault_pending") == 0

        snap = vault.metrics()  # the typed snapshot under the collector
        assert snap.stages["chunker"].items_in == 3 and snap.pipelines_started == 3
        assert snap.backend["put"].requests == value(after, "sigmavault_backend_requests_total", op="put")
        text = generate_latest(registry).decode()
    for secret in (*SECRET_NAMES, str(root), str(tmp_path), "metrics test passphrase"):
        assert secret not in text


async def test_reads_count_gets_and_cache_hits(tmp_path: Path) -> None:
    root = tmp_path / "vault"
    smalls = {f"d/{SECRET_NAMES[0]}": os.urandom(2000), f"d/{SECRET_NAMES[1]}": os.urandom(4000)}
    async with await new_vault(root) as vault:
        for name, data in smalls.items():
            await vault.put(name, data)
    async with await reopen(root) as vault:  # a fresh process's view: nothing in memory, pages on disk
        registry = CollectorRegistry()
        svm.register(vault, registry)
        first = _scrape(registry)
        name_a, name_b = smalls
        assert await vault.read_bytes(name_a) == smalls[name_a]
        once = _scrape(registry)
        assert await vault.read_bytes(name_b) == smalls[name_b]  # same data pack: from memory now
        assert await vault.read_bytes(name_a) == smalls[name_a]
        twice = _scrape(registry)
    assert value(once, "sigmavault_cache_misses_total", cache="pack") == 1
    assert value(once, "sigmavault_cache_hits_total", cache="pack") == 0
    assert value(twice, "sigmavault_cache_hits_total", cache="pack") == 2
    assert value(twice, "sigmavault_cache_misses_total", cache="pack") == 1
    gets_once = value(once, "sigmavault_backend_requests_total", op="get")
    assert gets_once > value(first, "sigmavault_backend_requests_total", op="get")
    assert value(twice, "sigmavault_backend_requests_total", op="get") == gets_once  # nothing fetched again
    assert value(twice, "sigmavault_backend_received_bytes_total") > 6000
    # the directory pages were cached on this device by the first session: loads hit, none fetched
    assert value(twice, "sigmavault_cache_hits_total", cache="page") >= 1
    assert value(twice, "sigmavault_cache_misses_total", cache="page") == 0


async def test_register_twice_on_one_registry_is_refused(tmp_path: Path) -> None:
    async with await new_vault(tmp_path / "vault") as vault:
        registry = CollectorRegistry()
        collector = svm.register(vault, registry)
        with pytest.raises(ValueError, match="Duplicated timeseries"):
            svm.register(vault, registry)
        registry.unregister(collector)
        svm.register(vault, registry)  # once removed, it can be added again


async def test_dedup_lookups_and_a_cache_kept_above_the_vault(tmp_path: Path) -> None:
    data = os.urandom(2 * MIB + 777)  # two full chunks and a tail that goes to a data pack
    async with await new_vault(tmp_path / "vault") as vault:
        registry = CollectorRegistry()
        svm.register(vault, registry)
        await vault.put(SECRET_NAMES[0], data)
        await vault.commit()
        first = _scrape(registry)
        await vault.put(SECRET_NAMES[1], data)  # the same bytes again: every lookup finds its blob
        await vault.commit()
        second = _scrape(registry)
        counts = [CacheCounts(5, 2, 3 * MIB, 1)]
        vault.meter_cache("chunk", lambda: counts[-1])  # what the mount does with its chunk cache
        third = _scrape(registry)
        counts.append(CacheCounts(9, 2, MIB, 4))
        fourth = _scrape(registry)
        assert vault.metrics().caches["dedup"] == CacheCounts(3, 3)
    assert value(first, "sigmavault_cache_misses_total", cache="dedup") == 3
    assert value(first, "sigmavault_cache_hits_total", cache="dedup") == 0
    assert value(second, "sigmavault_cache_hits_total", cache="dedup") == 3
    assert value(second, "sigmavault_cache_misses_total", cache="dedup") == 3
    assert value(third, "sigmavault_cache_hits_total", cache="chunk") == 5
    assert value(third, "sigmavault_cache_bytes", cache="chunk") == 3 * MIB
    assert value(third, "sigmavault_cache_evictions_total", cache="chunk") == 1
    assert value(fourth, "sigmavault_cache_bytes", cache="chunk") == MIB  # read on every scrape
    assert value(fourth, "sigmavault_cache_evictions_total", cache="chunk") == 4
    # caches that do not track bytes or evictions have no such sample (not a misleading zero)
    assert ("sigmavault_cache_bytes", (("cache", "pack"),)) not in fourth
    assert ("sigmavault_cache_evictions_total", (("cache", "dedup"),)) not in fourth
