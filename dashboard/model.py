"""The view model: plain data of every panel, built from what the gateway said. Pure.

Each builder turns one part of a :class:`~tokengate.dashboard.source.Reading` into the small,
stable dict a panel shows. Stable matters: the diff sends a field only when it changed, so
values that tick every second without meaning (uptime, heartbeat times, float noise) are
turned into ones that do not (a start time, an age that is 0 while heartbeats are fresh,
rounded figures). Arguments and results appear only when ``show_payloads`` is on.
"""

from __future__ import annotations

import math
from typing import Any

from tokengate.shared.errors import SnapshotError
from tokengate.shared.snapshot import AgentSnapshot, NestedCounts, NodeShape, ProcessLoad

WEIGHTS = ("heavy", "medium", "light")
FRESH_HEARTBEAT = 2.0  # seconds: a younger heartbeat shows as age 0 (no churn)
HIDDEN = None  # what a payload field holds when payloads are not shown


def sig(value: float, digits: int = 3) -> float:
    """``value`` rounded to ``digits`` significant digits (0 stays 0)."""
    if not value or not math.isfinite(value):
        return 0.0
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def redis_panel(status: dict[str, Any]) -> dict[str, Any]:
    if "redis" in status and status["redis"] is None:  # embedded mode: no Redis at all
        return {"ok": None, "memory": 0, "note": "none (embedded)"}
    redis = status.get("redis") or {}
    ok = bool(redis.get("ok"))
    return {"ok": ok, "memory": int(redis.get("memory", 0)), "note": "" if ok else "unreachable"}


def held(status: dict[str, Any]) -> int:
    """Waiting tokens a cluster drain holds. While the cluster drains nothing is dispatched,
    so every waiting token is held (a gateway that does not report ``held`` still says so)."""
    if status.get("held"):
        return int(status["held"])
    if status.get("state") in ("DRAINING", "DRAINED"):
        return sum(status.get("pending", {}).values())
    return 0


def waiting(status: dict[str, Any]) -> dict[str, int]:
    """Waiting tokens per weight, not counting those a drain holds."""
    pending = {w: int(status.get("pending", {}).get(w, 0)) for w in WEIGHTS}
    if held(status) >= sum(pending.values()):
        return dict.fromkeys(WEIGHTS, 0)
    return pending


def agent_snapshot(node: dict[str, Any]) -> AgentSnapshot:
    """A node's snapshot, typed (defaults where it says nothing, or says it wrongly)."""
    try:
        return AgentSnapshot.from_wire(node.get("snapshot"))
    except SnapshotError:
        return AgentSnapshot()


def node_shape(node: dict[str, Any]) -> NodeShape:
    """A node's shape as its hello said it, typed (defaults where it says nothing)."""
    try:
        return NodeShape.from_wire(node.get("topology"))
    except SnapshotError:
        return NodeShape()


def capacity_totals(nodes: list[dict[str, Any]]) -> dict[str, int]:
    """What the connected agents bring: worker threads and queue slots summed over agents,
    physical cores summed over hosts (agents sharing a host share its cores, so each host
    counts once, with the largest figure its agents report)."""
    workers = slots = 0
    cores_by_host: dict[str, int] = {}
    for node in nodes:
        if node.get("state") == "DISCONNECTED":
            continue
        shape = node_shape(node)
        count = shape.workers or 0
        workers += count
        slots += count * (shape.mailbox_capacity or 0)
        host = node.get("host") or node["name"]
        cores_by_host[host] = max(cores_by_host.get(host, 0),
                                  shape.topology.physical_cores or 0)
    return {"workers": workers, "physical_cores": sum(cores_by_host.values()),
            "hosts": len(cores_by_host), "capacity": slots}


def cluster_panel(status: dict[str, Any], at: float) -> dict[str, Any]:
    states: dict[str, int] = {}
    for node in status.get("nodes", []):
        states[node["state"]] = states.get(node["state"], 0) + 1
    return {
        "state": status.get("state", ""), "reason": status.get("reason", ""),
        "drain_since": round(status.get("drain_since", 0.0)),
        "started": round(at - float(status.get("uptime", 0.0))),
        "inflight": status.get("inflight", 0), "executing": status.get("executing", 0),
        "held": held(status), "waiting": sum(waiting(status).values()),
        "redis": redis_panel(status), "agents": len(status.get("nodes", [])),
        "node_states": dict(sorted(states.items())),
        **capacity_totals(status.get("nodes", [])),
    }


