"""An embedded host's snapshot in the shape the gateway's replies take. Pure.

The embedded dashboard (:mod:`.embedded`) reads one in-process scheduler instead of a
gateway. These functions turn that scheduler's ``snapshot()`` (which already carries the
guards' panels: Guard House, quarantine, recent executions) into the same plain data
:class:`~tokengate.dashboard.source.ClusterSource` makes of Status and Guards, so the view
model, the diff and the pages stay the ones the cluster uses. The cluster panel then shows
one node: this host.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tokengate.shared.snapshot import AgentSnapshot, GuardHouseStatus, as_snapshot

WEIGHTS = ("heavy", "medium", "light")
STATES = {"running": "RUNNING", "draining": "DRAINING", "drained": "DRAINED"}
NODE_STATES = {"running": "UP", "draining": "DRAINING", "drained": "DRAINED"}
NO_REDIS = None  # the status's "redis": embedded mode has none (the panel says so)


Snapshot = Mapping[str, Any] | AgentSnapshot  # the host's snapshot, as a map or typed


def typed(snapshot: Snapshot) -> AgentSnapshot:
    """The host's snapshot through its schema (:mod:`tokengate.shared.snapshot`)."""
    return as_snapshot(snapshot)


def cluster_state(snapshot: Snapshot) -> str:
    """RUNNING, DRAINING or DRAINED as the cluster says it (a stopped host: STOPPED)."""
    state = typed(snapshot).state
    return STATES.get(state, state.upper())


def credits(snapshot: Snapshot) -> dict[str, int]:
    """Free slots per weight class: the active mailboxes' room on the cores it may use."""
    snap = typed(snapshot)
    capacity = snap.shape.mailbox_capacity or 0
    free = {}
    for core in snap.cores:
        active = core.depths[:core.active_mailboxes or 0]
        free[core.core] = sum(max(0, capacity - depth) for depth in active)
    policy = snap.shape.policy
    return {w: sum(free.get(core, 0) for core in policy.get(w, ())) for w in WEIGHTS}


def task_rows(specs: list[Any]) -> list[dict[str, Any]]:
    """The registered tasks (``TaskSpec``-like: name and tags), as an agent reports them."""
    return [{"name": spec.name, "weight": spec.tags.weight.value,
             "idempotent": spec.tags.idempotent, "time_limit": spec.tags.time_limit,
             "requires": [f"{k}={v}" for k, v in spec.tags.requires]} for spec in specs]


def recent_rows(snapshot: Snapshot, node: str) -> list[dict[str, Any]]:
    """The newest finished attempts, as the gateway's ``recent`` list has them."""
    return [{
        "token_id": r.token_id, "operation_type": r.operation_type,
        "state": "completed" if r.success else "failed", "node": node,
        "core": r.core_id or 0, "worker": r.worker_id or "", "attempt": r.attempt,
        "error_type": r.error_type, "duration": round(r.execution_time, 6),
        "finished_at": r.finished_at,
    } for r in typed(snapshot).recent_executions or ()]


def node_row(snapshot: Snapshot, *, host: str, pid: int, at: float,
             tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """This host as the one node of the cluster panel."""
    snap = typed(snapshot)
    tokens = snap.tokens
    return {
        "name": snap.node or host, "state": NODE_STATES.get(snap.state, snap.state.upper()),
        "reason": snap.drain_reason, "host": host, "pid": pid,
        "inflight": tokens.executing + tokens.waiting - tokens.held,
        "executing": tokens.executing, "stuck": snap.stuck, "blocked": snap.blocked,
        "workers": snap.shape.workers or 0, "credits": credits(snap), "last_seen": at,
        "tasks": tasks, "labels": {}, "topology": snap.shape.to_wire(),
        "snapshot": snap.to_wire(),
    }


def status(snapshot: Snapshot, node: dict[str, Any], drain_since: float) -> dict[str, Any]:
    """The whole status (what ``shared.status.describe`` makes of a gateway's reply)."""
    snap = typed(snapshot)
    tokens = snap.tokens
    state = cluster_state(snap)
    return {
        "state": state, "reason": snap.drain_reason, "uptime": round(snap.uptime, 1),
        "drain_since": drain_since if state in ("DRAINING", "DRAINED") else 0.0,
        "inflight": node["inflight"], "executing": node["executing"], "held": tokens.held,
        "counts": {"submitted": tokens.submitted, "completed": tokens.completed,
                   "failed": tokens.failed, "killed": tokens.killed,
                   "requeued": tokens.retried, "lost": 0},
        "pending": dict.fromkeys(WEIGHTS, 0), "redis": NO_REDIS, "nodes": [node],
        "recent": recent_rows(snap, node["name"]),
    }


def guards(snapshot: Snapshot, node: str) -> dict[str, Any]:
    """The Guard House and quarantine (what the gateway's Guards reply holds), this host's:
    its functions, its mode and totals (the panel's summary line), its quarantine."""
    snap = typed(snapshot)
    house = snap.guard_house or GuardHouseStatus()
    functions: list[dict[str, Any]] = [{
        "name": name, "attempts": rep.attempts, "successes": rep.successes,
        "failures": rep.failures, "mean_time": rep.mean_time, "health": rep.health,
        "blocked_on": [node] if rep.blocked else [], "blocked": rep.blocked,
    } for name, rep in sorted(house.methods.items())]
    totals = {
        "mode": house.mode, "failure_threshold": house.failure_threshold or 0.0,
        "min_attempts": house.min_attempts or 0,
        "executions": sum(f["attempts"] for f in functions),
        "failures": sum(f["failures"] for f in functions),
        "blocked": sorted(f["name"] for f in functions if f["blocked"]),
        "refusals": house.refusals,
    }
    recent = snap.quarantine.recent if snap.quarantine is not None else ()
    quarantine: list[dict[str, Any]] = [{
        "id": q.id, "node": node, "task": q.task, "operation_type": q.operation_type,
        "deviation": q.deviation_percent, "reason": q.reason, "args_summary": q.args_summary,
        "at": q.timestamp, "replayable": q.replayable,
    } for q in recent]
    quarantine.sort(key=lambda q: q["at"], reverse=True)
    return {"functions": functions, "house": totals, "quarantine": quarantine}


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (0 when there are none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]
