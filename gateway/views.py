"""What the gateway shows: status, the cluster-wide Guard House, token detail, series, audit.

Read-only over the owners (it owns nothing; it runs on the event loop, and what it reads of
Redis goes out on the store's read lane, in one job per view). Status keeps answering when
Redis does not:
``redis_ok`` is false then and the figures Redis holds are left at zero. Aggregating the
guards reads the scheduler snapshots agents send every second, so it costs the agents
nothing more.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import msgpack
from tokengate.gateway.conns import AgentConn
from tokengate.gateway.dispatch import Dispatch
from tokengate.gateway.guards import ClusterGuards
from tokengate.gateway.items import MAX_ID_LENGTH
from tokengate.gateway.ledger import TokenLedger, TokenRecord
from tokengate.gateway.registry import Registry
from tokengate.gateway.results import Results
from tokengate.gateway.series import Series
from tokengate.gateway.store import Store
from tokengate.shared import labels, wire
from tokengate.shared.errors import BadRequest, RedisUnavailable, SnapshotError, UnknownToken
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.snapshot import AgentSnapshot, MethodRecord, QuarantinedCall
from tokengate.shared.tags import Weight

logger = logging.getLogger(__name__)

VERSION = "0.2.0"
HEALTH_ORDER = ("unknown", "excellent", "good", "fair", "poor")  # worst last
SUMMARY_LIMIT = 400
QUARANTINE_LIMIT = 200


def _snapshot(conn: AgentConn) -> AgentSnapshot:
    """The agent's newest snapshot (the registry kept only one that fits the schema)."""
    try:
        return AgentSnapshot.decode(conn.snapshot)
    except SnapshotError as exc:
        logger.warning("agent %s: status snapshot unreadable: %s", conn.name, exc)
        return AgentSnapshot()


@dataclass(slots=True)
class _Figures:
    """What status reads of Redis, in one job on the read lane."""

    inflight: dict[str, int]
    executing: int
    executing_by: dict[str, int]
    counts: dict[str, int]
    lengths: dict[Weight, int]
    memory: int


def _figures(ledger: TokenLedger, names: list[str]) -> _Figures:
    inflight = ledger.inflight_counts(names)
    executing, by_agent = ledger.executing_counts(names)
    return _Figures(inflight, executing, by_agent, ledger.counts(), ledger.queue_lengths(),
                    ledger.memory_bytes())