def pool_panel(status: dict[str, Any]) -> dict[str, Any]:
    counts = status.get("counts", {})
    inflight = status.get("inflight", 0)
    executing = status.get("executing", 0)
    return {
        "created": counts.get("submitted", 0), "waiting": waiting(status),
        "held": held(status), "admitted": max(0, inflight - executing),
        "executing": executing, "inflight": inflight,
        **{k: counts.get(k, 0) for k in ("completed", "failed", "killed", "requeued", "lost")},
    }


def pool_point(status: dict[str, Any], at: float) -> dict[str, Any]:
    """One point of the token pool chart."""
    return {"t": int(at), "waiting": sum(waiting(status).values()),
            "held": held(status), "executing": status.get("executing", 0),
            "inflight": status.get("inflight", 0)}


def _core_cells(snapshot: AgentSnapshot) -> list[dict[str, Any]]:
    """Per core: active pattern, each mailbox's depth, busy, stuck and blocked workers, the totals,
    and the tokens routed there per weight."""
    return [{
        "core": core.core, "cpu": core.cpu,
        "active": len(core.depths) if core.active_mailboxes is None else core.active_mailboxes,
        "depths": list(core.depths), "busy": list(core.busy), "stuck": list(core.stuck),
        "blocked": list(core.blocked), "queued": sum(core.depths), "executing": sum(core.busy),
        "routed": {w: core.routed.get(w, 0) for w in WEIGHTS},
    } for core in snapshot.cores]


def _process(snapshot: AgentSnapshot) -> tuple[float | None, int | None]:
    """The agent process's CPU percent and resident memory (MiB), when it reports them."""
    process = snapshot.process or ProcessLoad()
    cpu, rss = process.cpu_percent, process.rss_bytes
    return (None if cpu is None else round(cpu), None if rss is None else round(rss / 2**20))


def _nested(snapshot: AgentSnapshot) -> dict[str, int]:
    """The agent's nested tasks (run locally, outside the ledger): counts since it started."""
    return (snapshot.nested or NestedCounts()).to_wire()


def heartbeat_age(last_seen: float, at: float) -> int:
    age = at - last_seen if last_seen else 0.0
    return 0 if age < FRESH_HEARTBEAT else int(age)


def node_card(node: dict[str, Any], at: float) -> dict[str, Any]:
    snapshot, shape = agent_snapshot(node), node_shape(node)
    cpu, rss = _process(snapshot)
    tasks = sorted(t["name"] + (f" [{','.join(t['requires'])}]" if t.get("requires") else "")
                   for t in node.get("tasks", []))
    labels = [f"{k}={v}" for k, v in sorted((node.get("labels") or {}).items())]
    return {
        "name": node["name"], "host": node.get("host", ""), "state": node.get("state", ""),
        "reason": node.get("reason", ""), "pid": node.get("pid", 0),
        "age": heartbeat_age(node.get("last_seen", 0.0), at),
        "inflight": node.get("inflight", 0), "executing": node.get("executing", 0),
        "stuck": node.get("stuck", 0), "blocked": node.get("blocked", 0),
        "credits": {w: node.get("credits", {}).get(w, 0) for w in WEIGHTS},
        "cpu": cpu, "rss": rss, "tasks": tasks, "labels": labels,
        "workers": _either(snapshot.shape.workers, shape.workers),
        "wpc": _either(snapshot.shape.workers_per_core, shape.workers_per_core),
        "capacity": shape.mailbox_capacity,
        "completed": snapshot.tokens.completed, "failed": snapshot.tokens.failed,
        "nested": _nested(snapshot), "cores": _core_cells(snapshot),
    }


def _either(first: int | None, second: int | None) -> int | None:
    return second if first is None else first


def task_choices(status: dict[str, Any]) -> list[dict[str, Any]]:
    """Every task some agent registered (name and weight), for the launch form."""
    seen: dict[str, dict[str, Any]] = {}
    for node in status.get("nodes", []):
        for task in node.get("tasks", []):
            seen.setdefault(task["name"], {"name": task["name"], "weight": task["weight"]})
    return [seen[name] for name in sorted(seen)]


def function_rows(guards: dict[str, Any]) -> dict[str, dict[str, Any]]:
    rows = {}
    for fn in guards.get("functions", []):
        attempts = fn["attempts"]
        rows[fn["name"]] = {
            "attempts": attempts, "successes": fn["successes"], "failures": fn["failures"],
            "success_rate": round(100.0 * fn["successes"] / attempts, 1) if attempts else None,
            "mean_ms": sig(fn["mean_time"] * 1000.0), "health": fn["health"],
            "blocked_on": list(fn["blocked_on"]), "blocked": bool(fn.get("blocked")),
        }
    return rows


