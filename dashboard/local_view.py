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
from typing import Any

WEIGHTS = ("heavy", "medium", "light")
STATES = {"running": "RUNNING", "draining": "DRAINING", "drained": "DRAINED"}
NODE_STATES = {"running": "UP", "draining": "DRAINING", "drained": "DRAINED"}
NO_REDIS = None  # the status's "redis": embedded mode has none (the panel says so)


def cluster_state(snapshot: dict[str, Any]) -> str:
    """RUNNING, DRAINING or DRAINED as the cluster says it (a stopped host: STOPPED)."""
    state = str(snapshot.get("state", ""))
    return STATES.get(state, state.upper())


def credits(snapshot: dict[str, Any]) -> dict[str, int]:
    """Free slots per weight class: the active mailboxes' room on the cores it may use."""
    capacity = int(snapshot.get("mailbox_capacity") or 0)
    free = {}
    for core in snapshot.get("cores", []):
        active = core.get("depths", [])[:core.get("active_mailboxes", 0)]
        free[core["core"]] = sum(max(0, capacity - depth) for depth in active)
    policy = snapshot.get("policy", {})
    return {w: sum(free.get(core, 0) for core in policy.get(w, [])) for w in WEIGHTS}


def task_rows(specs: list[Any]) -> list[dict[str, Any]]:
    """The registered tasks (``TaskSpec``-like: name and tags), as an agent reports them."""
    return [{"name": spec.name, "weight": spec.tags.weight.value,
             "idempotent": spec.tags.idempotent, "time_limit": spec.tags.time_limit,
             "requires": [f"{k}={v}" for k, v in spec.tags.requires]} for spec in specs]


def recent_rows(snapshot: dict[str, Any], node: str) -> list[dict[str, Any]]:
    """The newest finished attempts, as the gateway's ``recent`` list has them."""
    return [{
        "token_id": r["token_id"], "operation_type": r.get("operation_type", ""),
        "state": "completed" if r.get("success") else "failed", "node": node,
        "core": r.get("core_id") or 0, "worker": r.get("worker_id") or "",
        "attempt": r.get("attempt", 1), "error_type": r.get("error_type", ""),
        "duration": round(float(r.get("execution_time", 0.0)), 6),
        "finished_at": float(r.get("finished_at", 0.0)),
    } for r in snapshot.get("recent_executions", [])]


def node_row(snapshot: dict[str, Any], *, host: str, pid: int, at: float,
             tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """This host as the one node of the cluster panel."""
    tokens = snapshot.get("tokens", {})
    executing = int(tokens.get("executing", 0))
    state = str(snapshot.get("state", ""))
    return {
        "name": snapshot.get("node") or host, "state": NODE_STATES.get(state, state.upper()),
        "reason": snapshot.get("drain_reason", ""), "host": host, "pid": pid,
        "inflight": executing + int(tokens.get("waiting", 0)) - int(tokens.get("held", 0)),
        "executing": executing, "stuck": snapshot.get("stuck", 0),
        "blocked": snapshot.get("blocked", 0), "workers": snapshot.get("workers", 0),
        "credits": credits(snapshot), "last_seen": at, "tasks": tasks, "labels": {},
        "topology": {key: snapshot.get(key) for key in
                     ("topology", "workers", "workers_per_core", "mailbox_capacity", "policy")},
        "snapshot": snapshot,
    }


def status(snapshot: dict[str, Any], node: dict[str, Any], drain_since: float) -> dict[str, Any]:
    """The whole status (what ``shared.status.describe`` makes of a gateway's reply)."""
    tokens = snapshot.get("tokens", {})
    state = cluster_state(snapshot)
    return {
        "state": state, "reason": snapshot.get("drain_reason", ""),
        "uptime": round(float(snapshot.get("uptime", 0.0)), 1),
        "drain_since": drain_since if state in ("DRAINING", "DRAINED") else 0.0,
        "inflight": node["inflight"], "executing": node["executing"],
        "held": int(tokens.get("held", 0)),
        "counts": {"submitted": tokens.get("submitted", 0),
                   "completed": tokens.get("completed", 0), "failed": tokens.get("failed", 0),
                   "killed": tokens.get("killed", 0), "requeued": tokens.get("retried", 0),
                   "lost": 0},
        "pending": dict.fromkeys(WEIGHTS, 0), "redis": NO_REDIS, "nodes": [node],
        "recent": recent_rows(snapshot, node["name"]),
    }


def guards(snapshot: dict[str, Any], node: str) -> dict[str, Any]:
    """The Guard House and quarantine (what the gateway's Guards reply holds), this host's:
    its functions, its mode and totals (the panel's summary line), its quarantine."""
    house = snapshot.get("guard_house", {})
    methods = house.get("methods", {})
    functions = [{
        "name": name, "attempts": int(rep.get("attempts", 0)),
        "successes": int(rep.get("successes", 0)), "failures": int(rep.get("failures", 0)),
        "mean_time": float(rep.get("mean_time", 0.0)), "health": str(rep.get("health", "")),
        "blocked_on": [node] if rep.get("blocked") else [], "blocked": bool(rep.get("blocked")),
    } for name, rep in sorted(methods.items())]
    totals = {
        "mode": str(house.get("mode", "passive")),
        "failure_threshold": float(house.get("failure_threshold", 0.0)),
        "min_attempts": int(house.get("min_attempts", 0)),
        "executions": sum(f["attempts"] for f in functions),
        "failures": sum(f["failures"] for f in functions),
        "blocked": sorted(f["name"] for f in functions if f["blocked"]),
        "refusals": int(house.get("refusals", 0)),
    }
    quarantine: list[dict[str, Any]] = [{
        "id": str(q.get("id", "")), "node": node, "task": str(q.get("task", "")),
        "operation_type": str(q.get("operation_type", "")),
        "deviation": float(q.get("deviation_percent", 0.0)), "reason": str(q.get("reason", "")),
        "args_summary": str(q.get("args_summary", "")), "at": float(q.get("timestamp", 0.0)),
        "replayable": bool(q.get("replayable", False)),
    } for q in snapshot.get("quarantine", {}).get("recent", [])]
    quarantine.sort(key=lambda q: q["at"], reverse=True)
    return {"functions": functions, "house": totals, "quarantine": quarantine}


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (0 when there are none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]