class Views:
    def __init__(self, ledger: TokenLedger, store: Store, dispatch: Dispatch,
                 registry: Registry, results: Results, series: Series,
                 guards: ClusterGuards) -> None:
        self.ledger = ledger
        self.cluster_guards = guards
        self.store = store
        self.dispatch = dispatch
        self.registry = registry
        self.results = results
        self.series = series
        self.started = time.time()

    # -- status --------------------------------------------------------------------------------

    async def status(self) -> pb.StatusReply:
        conns = self.registry.connected()
        reply = pb.StatusReply(uptime=time.time() - self.started, redis_ok=True)
        inflight: dict[str, int] = {}
        executing: dict[str, int] = {}
        try:
            figures = await self.store.read(_figures, self.ledger, [c.name for c in conns])
            inflight, executing = figures.inflight, figures.executing_by
            reply.executing = figures.executing
            reply.counts.update(figures.counts)
            reply.pending.update({w.value: n for w, n in figures.lengths.items()})
            reply.redis_memory = figures.memory
        except RedisUnavailable as exc:
            logger.warning("status without Redis: %s", exc)
            reply.redis_ok = False
            lengths = self.dispatch.waiting()
            reply.pending.update({w.value: n for w, n in lengths.items()})
        conns = [c for c in conns if c is self.registry.get(c.name)]  # still theirs, after the read
        drain = self.dispatch.drain_state()
        reply.counts.update({f"gateway_{k}": v for k, v in self.dispatch.stats.items()})
        reply.inflight = sum(inflight.values())
        for conn in conns:
            reply.nodes.append(self._node(conn, inflight.get(conn.name, 0),
                                          executing.get(conn.name, 0),
                                          drain.nodes.get(conn.name, drain.cluster)))
        reply.recent.extend(self.results.recent(100))
        if drain.cluster is None:
            reply.state = "RUNNING"
        else:
            reply.state = "DRAINING" if reply.inflight else "DRAINED"
            reply.reason, reply.drain_since = drain.cluster, drain.since
            reply.held = sum(reply.pending.values())
        return reply

    def _node(self, conn: AgentConn, inflight: int, executing: int,
              drain: str | None) -> pb.NodeStatus:
        if not conn.connected:
            state = "DISCONNECTED"
        elif drain is not None:
            state = "DRAINING" if inflight else "DRAINED"
        elif conn.workers and conn.blocked >= conn.workers:
            state = "STUCK"
        elif self.dispatch.saturated(conn.name):
            state = "SATURATED"
        else:
            state = "UP"
        return pb.NodeStatus(
            name=conn.name, state=state, reason=drain or "", host=conn.host, pid=conn.pid,
            inflight=inflight, executing=executing, stuck=conn.stuck, blocked=conn.blocked,
            workers=conn.workers,
            credits=wire.credit_messages(self.dispatch.credit_of(conn.name)),
            last_seen=conn.last_seen_wall, topology=conn.topology, snapshot=conn.snapshot,
            tasks=list(conn.tasks.values()), labels=labels.to_texts(conn.labels),
            **self._storage(conn))

    def _storage(self, conn: AgentConn) -> dict[str, Any]:
        declared = conn.storage
        if declared is None:
            return {}
        shared = self.dispatch.storage
        return {"storage": f"{declared.name}={declared.tier.value}",
                "storage_cap": shared.caps().get(declared.name, 0),
                "storage_out": shared.out().get(declared.name, 0)}

    # -- Guard House and quarantine, cluster-wide ----------------------------------------------

    def guards(self) -> pb.GuardsReply:
        functions: dict[str, dict[str, Any]] = {}
        quarantined: list[pb.QuarantinedCall] = []
        for conn in self.registry.connected():
            snapshot = _snapshot(conn)
            house, quarantine = snapshot.guard_house, snapshot.quarantine
            for name, rep in (house.methods.items() if house is not None else ()):
                _merge(functions.setdefault(name, {"blocked_on": []}), conn.name, rep)
            for call in (quarantine.recent if quarantine is not None else ()):
                quarantined.append(_quarantined(conn.name, call))
        reply = self._cluster_guards()
        for name in sorted(functions):
            f = functions[name]
            reply.functions.append(pb.FunctionHealth(
                name=name, attempts=f["attempts"], successes=f["successes"],
                failures=f["failures"], mean_time=f["time"] / f["attempts"] if f["attempts"]
                else 0.0, health=f["health"], blocked_on=sorted(f["blocked_on"]),
                blocked=name in self.cluster_guards.blocked))
            reply.executions += f["attempts"]
            reply.failures += f["failures"]
        quarantined.sort(key=lambda q: q.at, reverse=True)
        reply.quarantine.extend(quarantined[:QUARANTINE_LIMIT])
        return reply

    def _cluster_guards(self) -> pb.GuardsReply:
        """The cluster's Guard House: its mode and what it blocks (totals are added by
        :meth:`guards` from the connected agents' records)."""
        guards = self.cluster_guards
        policy = guards.policy
        return pb.GuardsReply(mode=policy.mode, failure_threshold=policy.failure_threshold
                              if policy.auto_block else 0.0,
                              min_attempts=policy.min_attempts if policy.auto_block else 0,
                              blocked=sorted(guards.blocked), refusals=guards.refusals)

    # -- one token -----------------------------------------------------------------------------

    async def token(self, token_id: str, viewer: str | None = None) -> pb.TokenDetail:
        """One token's detail. ``viewer`` is the client id asking (``None``: an operator);
        another client's token shows its states and times but not its arguments, error
        message or traceback."""
        if not token_id or len(token_id) > MAX_ID_LENGTH:
            raise BadRequest(f"a token id has 1 to {MAX_ID_LENGTH} characters")
        record = (await self.store.read(self.ledger.records, [token_id]))[0]
        if record is None:
            raise UnknownToken(f"no token {token_id!r} (never submitted, or expired)")
        detail = token_detail(record)
        if viewer is not None and (not viewer or viewer != record.owner):
            detail.args_summary = detail.error_message = detail.traceback = ""
            detail.redacted = True
        return detail

    def series_points(self, seconds: int, since: float) -> pb.SeriesReply:
        points = self.series.points(min(max(seconds, 1), 600), since)
        return pb.SeriesReply(points=[pb.SeriesPoint(t=p.t, completed=p.completed,
                                                     failed=p.failed, submitted=p.submitted,
                                                     p50=p.p50, p95=p.p95) for p in points])

    async def audit(self, limit: int) -> pb.AuditReply:
        entries = await self.store.read(self.ledger.audit_log, min(max(limit, 1), 1000))
        return pb.AuditReply(entries=[pb.AuditEntry(at=e.at, actor=e.actor, action=e.action,
                                                    target=e.target, ok=e.ok, result=e.result)
                                      for e in entries])

    def ping(self) -> pb.PingReply:
        return pb.PingReply(version=VERSION, time=time.time())


