"""The status snapshot: one call, plain data, the seed's dashboard panels.

:func:`build_status` joins the scheduler's own snapshot with the guards' state into the panels
the dashboard and ``tokengate status`` show: system status, token pool, core affinity
distribution, Guard House, recent executions - plus quarantine, overflow, convergence,
retry policies and the code inspector's scores. The guards also add their panels to the
scheduler's ``snapshot()`` (:func:`guard_panels`), so an agent's snapshot sent to the gateway
carries them, and ``build_status(snapshot)`` rebuilds the full status on the other side.
"""

from __future__ import annotations

from typing import Any

from tokengate.node_agent.guards.inspector import ComplexityLevel
from tokengate.node_agent.guards.retry import policy_for

RECENT_EXECUTIONS = 20


def system_panel(sched: dict[str, Any]) -> dict[str, Any]:
    topology = sched.get("topology", {})
    return {
        "node": sched.get("node"),
        "state": sched.get("state"),
        "drain_reason": sched.get("drain_reason", ""),
        "uptime": round(float(sched.get("uptime", 0.0)), 3),
        "workers": sched.get("workers"),
        "workers_per_core": sched.get("workers_per_core"),
        "cores": len(sched.get("cores", [])),
        "physical_cores": topology.get("physical_cores"),
        "logical_cores": topology.get("logical_cores"),
        "smt_enabled": topology.get("smt_enabled"),
        "active_patterns": {core["core"]: core["active_mailboxes"]
                            for core in sched.get("cores", [])},
    }


def token_pool_panel(sched: dict[str, Any]) -> dict[str, Any]:
    tokens = sched.get("tokens", {})
    return {
        "created": tokens.get("submitted", 0),
        "waiting": tokens.get("waiting", 0),
        "executing": tokens.get("executing", 0),
        "completed": tokens.get("completed", 0),
        "failed": tokens.get("failed", 0),
        "killed": tokens.get("killed", 0),
        "retried": tokens.get("retried", 0),
        "held": tokens.get("held", 0),
    }


def affinity_panel(sched: dict[str, Any]) -> dict[str, Any]:
    cores = [
        {
            "core": core["core"], "cpu": core.get("cpu"), "routed": dict(core["routed"]),
            "total": sum(core["routed"].values()), "queued": sum(core["depths"]),
            "executing": sum(core.get("busy", [])), "active_mailboxes": core["active_mailboxes"],
        }
        for core in sched.get("cores", [])
    ]
    return {"policy": sched.get("policy", {}), "cores": cores,
            "total_routed": sum(core["total"] for core in cores)}


def guard_panels(guards: Any, recent: int = RECENT_EXECUTIONS) -> dict[str, Any]:
    """The panels the guards own: Guard House, recent executions, quarantine, and the rest."""
    functions = {info.name: {"complexity_score": info.score, "level": info.level.value,
                             "retry": info.retry.to_dict()}
                 for info in guards.functions()}
    return {
        "guard_house": guards.guard_house.snapshot(),
        "recent_executions": [record.to_dict() for record in guards.history.recent(recent)],
        "history": {"capacity": guards.history.capacity, "recorded": guards.history.total},
        "quarantine": {"enabled": guards.config.spike_detection,
                       **guards.quarantine.snapshot(recent=25), **guards.spikes.snapshot()},
        "overflow": guards.overflow.snapshot() if guards.overflow else {"enabled": False},
        "convergence": (guards.convergence.snapshot() if guards.convergence
                        else {"enabled": False}),
        "retry_policies": {level.value: policy_for(level).to_dict() for level in ComplexityLevel},
        "functions": functions,
        "metrics": {"port": guards.metrics_port},
    }


def build_status(sched: dict[str, Any], guards: Any | None = None,
                 recent: int = RECENT_EXECUTIONS) -> dict[str, Any]:
    """Every panel, from a scheduler ``snapshot()`` and (unless it has them) its guards'."""
    status = {
        "system_status": system_panel(sched),
        "token_pool": token_pool_panel(sched),
        "core_affinity": affinity_panel(sched),
    }
    if guards is not None:
        status.update(guard_panels(guards, recent))
    else:
        status.update({key: value for key, value in sched.items()
                       if key not in status and key not in _SCHEDULER_KEYS})
    return status


_SCHEDULER_KEYS = frozenset({"node", "state", "drain_reason", "uptime", "topology", "workers",
                             "workers_per_core", "mailbox_capacity", "policy", "tokens",
                             "cores", "storage"})
