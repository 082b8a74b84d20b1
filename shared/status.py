"""The cluster status as plain data and as text (for the CLI, ``tokengate top`` and the
dashboard)."""

from __future__ import annotations

import logging
from typing import Any

import msgpack
from tokengate.shared import wire
from tokengate.shared.errors import SnapshotError
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.snapshot import AgentSnapshot, NodeShape
from tokengate.shared.tags import Weight

logger = logging.getLogger(__name__)

COUNTER_NAMES = ("submitted", "completed", "failed", "killed", "requeued", "lost")


def _snapshot(n: pb.NodeStatus) -> dict[str, Any]:
    """The node's snapshot through its schema (defaults filled in); {} if none came yet, or
    if it does not fit (logged)."""
    if not n.snapshot:
        return {}
    try:
        return AgentSnapshot.decode(n.snapshot).to_wire()
    except SnapshotError as exc:
        logger.warning("node %s: status snapshot unreadable: %s", n.name, exc)
        return {}


def _shape(n: pb.NodeStatus) -> dict[str, Any]:
    """The node's shape from its hello (:class:`NodeShape`); {} if it sent none or a bad one."""
    if not n.topology:
        return {}
    try:
        data = msgpack.unpackb(n.topology, raw=False, strict_map_key=False)
        return NodeShape.from_wire(data).to_wire()
    except (ValueError, msgpack.UnpackException, SnapshotError) as exc:
        logger.warning("node %s: topology unreadable: %s", n.name, exc)
        return {}


def describe_node(n: pb.NodeStatus) -> dict[str, Any]:
    node: dict[str, Any] = {
        "name": n.name, "state": n.state, "reason": n.reason, "host": n.host, "pid": n.pid,
        "inflight": n.inflight, "executing": n.executing, "stuck": n.stuck,
        "blocked": n.blocked, "workers": n.workers,
        "credits": {c.weight: c.count for c in n.credits}, "last_seen": n.last_seen,
        "tasks": [{"name": t.name, "weight": t.weight, "idempotent": t.idempotent,
                   "time_limit": t.time_limit or None, "requires": list(t.requires),
                   "storage_speed": t.storage_speed or None}
                  for t in n.tasks],
        "labels": dict(text.partition("=")[::2] for text in n.labels),
        "topology": _shape(n), "snapshot": _snapshot(n),
    }
    if n.storage:
        node["storage"] = {"declared": n.storage, "cap": n.storage_cap, "out": n.storage_out}
    return node


def describe(reply: pb.StatusReply) -> dict[str, Any]:
    return {
        "state": reply.state, "reason": reply.reason, "uptime": round(reply.uptime, 1),
        "drain_since": reply.drain_since, "inflight": reply.inflight,
        "executing": reply.executing, "held": reply.held, "counts": dict(reply.counts),
        "pending": dict(reply.pending), "redis": {"ok": reply.redis_ok,
                                                  "memory": reply.redis_memory},
        "nodes": [describe_node(n) for n in reply.nodes],
        "recent": [{
            "token_id": r.token_id, "operation_type": r.operation_type,
            "state": wire.final_state(r.state).value, "node": r.node, "core": r.core,
            "worker": r.worker, "attempt": r.attempt, "error_type": r.error_type,
            "duration": round(r.finished_at - r.started_at, 6) if r.started_at else None,
            "finished_at": r.finished_at,
        } for r in reply.recent],
    }


def _task_text(task: dict[str, Any]) -> str:
    needs = task.get("requires") or ()
    return task["name"] + (f"[{','.join(needs)}]" if needs else "")


def format_status(info: dict[str, Any]) -> str:
    counts = info["counts"]
    waiting = "held" if info["state"] != "RUNNING" else "waiting"
    lines = [
        f"cluster {info['state']}" + (f" ({info['reason']})" if info["reason"] else "")
        + f"  uptime {info['uptime']}s  in flight {info['inflight']}"
        f"  executing {info.get('executing', 0)}"
        + ("" if info.get("redis", {}).get("ok", True) else "  REDIS UNREACHABLE"),
        "tokens  " + "  ".join(f"{k} {counts.get(k, 0)}" for k in COUNTER_NAMES),
        f"{waiting:<8}" + "  ".join(f"{w} {n}" for w, n in sorted(info["pending"].items())),
        f"{'node':<16} {'state':<12} {'inflight':>8} {'running':>7}  "
        f"credits ({'/'.join(w.value for w in Weight)})  workers",
    ]
    for node in info["nodes"]:
        credits = node["credits"]
        workers: int | str | None = NodeShape.from_wire(node["topology"]).workers
        workers = "?" if workers is None else workers
        if node.get("blocked"):
            workers = f"{workers} ({node['blocked']} blocked)"
        lines.append(
            f"{node['name']:<16} {node['state']:<12} {node['inflight']:>8} "
            f"{node.get('executing', 0):>7}  "
            f"{'/'.join(str(credits.get(w.value, 0)) for w in Weight):<28}  {workers}"
            + (f"  ({node['reason']})" if node["reason"] else ""))
        lines.append(f"  {'labels':<9} " + (" ".join(f"{k}={v}" for k, v in
                                                     sorted(node.get("labels", {}).items()))
                                            or "(none)"))
        if node.get("storage"):
            shared = node["storage"]
            lines.append(f"  {'storage':<9} {shared['declared']} (shared: {shared['out']} of "
                         f"{shared['cap']} writers out)")
        lines.append(f"  {'tasks':<9} " + (" ".join(_task_text(t) for t in node["tasks"])
                                           or "(none)"))
    if not info["nodes"]:
        lines.append("(no agents connected)")
    return "\n".join(lines)
