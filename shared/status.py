"""The cluster status as plain data and as text (for the CLI and the dashboard)."""

from __future__ import annotations

from typing import Any

import msgpack
from tokengate.shared.rpc import tokengate_pb2 as pb


def describe(reply: pb.StatusReply) -> dict[str, Any]:
    return {
        "state": reply.state, "reason": reply.reason, "uptime": round(reply.uptime, 1),
        "inflight": reply.inflight, "counts": dict(reply.counts), "pending": dict(reply.pending),
        "nodes": [{
            "name": n.name, "state": n.state, "reason": n.reason, "host": n.host,
            "inflight": n.inflight, "credits": {c.weight: c.count for c in n.credits},
            "last_seen": n.last_seen,
            "topology": msgpack.unpackb(n.topology, strict_map_key=False) if n.topology else {},
            "snapshot": msgpack.unpackb(n.snapshot, strict_map_key=False) if n.snapshot else {},
        } for n in reply.nodes],
        "recent": [{
            "token_id": r.token_id, "operation_type": r.operation_type,
            "state": pb.FinalState.Name(r.state).lower(), "node": r.node, "core": r.core,
            "worker": r.worker, "attempt": r.attempt, "error_type": r.error_type,
            "duration": round(r.finished_at - r.started_at, 6) if r.started_at else None,
            "finished_at": r.finished_at,
        } for r in reply.recent],
    }


def format_status(info: dict[str, Any]) -> str:
    counts = info["counts"]
    lines = [
        f"cluster {info['state']}" + (f" ({info['reason']})" if info["reason"] else "")
        + f"  uptime {info['uptime']}s  in flight {info['inflight']}",
        "tokens  " + "  ".join(f"{k} {counts.get(k, 0)}" for k in
                               ("submitted", "completed", "failed", "killed", "requeued", "lost")),
        "waiting " + "  ".join(f"{w} {n}" for w, n in sorted(info["pending"].items())),
        f"{'node':<16} {'state':<12} {'inflight':>8}  credits (heavy/medium/light)  workers",
    ]
    for node in info["nodes"]:
        credits = node["credits"]
        workers = node["topology"].get("workers", "?")
        lines.append(
            f"{node['name']:<16} {node['state']:<12} {node['inflight']:>8}  "
            f"{credits.get('heavy', 0)}/{credits.get('medium', 0)}/{credits.get('light', 0):<20}"
            f"  {workers}" + (f"  ({node['reason']})" if node["reason"] else ""))
    if not info["nodes"]:
        lines.append("(no agents connected)")
    return "\n".join(lines)