def _merge(into: dict[str, Any], node: str, rep: MethodRecord) -> None:
    into["attempts"] = into.get("attempts", 0) + rep.attempts
    into["successes"] = into.get("successes", 0) + rep.successes
    into["failures"] = into.get("failures", 0) + rep.failures
    into["time"] = into.get("time", 0.0) + rep.mean_time * rep.attempts
    current = into.get("health", "unknown")
    rank = HEALTH_ORDER.index
    if rep.health in HEALTH_ORDER and rank(rep.health) > rank(current if current in HEALTH_ORDER
                                                              else "unknown"):
        into["health"] = rep.health
    into.setdefault("health", "unknown")
    if rep.blocked:
        into["blocked_on"].append(node)


def _quarantined(node: str, call: QuarantinedCall) -> pb.QuarantinedCall:
    return pb.QuarantinedCall(
        id=call.id, node=node, task=call.task, operation_type=call.operation_type,
        deviation=call.deviation_percent, reason=call.reason,
        args_summary=call.args_summary[:SUMMARY_LIMIT], at=call.timestamp,
        replayable=call.replayable)


def token_detail(record: TokenRecord) -> pb.TokenDetail:
    detail = pb.TokenDetail(token_id=record.token_id, state=record.state.value,
                            task=record.task, weight=record.weight, attempt=record.attempt,
                            idempotent=record.idempotent, error_type=record.error_type,
                            error_message=record.error_message)
    for state, at in sorted(record.times.items(), key=lambda pair: pair[1]):
        detail.times.append(pb.StateTime(state=state.value, at=at))
    detail.node = record.agent
    if record.item:
        item = pb.TaskItem.FromString(record.item)
        detail.operation_type = item.operation_type
        detail.args_bytes = len(item.payload)
        detail.args_summary = summarize_payload(item.payload, item.codec)
    if record.result:
        _add_result(detail, pb.ResultItem.FromString(record.result))
    return detail


def _add_result(detail: pb.TokenDetail, result: pb.ResultItem) -> None:
    detail.node, detail.core, detail.worker = result.node, result.core, result.worker
    detail.operation_type = detail.operation_type or result.operation_type
    if result.error_type:
        detail.error_type, detail.error_message = result.error_type, result.error_message
        detail.traceback = result.traceback[-8000:]
    shown = {t.state for t in detail.times}
    if result.started_at and TokenState.EXECUTING.value not in shown:
        detail.times.append(pb.StateTime(state=TokenState.EXECUTING.value, at=result.started_at))
    if result.finished_at and detail.state not in shown:
        detail.times.append(pb.StateTime(state=detail.state, at=result.finished_at))
    detail.times.sort(key=lambda t: t.at)


def summarize_payload(payload: bytes, codec: int) -> str:
    """A bounded description of a call's arguments: types and sizes, never values."""
    if codec == pb.PICKLE:
        return f"pickle, {len(payload)} bytes (not decoded by the gateway)"
    try:
        args, kwargs = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.UnpackException):
        return f"{len(payload)} bytes, not a msgpack [args, kwargs] pair"
    parts = [_shape(value) for value in (args if isinstance(args, list) else [args])]
    if isinstance(kwargs, dict):
        parts += [f"{key}={_shape(value)}" for key, value in kwargs.items()]
    return f"({', '.join(parts)})"[:SUMMARY_LIMIT]


def _shape(value: Any) -> str:
    if isinstance(value, str | bytes | list | dict):
        return f"{type(value).__name__}[{len(value)}]"
    return type(value).__name__

