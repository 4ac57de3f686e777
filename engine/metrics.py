"""What :meth:`Vault.metrics` returns: a read-only snapshot of the counters the vault's parts keep.

Every part counts for itself, with plain ints and no metrics library: the backend wrappers
(:mod:`...backends.metered` per request, :mod:`...backends.retrying` per retry), the write
pipeline's stages (:class:`~.content.pipeline.StageLedger`), the blob reader's pack LRU, the
catalog's page loads from the local cache and the dedup index's lookups; a layer above the engine
(the mount's chunk cache) adds its own through :meth:`Vault.meter_cache` without the engine
importing it. :func:`snapshot` copies them into one
:class:`VaultMetrics`; the exporter (``sigmavault.metrics``) turns that into Prometheus families.

Nothing here names a file, a path, an object or the vault's location: counts, bytes and seconds
only. A snapshot may be taken from another thread than the event loop's (every counter it reads
lives in a list or a dict whose keys never change); it is then not one atomic cut of all values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..backends.base import Backend, layers
from ..backends.metered import OPS, MeteredBackend, OpCounters
from ..backends.retrying import RetryingBackend
from .catalog.pagestore import Catalog
from .content.index import BlobIndex
from .content.pipeline import StageLedger, StageTotals
from .repo.reader import BlobReader


@dataclass(frozen=True, slots=True)
class CacheCounts:
    """Lookups a cache answered (``hits``) and those that had to fetch (``misses``); for a cache that
    tracks them, the bytes it holds now and the entries it pushed out for room (None: not tracked)."""

    hits: int
    misses: int
    bytes: int | None = None
    evictions: int | None = None


@dataclass(frozen=True, slots=True)
class VaultMetrics:
    """A snapshot of one open vault's counters (see the module doc and docs/metrics.md)."""

    generation: int
    pending: bool
    #: per backend operation (put, get, head, list, delete): requests, errors, bytes, latency
    backend: dict[str, OpCounters] = field(default_factory=dict)
    #: per backend operation: transient failures retried
    retries: dict[str, int] = field(default_factory=dict)
    #: per pipeline stage, in pipeline order: summed over every run of this vault
    stages: dict[str, StageTotals] = field(default_factory=dict)
    pipelines_started: int = 0
    pipelines_running: int = 0
    pipelines_failed: int = 0
    #: ``pack`` (the blob reader's LRU of opened packs), ``page`` (catalog pages from the local cache),
    #: ``dedup`` (dedup index lookups: a hit reuses a stored blob) and any added with ``meter_cache``
    caches: dict[str, CacheCounts] = field(default_factory=dict)
    #: commit attempts lost to another client's commit (merged and retried)
    commit_races: int = 0


def snapshot(*, generation: int, pending: bool, backend: Backend, ledger: StageLedger, reader: BlobReader,
             catalog: Catalog, index: BlobIndex, commit_races: int = 0,
             more_caches: Mapping[str, Callable[[], CacheCounts]] | None = None) -> VaultMetrics:
    """Copy the counters of a vault's parts, and read ``more_caches`` (name -> its counts). A
    backend without a metering or retrying layer (one a test built by hand) reports zeros."""
    metered = next((b for b in layers(backend) if isinstance(b, MeteredBackend)), None)
    retrying = next((b for b in layers(backend) if isinstance(b, RetryingBackend)), None)
    return VaultMetrics(
        generation=generation,
        pending=pending,
        backend=metered.snapshot() if metered is not None else {op: OpCounters() for op in OPS},
        retries=dict(retrying.retries) if retrying is not None else dict.fromkeys(OPS, 0),
        stages=ledger.totals(),
        pipelines_started=ledger.started,
        pipelines_running=ledger.running,
        pipelines_failed=ledger.failed,
        caches={"pack": CacheCounts(reader.pack_hits, reader.pack_misses),
                "page": CacheCounts(catalog.page_hits, catalog.page_misses),
                "dedup": CacheCounts(index.hits, index.misses),
                **{name: read() for name, read in dict(more_caches or {}).items()}},
        commit_races=commit_races,
    )
