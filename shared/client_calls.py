"""The unary calls of a gateway client: status, operator controls and views.

:class:`GatewayCalls` is a mixin: its methods go through ``_unary`` (one call to the current
gateway, trying the next address when it is away), which the client defines.
"""

from __future__ import annotations

from typing import Any

from tokengate.shared.rpc import tokengate_pb2 as pb


class GatewayCalls:
    """Ping, status, drain/resume and the operator views and controls, by RPC."""

    def _unary(self, method: str, request: Any, timeout: float = 10.0) -> Any:
        raise NotImplementedError

    def ping(self, timeout: float = 5.0) -> pb.PingReply:
        return self._unary("Ping", pb.PingRequest(), timeout)

    def status(self) -> pb.StatusReply:
        return self._unary("Status", pb.StatusRequest())

    def drain(self, node: str = "", reason: str = "", *, actor: str = "") -> str:
        return self._unary("Drain", pb.DrainRequest(node=node, reason=reason,
                                                    actor=actor)).message

    def resume(self, node: str = "", *, actor: str = "") -> str:
        return self._unary("Resume", pb.DrainRequest(node=node, actor=actor)).message

    def token_detail(self, token_id: str) -> pb.TokenDetail:
        """One token's record (states with times, attempt, node/core/worker, error)."""
        return self._unary("Token", pb.TokenRequest(token_id=token_id))

    def guards(self) -> pb.GuardsReply:
        """The cluster-wide Guard House and the quarantined calls of every node."""
        return self._unary("Guards", pb.GuardsRequest())

    def reenable(self, function: str, *, actor: str = "") -> pb.ControlReply:
        """Re-enable a function the Guard House blocked, on every node."""
        return self._unary("Reenable", pb.ReenableRequest(function=function, actor=actor))

    def quarantine(self, quarantine_id: str, action: str, *, node: str = "",
                   actor: str = "") -> pb.ControlReply:
        """``action`` replay or drop a quarantined call on the node that holds it."""
        return self._unary("Quarantine", pb.QuarantineRequest(
            id=quarantine_id, action=action, node=node, actor=actor), timeout=30.0)

    def series(self, seconds: int = 600, since: float = 0.0) -> pb.SeriesReply:
        """Per-second throughput and latency points, oldest first."""
        return self._unary("Series", pb.SeriesRequest(seconds=seconds, since=since))

    def audit(self, limit: int = 200) -> pb.AuditReply:
        """The newest controls the gateway applied, newest last."""
        return self._unary("Audit", pb.AuditRequest(limit=limit))

    def history(self, node: str = "", limit: int = 0) -> pb.HistoryReply:
        """The execution history of every connected agent (or ``node``'s), the newest
        ``limit`` records of each (0: all each keeps); needs operator rights."""
        return self._unary("History", pb.HistoryRequest(node=node, limit=limit), timeout=30.0)
