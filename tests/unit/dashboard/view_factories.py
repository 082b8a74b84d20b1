"""Readings shaped as the gateway's answers become them (``dashboard.source``), for unit tests."""

from __future__ import annotations

from typing import Any

from tokengate.dashboard.source import Reading

NOW = 1_800_000_000.0


def snapshot(*, process: bool = True, routed: int = 5) -> dict[str, Any]:
    """An agent's snapshot as the agent sends it (the scheduler's, with its process)."""
    cores = [{"core": c, "cpu": c - 1, "active_mailboxes": 4, "depths": [1, 0, 0, 0],
              "busy": [1, 0, 0, 0], "stuck": [0, 0, 0, 0], "peak_depths": [3, 0, 0, 0],
              "routed": {"heavy": routed * (c == 1), "medium": 0, "light": routed * (c == 2)}}
             for c in (1, 2)]
    snap: dict[str, Any] = {"node": "n", "state": "running", "uptime": 12.5, "workers": 8,
                            "workers_per_core": 4, "mailbox_capacity": 120,
                            "tokens": {"completed": 10, "failed": 1}, "cores": cores}
    snap["nested"] = {"submitted": 7, "active": 1, "completed": 5, "failed": 1, "killed": 0}
    if process:
        snap["process"] = {"pid": 42, "cpu_percent": 12.4, "rss_bytes": 80 * 2**20 + 5,
                           "threads": 19, "time": 0.0}
    return snap


def node(name: str, *, host: str = "h1", state: str = "UP", last_seen: float = NOW - 0.3,
         physical_cores: int = 2, **snap: Any) -> dict[str, Any]:
    return {"name": name, "state": state, "reason": "", "host": host, "inflight": 2,
            "credits": {"heavy": 3, "medium": 4, "light": 5}, "last_seen": last_seen,
            "topology": {"topology": {"physical_cores": physical_cores, "logical_cores": 4},
                         "workers": 8, "workers_per_core": 4, "mailbox_capacity": 120},
            "snapshot": snapshot(**snap), "executing": 1, "stuck": 0, "pid": 42,
            "tasks": [{"name": "m:b", "weight": "light", "idempotent": True, "time_limit": 0},
                      {"name": "m:a", "weight": "heavy", "idempotent": True, "time_limit": 0}]}


def outcome(token_id: str, at: float, state: str = "completed", **extra: Any) -> dict[str, Any]:
    item = {"token_id": token_id, "operation_type": "add", "state": state, "node": "n1",
            "core": 2, "worker": "worker_1_core_2", "attempt": 1,
            "error_type": "" if state == "completed" else "ValueError", "duration": 0.00123,
            "finished_at": at}
    item.update(extra)
    return item


def status(*, nodes: list[dict[str, Any]] | None = None, state: str = "RUNNING",
           recent: list[dict[str, Any]] | None = None, uptime: float = 100.2,
           completed: int = 10, pending: int = 0) -> dict[str, Any]:
    return {"state": state, "reason": "", "uptime": uptime, "inflight": 3,
            "counts": {"submitted": 20, "completed": completed, "failed": 1, "killed": 0,
                       "requeued": 0, "lost": 0},
            "pending": {"heavy": 0, "medium": pending, "light": 0},
            "nodes": nodes if nodes is not None else [node("n1"), node("n2", host="h2")],
            "recent": recent or [], "executing": 1, "held": 0,
            "redis": {"ok": True, "memory": 2**20}, "drain_since": 0.0}


def reading(at: float = NOW, **parts: Any) -> Reading:
    errors = parts.pop("errors", {})
    parts.setdefault("status", status())
    return Reading(at=at, errors=errors, **parts)
