"""Prometheus ``/metrics`` of the gateway, computed when scraped (nothing on the hot path).

Tokens by state (from Redis), submitted/completed/failed and dispatch counts, the latency
histogram (creation to stored outcome), agents by state, Redis errors. Its own registry, so
several gateways in one process (tests) never collide.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector
from tokengate.shared.errors import RedisUnavailable

if TYPE_CHECKING:
    from tokengate.gateway.gateway import Gateway

logger = logging.getLogger(__name__)

STATUS_TIMEOUT = 10.0  # a scrape gives up on the Redis figures after this long


class GatewayCollector(Collector):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def collect(self) -> Iterator[Any]:
        gw = self.gateway
        totals = gw.series.totals()
        for name in ("submitted", "completed", "failed"):
            yield CounterMetricFamily(f"tokengate_gateway_tokens_{name}",
                                      f"Tokens {name} through this gateway", value=totals[name])
        stats = dict(gw.dispatch.stats)
        dispatched = CounterMetricFamily("tokengate_gateway_dispatched",
                                         "Tokens sent to agents, by path", labels=["path"])
        dispatched.add_metric(["direct"], stats.get("direct", 0))
        dispatched.add_metric(["claimed"], stats.get("claimed", 0))
        yield dispatched
        buckets, total = gw.series.histogram()
        yield HistogramMetricFamily("tokengate_gateway_latency_seconds",
                                    "Seconds from a token's creation to its stored outcome",
                                    buckets=buckets, sum_value=total)
        yield from self._states()
        errors = CounterMetricFamily("tokengate_gateway_redis_errors",
                                     "Redis calls that failed")
        errors.add_metric([], getattr(gw.ledger, "errors", 0))
        yield errors

    def _states(self) -> Iterator[Any]:
        gw = self.gateway
        try:  # the views live on the gateway's loop; this runs on the HTTP server's thread
            status = asyncio.run_coroutine_threadsafe(gw.views.status(), gw.loop).result(
                STATUS_TIMEOUT)
        except (RedisUnavailable, TimeoutError, RuntimeError):
            return
        tokens = GaugeMetricFamily("tokengate_gateway_tokens", "Tokens now, by state",
                                   labels=["state"])
        tokens.add_metric(["waiting"], sum(status.pending.values()))
        tokens.add_metric(["executing"], status.executing)
        tokens.add_metric(["admitted"], max(0, status.inflight - status.executing))
        yield tokens
        agents = GaugeMetricFamily("tokengate_gateway_agents", "Agents by state",
                                   labels=["state"])
        for state, n in Counter(node.state for node in status.nodes).items():
            agents.add_metric([state], n)
        yield agents


def serve_metrics(gateway: Gateway, port: int) -> int:
    """Start ``/metrics`` on loopback ``port`` (0: a free one); the port it listens on."""
    registry = CollectorRegistry()
    registry.register(GatewayCollector(gateway))
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    chosen = server.server_address[1]
    logger.info("gateway metrics on http://127.0.0.1:%d/metrics", chosen)
    return chosen