def guard_house_panel(guards: dict[str, Any]) -> dict[str, Any]:
    """The Guard House's mode and cluster totals (the seed's status block)."""
    house = guards.get("house") or {}
    if not house:
        return {}
    executions, failures = house["executions"], house["failures"]
    return {
        "mode": house["mode"], "threshold_percent": round(100.0 * house["failure_threshold"], 1),
        "min_attempts": house["min_attempts"], "methods_tracked": len(guards["functions"]),
        "executions": executions,
        "success_rate": round(100.0 * (executions - failures) / executions, 1)
        if executions else None,
        "blocked": list(house["blocked"]), "refusals": house["refusals"],
    }


def quarantine_rows(guards: dict[str, Any], show_payloads: bool) -> dict[str, dict[str, Any]]:
    return {q["id"]: {
        "node": q["node"], "task": q["task"], "operation_type": q["operation_type"],
        "deviation": round(q["deviation"], 1), "reason": q["reason"],
        "args": q["args_summary"] if show_payloads else HIDDEN, "at": round(q["at"], 3),
        "replayable": q["replayable"]} for q in guards.get("quarantine", [])}


def feed_item(outcome: dict[str, Any]) -> dict[str, Any]:
    duration = outcome.get("duration")
    return {
        "key": f"{outcome['token_id']}/{outcome.get('attempt', 0)}",
        "token_id": outcome["token_id"], "op": outcome.get("operation_type", ""),
        "node": outcome.get("node", ""), "core": outcome.get("core", 0),
        "worker": outcome.get("worker", ""), "attempt": outcome.get("attempt", 0),
        "state": outcome.get("state", ""), "error_type": outcome.get("error_type", ""),
        "ms": None if duration is None else sig(duration * 1000.0),
        "at": round(outcome.get("finished_at", 0.0), 3),
    }


def sample_feed(items: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """At most ``limit`` items, failures and kills first, then the newest; oldest first."""
    if len(items) <= limit:
        return items
    bad = [i for i in items if i["state"] != "completed"]
    if len(bad) >= limit:
        return bad[-limit:]
    good = [i for i in items if i["state"] == "completed"]
    return sorted(bad + good[len(bad) - limit:], key=lambda i: i["at"])


def series_point(point: dict[str, Any]) -> dict[str, Any]:
    return {"t": int(point["t"]), "completed": point["completed"], "failed": point["failed"],
            "submitted": point["submitted"], "p50": sig(point["p50"] * 1000.0),
            "p95": sig(point["p95"] * 1000.0)}


def audit_item(entry: dict[str, Any], source: str = "gateway") -> dict[str, Any]:
    return {"key": f"{entry['at']:.6f}|{entry['actor']}|{entry['action']}|{entry['target']}",
            "at": round(entry["at"], 3), "actor": entry["actor"], "action": entry["action"],
            "target": entry["target"], "ok": entry["ok"], "result": entry["result"][:300],
            "source": source}


FINAL = ("completed", "failed", "killed")


def execution_time(times: list[dict[str, Any]]) -> float | None:
    """Seconds from EXECUTING to the final state (the agent's own clock for both); None while
    it runs, or when it never ran (killed in a queue)."""
    at = {t["state"]: t["at"] for t in times}
    end = next((at[s] for s in FINAL if s in at), None)
    if "executing" not in at or end is None:
        return None
    return round(max(0.0, end - at["executing"]), 6)


def history_record(detail: dict[str, Any]) -> dict[str, Any]:
    """Where and how the token's current attempt ran, in the seed's history fields (plus node
    and attempt): what ``tokengate history`` writes for it, read from the token detail alone."""
    state = detail.get("state", "")
    return {
        "token_id": detail["token_id"], "operation_type": detail.get("operation_type", ""),
        "success": state == "completed" if state in FINAL else None,
        "execution_time": execution_time(detail.get("times", [])),
        "core_id": detail.get("core") or None, "worker_id": detail.get("worker") or None,
        "attempt": detail.get("attempt", 0), "node": detail.get("node") or None,
    }


def token_view(detail: dict[str, Any], show_payloads: bool) -> dict[str, Any]:
    """A token's detail for the page, with its history record; the argument summary only when
    payloads are shown."""
    view = dict(detail, record=history_record(detail))
    if not show_payloads:
        view["args_summary"] = HIDDEN
    return view
