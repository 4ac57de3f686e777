"""Prometheus metrics of an open vault: a collector, ``register`` for services, ``serve_metrics`` for the CLI.

:class:`VaultCollector` reads :meth:`Vault.metrics` on every scrape and turns the snapshot into
metric families named ``sigmavault_…`` (the list, with types and labels, is docs/metrics.md).
Labels are fixed words only — ``op`` (a backend operation), ``stage`` (a pipeline stage),
``cache``, ``direction`` — never a file name, a path, an object name, the vault's location or a
key. Still, counts and sizes tell an observer how active the vault is, which is why the CLI
serves them on loopback unless told otherwise.

Needs ``prometheus-client`` (``pip install 'sigmavault[metrics]'``); importing this module
without it raises :class:`~sigmavault.UsageError`. The engine below never imports Prometheus: it
keeps its own counters, and the scrape (on prometheus' HTTP thread, or wherever an embedding
service collects) only reads them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .engine.errors import LocalIOError, UsageError

try:
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
    from prometheus_client.registry import Collector
except ImportError:  # pragma: no cover - exercised only without the extra
    raise UsageError("metrics need prometheus-client: pip install 'sigmavault[metrics]'") from None

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from .engine.metrics import VaultMetrics
    from .engine.vault import Vault

PREFIX = "sigmavault_"


def _counter(name: str, doc: str, labels: list[str] | None = None) -> CounterMetricFamily:
    return CounterMetricFamily(PREFIX + name, doc, labels=labels)


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, labels=labels)


def families(m: VaultMetrics) -> Iterator[Metric]:
    """The Prometheus metric families of one snapshot."""
    gen = _gauge("vault_generation", "Generation of the vault this process shows")
    gen.add_metric([], m.generation)
    pending = _gauge("vault_pending", "1 while edits are not committed yet")
    pending.add_metric([], int(m.pending))
    races = _counter("commit_races", "Commit attempts lost to another client's commit (merged and retried)")
    races.add_metric([], m.commit_races)
    yield from (gen, pending, races)

    requests = _counter("backend_requests", "Requests sent to the object store (every attempt)", ["op"])
    errors = _counter("backend_errors", "Requests that failed (a NotFound answer is not a failure)", ["op"])
    retries = _counter("backend_retries", "Transient failures retried after a backoff", ["op"])
    sent = _counter("backend_sent_bytes", "Bytes of objects uploaded (put)")
    received = _counter("backend_received_bytes", "Bytes of objects downloaded (get)")
    latency = HistogramMetricFamily(PREFIX + "backend_request_seconds", "Time a request to the object store took",
                                    labels=["op"])
    for op, c in m.backend.items():
        requests.add_metric([op], c.requests)
        errors.add_metric([op], c.errors)
        retries.add_metric([op], m.retries.get(op, 0))
        h, running = c.latency, 0
        buckets: list[tuple[str, float]] = []
        for bound, n in zip(h.bounds, h.counts, strict=False):
            running += n
            buckets.append((repr(float(bound)), running))
        buckets.append(("+Inf", running + h.counts[-1]))
        latency.add_metric([op], buckets, h.total)
    sent.add_metric([], m.backend["put"].bytes if "put" in m.backend else 0)
    received.add_metric([], m.backend["get"].bytes if "get" in m.backend else 0)
    yield from (requests, errors, retries, sent, received, latency)

    items = _counter("stage_items", "Items through a write pipeline stage", ["stage", "direction"])
    nbytes = _counter("stage_bytes", "Bytes through a write pipeline stage", ["stage", "direction"])
    blocked = _counter("stage_blocked_seconds", "Seconds a stage waited for input (in) or for room downstream "
                       "(out), summed over its copies", ["stage", "direction"])
    busy = _counter("stage_busy_seconds", "Seconds a stage worked, summed over its copies", ["stage"])
    depth = _gauge("stage_queue_depth", "Items waiting in a stage's inbox now", ["stage"])
    high = _gauge("stage_queue_high_water", "The deepest a stage's inbox has been", ["stage"])
    for stage, t in m.stages.items():
        for direction, i, b, w in (("in", t.items_in, t.bytes_in, t.blocked_in),
                                   ("out", t.items_out, t.bytes_out, t.blocked_out)):
            items.add_metric([stage, direction], i)
            nbytes.add_metric([stage, direction], b)
            blocked.add_metric([stage, direction], w)
        busy.add_metric([stage], t.busy)
        depth.add_metric([stage], t.queue_depth)
        high.add_metric([stage], t.queue_high_water)
    yield from (items, nbytes, blocked, busy, depth, high)

    started = _counter("pipelines_started", "Write pipeline runs started (a put, an import, a patch)")
    started.add_metric([], m.pipelines_started)
    failed = _counter("pipelines_failed", "Write pipeline runs that ended with an error or were cancelled")
    failed.add_metric([], m.pipelines_failed)
    running_now = _gauge("pipelines_running", "Write pipeline runs going on now")
    running_now.add_metric([], m.pipelines_running)
    yield from (started, failed, running_now)

    hits = _counter("cache_hits", "Lookups a cache answered (pack: opened packs in memory; page: catalog pages from "
                    "the local cache; chunk: the mount's chunks; dedup: blobs the vault already holds)", ["cache"])
    misses = _counter("cache_misses", "Lookups that had to fetch from the object store (dedup: had to store)",
                      ["cache"])
    held = _gauge("cache_bytes", "Bytes a cache holds now (chunk: the mount's, in memory and on disk)", ["cache"])
    evictions = _counter("cache_evictions", "Entries a cache pushed out for room", ["cache"])
    for name, cc in m.caches.items():
        hits.add_metric([name], cc.hits)
        misses.add_metric([name], cc.misses)
        if cc.bytes is not None:
            held.add_metric([name], cc.bytes)
        if cc.evictions is not None:
            evictions.add_metric([name], cc.evictions)
    yield from (hits, misses, held, evictions)


class VaultCollector(Collector):
    """A prometheus-client collector over one vault: every scrape reads :meth:`Vault.metrics`."""

    def __init__(self, vault: Vault) -> None:
        self._vault = vault

    def collect(self) -> Iterator[Metric]:
        return families(self._vault.metrics())

    def describe(self) -> Iterator[Metric]:
        """The families (read once at registration, so a registry refuses a second vault's duplicates)."""
        return families(self._vault.metrics())


def register(vault: Vault, registry: CollectorRegistry | None = None) -> VaultCollector:
    """Register a collector for ``vault`` on ``registry`` (default: prometheus' global ``REGISTRY``)
    and return it (``registry.unregister(collector)`` removes it). Raises ValueError, as
    prometheus-client does, when the registry already has ``sigmavault_`` metrics."""
    if registry is None:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    collector = VaultCollector(vault)
    registry.register(collector)
    return collector


@dataclass(frozen=True, slots=True)
class MetricsServer:
    """A running exporter: where it listens, and :meth:`close` to stop it."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}/metrics"

    def close(self) -> None:
        """Stop listening and wait for the server thread (a scrape in progress finishes)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def serve_metrics(vault: Vault, host: str, port: int) -> MetricsServer:
    """Serve ``vault``'s metrics at ``http://host:port/metrics`` from a daemon thread (port 0: a free
    one, see ``.port``), on a registry of its own (no process or platform metrics). Whether ``host``
    may be a public address is the caller's decision (the CLI refuses one without --metrics-public).
    Raises LocalIOError when it cannot listen."""
    registry = CollectorRegistry(auto_describe=True)
    register(vault, registry)
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise LocalIOError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
    return MetricsServer(host, int(server.server_address[1]), server, thread)
