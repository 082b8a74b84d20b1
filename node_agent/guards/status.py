"""The status snapshot: one call, plain data, the seed's dashboard panels.

:func:`build_status` joins the scheduler's own snapshot with the guards' state into the panels
the dashboard and ``tokengate status`` show: system status, token pool, core affinity
distribution, Guard House, recent executions - plus quarantine, overflow, convergence,
retry policies and the code inspector's scores. The guards also add their panels to the
scheduler's ``snapshot()`` (:func:`guard_panels`), so an agent's snapshot sent to the gateway
carries them, and ``build_status(snapshot)`` rebuilds the full status on the other side.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokengate.node_agent.guards.inspector import ComplexityLevel
from tokengate.node_agent.guards.retry import policy_for
from tokengate.shared.snapshot import AgentSnapshot, as_snapshot

Snapshot = Mapping[str, Any] | AgentSnapshot  # a scheduler's snapshot, typed or as its map

RECENT_EXECUTIONS = 20


def system_panel(sched: Snapshot) -> dict[str, Any]:
    snap = as_snapshot(sched)
    topology = snap.shape.topology
    return {
        "node": snap.node,
        "state": snap.state,
        "drain_reason": snap.drain_reason,
        "uptime": round(snap.uptime, 3),
        "workers": snap.shape.workers,
        "workers_per_core": snap.shape.workers_per_core,
        "cores": len(snap.cores),
        "physical_cores": topology.physical_cores,
        "logical_cores": topology.logical_cores,
        "smt_enabled": topology.smt_enabled,
        "active_patterns": {core.core: core.active_mailboxes for core in snap.cores},
    }


def token_pool_panel(sched: Snapshot) -> dict[str, Any]:
    tokens = as_snapshot(sched).tokens
    return {
        "created": tokens.submitted,
        "waiting": tokens.waiting,
        "executing": tokens.executing,
        "completed": tokens.completed,
        "failed": tokens.failed,
        "killed": tokens.killed,
        "retried": tokens.retried,
        "held": tokens.held,
    }


def affinity_panel(sched: Snapshot) -> dict[str, Any]:
    snap = as_snapshot(sched)
    cores = [
        {
            "core": core.core, "cpu": core.cpu, "routed": dict(core.routed),
            "total": sum(core.routed.values()), "queued": sum(core.depths),
            "executing": sum(core.busy), "active_mailboxes": core.active_mailboxes,
        }
        for core in snap.cores
    ]
    return {"policy": {w: list(c) for w, c in snap.shape.policy.items()}, "cores": cores,
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


def build_status(sched: Snapshot, guards: Any | None = None,
                 recent: int = RECENT_EXECUTIONS) -> dict[str, Any]:
    """Every panel, from a scheduler snapshot (:class:`AgentSnapshot`, or its wire map) and
    (unless it has them) its guards'."""
    snap = as_snapshot(sched)
    status = {
        "system_status": system_panel(snap),
        "token_pool": token_pool_panel(snap),
        "core_affinity": affinity_panel(snap),
    }
    if guards is not None:
        status.update(guard_panels(guards, recent))
    else:
        status.update({key: value for key, value in snap.to_wire().items()
                       if key not in status and key not in _SCHEDULER_KEYS})
    return status


_SCHEDULER_KEYS = frozenset({"node", "state", "drain_reason", "uptime", "topology", "workers",
                             "workers_per_core", "mailbox_capacity", "policy", "tokens",
                             "cores", "storage"})
