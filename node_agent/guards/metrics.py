"""Prometheus metrics of one scheduler, in its own ``CollectorRegistry``.

Counters and histograms are updated by the guards as tokens move; the gauges (queue depth and
active pattern per core, overflow bytes, blocked functions) are read from the scheduler when
Prometheus scrapes, through the ``read_gauges`` callable, so they are never stale.
:meth:`SchedulerMetrics.serve` exposes ``/metrics`` over HTTP (port 0 picks a free port).
Each scheduler has its own registry, so several schedulers (and tests) never collide.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
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

    def collect(self) -> Iterator[GaugeMetricFamily]:
        data = self._read()
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


class SchedulerMetrics:
    """The metric objects of one scheduler and, when serving, its HTTP server."""

    def __init__(self, read_gauges: ReadGauges | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.tokens = Counter("tokengate_tokens", "Tokens finished, by operation and outcome",
                              ["operation", "outcome"], registry=reg)
        self.queue_wait = Histogram("tokengate_queue_wait_seconds",
                                    "Time from admission to execution start", ["core"],
                                    buckets=TIME_BUCKETS, registry=reg)
        self.execution = Histogram("tokengate_execution_seconds", "Execution time per attempt",
                                   ["operation"], buckets=TIME_BUCKETS, registry=reg)
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
