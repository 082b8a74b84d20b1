"""Prometheus metrics of one scheduler, in its own ``CollectorRegistry``.

The per-token metrics (tokens by operation and outcome, queue wait and execution time
histograms) are kept in per-thread shards: each worker thread is the only writer of its own
shard, so the hot path takes no lock; a scrape sums the shards. Rare events (retries, Guard
House refusals and blocks, quarantines) use ordinary ``prometheus_client`` counters. The gauges
(queue depth and active pattern per core, overflow bytes, blocked functions) are read from the
scheduler when Prometheus scrapes, through the ``read_gauges`` callable, so they are never stale.
:meth:`SchedulerMetrics.serve` exposes ``/metrics`` over HTTP (port 0 picks a free port).
Each scheduler has its own registry, so several schedulers (and tests) never collide.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

TIME_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                5.0, 10.0, 30.0)

# read_gauges() returns {"queue_depth": {core: n}, "active_pattern": {core: n},
#                        "overflow_used_bytes": n, "blocked_functions": n}
ReadGauges = Callable[[], dict[str, Any]]


class _GaugeCollector(Collector):
    """Gauges computed at scrape time from the scheduler's state."""

    def __init__(self, read: ReadGauges) -> None:
        self._read = read

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return self._families({})

    def collect(self) -> Iterator[GaugeMetricFamily]:
        return self._families(self._read())

    def _families(self, data: dict[str, Any]) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("tokengate_queue_depth", "Tokens queued in a core's mailboxes",
                                  labels=["core"])
        for core, value in sorted(data.get("queue_depth", {}).items()):
            depth.add_metric([str(core)], value)
        yield depth
        pattern = GaugeMetricFamily("tokengate_core_active_pattern",
                                    "Active mailboxes (workers) of a core", labels=["core"])
        for core, value in sorted(data.get("active_pattern", {}).items()):
            pattern.add_metric([str(core)], value)
        yield pattern
        yield GaugeMetricFamily("tokengate_overflow_used_bytes",
                                "Bytes reserved by queued work (overflow guard)",
                                value=data.get("overflow_used_bytes", 0))
        yield GaugeMetricFamily("tokengate_guard_house_blocked_functions",
                                "Functions the Guard House blocks now",
                                value=data.get("blocked_functions", 0))


class _Shard:
    """One thread's counts; that thread is its only writer."""

    __slots__ = ("execution", "queue_wait", "tokens")

    def __init__(self) -> None:
        self.tokens: dict[tuple[str, str], int] = {}
        # label -> [count per bucket (+Inf last)..., sum of observations]
        self.execution: dict[str, list[float]] = {}
        self.queue_wait: dict[str, list[float]] = {}


def _observe(table: dict[str, list[float]], label: str, seconds: float) -> None:
    row = table.get(label)
    if row is None:
        row = table[label] = [0.0] * (len(TIME_BUCKETS) + 2)
    row[bisect.bisect_left(TIME_BUCKETS, seconds)] += 1
    row[-1] += seconds


def _histogram(name: str, doc: str, label: str,
               tables: list[dict[str, list[float]]]) -> HistogramMetricFamily:
    merged: dict[str, list[float]] = {}
    for table in tables:
        for key, row in list(table.items()):
            into = merged.setdefault(key, [0.0] * len(row))
            for i, value in enumerate(row):
                into[i] += value
    family = HistogramMetricFamily(name, doc, labels=[label])
    bounds = [*(str(b) for b in TIME_BUCKETS), "+Inf"]
    for key, row in sorted(merged.items()):
        cumulative, running = [], 0.0
        for bound, count in zip(bounds, row[:-1], strict=True):
            running += count
            cumulative.append((bound, running))
        family.add_metric([key], cumulative, sum_value=row[-1])
    return family


class _ShardCollector(Collector):
    """Sums the per-thread shards at scrape time."""

    def __init__(self, shards: list[_Shard]) -> None:
        self._shards = shards

    def describe(self) -> Iterator[Any]:
        return self._families([])

    def collect(self) -> Iterator[Any]:
        return self._families(list(self._shards))

    def _families(self, shards: list[_Shard]) -> Iterator[Any]:
        tokens = CounterMetricFamily("tokengate_tokens", "Token attempts finished, by "
                                     "operation and outcome", labels=["operation", "outcome"])
        totals: dict[tuple[str, str], int] = {}
        for shard in shards:
            for key, count in list(shard.tokens.items()):
                totals[key] = totals.get(key, 0) + count
        for key, count in sorted(totals.items()):
            tokens.add_metric(list(key), count)
        yield tokens
        yield _histogram("tokengate_queue_wait_seconds", "Time from admission to execution "
                         "start", "core", [shard.queue_wait for shard in shards])
        yield _histogram("tokengate_execution_seconds", "Execution time per attempt",
                         "operation", [shard.execution for shard in shards])


class SchedulerMetrics:
    """The metric objects of one scheduler and, when serving, its HTTP server."""

    def __init__(self, read_gauges: ReadGauges | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self._local = threading.local()
        self._shards_lock = threading.Lock()  # guards appends to _shards
        self._shards: list[_Shard] = []
        reg.register(_ShardCollector(self._shards))
        self.retries = Counter("tokengate_retries", "Retries scheduled", ["operation"],
                               registry=reg)
        self.guard_refusals = Counter("tokengate_guard_house_refusals",
                                      "Submissions refused because the function is blocked",
                                      ["operation"], registry=reg)
        self.guard_blocks = Counter("tokengate_guard_house_blocks",
                                    "Times the Guard House blocked a function", registry=reg)
        self.quarantined = Counter("tokengate_quarantined", "Calls quarantined as spikes",
                                   ["operation"], registry=reg)
        if read_gauges is not None:
            reg.register(_GaugeCollector(read_gauges))
        self._server_lock = threading.Lock()  # guards _server, _thread
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def _shard(self) -> _Shard:
        shard = getattr(self._local, "shard", None)
        if shard is None:
            shard = self._local.shard = _Shard()
            with self._shards_lock:
                self._shards.append(shard)
        return shard

    def token_finished(self, operation: str, outcome: str, seconds: float | None) -> None:
        """Count one finished attempt (outcome: completed, failed, retried) on this thread."""
        shard = self._shard()
        key = (operation, outcome)
        shard.tokens[key] = shard.tokens.get(key, 0) + 1
        if seconds is not None:
            _observe(shard.execution, operation, seconds)

    def queue_waited(self, core: int, seconds: float) -> None:
        _observe(self._shard().queue_wait, str(core), seconds)

    def token_count(self, operation: str, outcome: str) -> int:
        """Total so far (tests and reports read it without scraping)."""
        with self._shards_lock:
            shards = list(self._shards)
        return sum(shard.tokens.get((operation, outcome), 0) for shard in shards)

    def exposition(self) -> bytes:
        """The text Prometheus would scrape."""
        return generate_latest(self.registry)

    def serve(self, port: int = 0, addr: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on ``addr:port`` in a daemon thread; returns the bound port."""
        with self._server_lock:
            if self._server is None:
                self._server, self._thread = start_http_server(port, addr, registry=self.registry)
                logger.info("metrics on http://%s:%d/metrics", addr, self._server.server_port)
            return int(self._server.server_port)

    def close(self) -> None:
        with self._server_lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()
