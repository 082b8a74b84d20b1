"""The dashboard's own Prometheus metrics, in a registry of its own (served on ``/metrics``).

They describe the dashboard, not the cluster (the gateway and agents serve theirs): pushes
and their bytes, open pages, polls of the gateway and the sources that failed, logins.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class DashboardMetrics:
    """One set of metrics per dashboard app (tests build several apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.pushes = Counter("tokengate_dashboard_pushes", "patches pushed to the pages' room",
                              registry=reg)
        self.push_bytes = Counter("tokengate_dashboard_push_bytes",
                                  "bytes of the patches pushed (compact JSON), per room push",
                                  registry=reg)
        self.last_push_bytes = Gauge("tokengate_dashboard_last_push_bytes",
                                     "bytes of the latest patch", registry=reg)
        self.pages = Gauge("tokengate_dashboard_pages", "pages connected", registry=reg)
        self.poll_seconds = Histogram("tokengate_dashboard_poll_seconds",
                                      "time to read the gateway once", registry=reg,
                                      buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5))
        self.source_errors = Counter("tokengate_dashboard_source_errors",
                                     "gateway reads that failed, by source", ["source"],
                                     registry=reg)
        self.logins = Counter("tokengate_dashboard_logins", "login attempts by result",
                              ["result"], registry=reg)
        self.controls = Counter("tokengate_dashboard_controls", "controls by action and result",
                                ["action", "result"], registry=reg)

    def render(self) -> bytes:
        return generate_latest(self.registry)
