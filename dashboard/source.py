"""What the dashboard reads from the gateway, as plain data: one :class:`Reading` per poll.

The dashboard sees the cluster only through the gateway's contract (``shared.client``): Status
(with each agent's snapshot), Series, Guards and Audit. Each source is read on its own; one
that fails (the gateway does not implement it, Redis is down) is a :class:`Reading` field
left None with the reason beside it, and the other panels keep working.

:class:`ClusterSource` owns one :class:`ClusterClient` (connected lazily, again after a
failure); its methods may be called from any thread (gRPC stubs are thread-safe) and
``_connect_lock`` guards the connection. A call the gateway does not implement (an older
gateway) is asked again only every ``UNIMPLEMENTED_RETRY`` seconds (``_missing``, touched only
by the thread that reads).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tokengate.shared.client import ClusterClient
from tokengate.shared.client_config import ClientConfig
from tokengate.shared.errors import TokenGateError
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.status import describe

logger = logging.getLogger(__name__)

SERIES_SECONDS = 600
SERIES_OVERLAP = 2.0  # seconds re-read each poll: the newest points may still grow
AUDIT_LIMIT = 100
UNIMPLEMENTED_RETRY = 30.0  # seconds before asking again a gateway that lacked a call
NOT_IMPLEMENTED = "this gateway does not implement it yet"


@dataclass
class Reading:
    """One poll of the gateway. A field is None when its source failed (see ``errors``)."""

    at: float
    status: dict[str, Any] | None = None
    series: list[dict[str, Any]] | None = None
    guards: dict[str, Any] | None = None
    audit: list[dict[str, Any]] | None = None
    errors: dict[str, str] = field(default_factory=dict)


def _series_points(reply: pb.SeriesReply) -> list[dict[str, Any]]:
    return [{"t": p.t, "completed": p.completed, "failed": p.failed, "submitted": p.submitted,
             "p50": p.p50, "p95": p.p95} for p in reply.points]


def _guards(reply: pb.GuardsReply) -> dict[str, Any]:
    return {
        "functions": [{
            "name": f.name, "attempts": f.attempts, "successes": f.successes,
            "failures": f.failures, "mean_time": f.mean_time, "health": f.health,
            "blocked_on": sorted(f.blocked_on), "blocked": f.blocked} for f in reply.functions],
        "house": {
            "mode": reply.mode or "passive", "failure_threshold": reply.failure_threshold,
            "min_attempts": reply.min_attempts, "executions": reply.executions,
            "failures": reply.failures, "blocked": sorted(reply.blocked),
            "refusals": reply.refusals},
        "quarantine": [{
            "id": q.id, "node": q.node, "task": q.task, "operation_type": q.operation_type,
            "deviation": q.deviation, "reason": q.reason, "args_summary": q.args_summary,
            "at": q.at, "replayable": q.replayable} for q in reply.quarantine],
    }


def _audit(reply: pb.AuditReply) -> list[dict[str, Any]]:
    return [{"at": e.at, "actor": e.actor, "action": e.action, "target": e.target, "ok": e.ok,
             "result": e.result} for e in reply.entries]


def status_data(reply: pb.StatusReply) -> dict[str, Any]:
    return describe(reply)


def token_data(detail: pb.TokenDetail) -> dict[str, Any]:
    return {
        "token_id": detail.token_id, "state": detail.state, "task": detail.task,
        "operation_type": detail.operation_type, "weight": detail.weight,
        "attempt": detail.attempt, "idempotent": detail.idempotent, "node": detail.node,
        "core": detail.core, "worker": detail.worker,
        "times": [{"state": t.state, "at": t.at} for t in detail.times],
        "args_summary": detail.args_summary, "args_bytes": detail.args_bytes,
        "error_type": detail.error_type, "error_message": detail.error_message,
        "traceback": detail.traceback,
    }


class Source(Protocol):
    """What the poller and the controls read and drive: a gateway (:class:`ClusterSource`)
    or one in-process host (:class:`~tokengate.dashboard.embedded.EmbeddedSource`).
    ``remote``: whether it reaches a gateway (and so needs the cluster token); ``label``:
    what the page names as its gateway."""

    remote: bool

    @property
    def label(self) -> str: ...
    @property
    def client(self) -> Any: ...
    @property
    def operator(self) -> Any: ...
    def read(self, series_since: float = 0.0) -> Reading: ...
    def close(self) -> None: ...


class ClusterSource:
    """Reads the cluster through one gateway client."""

    remote = True

    def __init__(self, config: ClientConfig, operator: ClientConfig | None = None,
                 client_factory: Callable[[ClientConfig], ClusterClient] = ClusterClient) -> None:
        self.config = config
        self._factory = client_factory
        self._connect_lock = threading.Lock()  # guards _client and _operator
        self._client: ClusterClient | None = None
        self._operator_config = operator
        self._operator: ClusterClient | None = None
        self._missing: dict[str, float] = {}  # source -> monotonic time to ask again

    @property
    def label(self) -> str:
        return self.config.address

    @property
    def client(self) -> ClusterClient:
        """The connected client; connects (raising GatewayUnavailable...) if it is not."""
        with self._connect_lock:
            if self._client is None:
                client = self._factory(self.config)
                try:
                    client.connect()
                except TokenGateError:
                    client.close()
                    raise
                self._client = client
            return self._client

    @property
    def operator(self) -> ClusterClient:
        """The client controls go through: with the operator token when there is one (its
        calls are unary: no session is opened), else the reading client."""
        if self._operator_config is None:
            return self.client
        with self._connect_lock:
            if self._operator is None:
                self._operator = self._factory(self._operator_config)
            return self._operator

    def close(self) -> None:
        with self._connect_lock:
            clients, self._client, self._operator = [self._client, self._operator], None, None
        for client in clients:
            if client is not None:
                client.close()

    def read(self, series_since: float = 0.0) -> Reading:
        """Status, then Series (from ``series_since``), Guards and Audit; each on its own."""
        reading = Reading(at=time.time())
        try:
            client = self.client
        except TokenGateError as exc:
            reading.errors["status"] = f"{type(exc).__name__}: {exc}"[:300]
            return reading
        since = max(0.0, series_since - SERIES_OVERLAP) if series_since else 0.0
        calls: dict[str, Callable[[], Any]] = {
            "status": lambda: status_data(client.status()),
            "series": lambda: _series_points(client.series(SERIES_SECONDS, since)),
            "guards": lambda: _guards(client.guards()),
            "audit": lambda: _audit(client.audit(AUDIT_LIMIT)),
        }
        for name, call in calls.items():
            if self._missing.get(name, 0.0) > time.monotonic():
                reading.errors[name] = NOT_IMPLEMENTED
                continue
            try:
                setattr(reading, name, call())
            except TokenGateError as exc:
                reading.errors[name] = self._failed(name, exc)
                if name == "status":
                    return reading  # the gateway is not answering: the rest would not either
        return reading

    def _failed(self, name: str, exc: TokenGateError) -> str:
        if "UNIMPLEMENTED" in str(exc):
            self._missing[name] = time.monotonic() + UNIMPLEMENTED_RETRY
            return NOT_IMPLEMENTED
        self._missing.pop(name, None)
        return f"{type(exc).__name__}: {exc}"[:300]
