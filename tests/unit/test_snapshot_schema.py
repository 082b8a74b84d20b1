"""The agent's status snapshot schema (shared/snapshot.py): what it reads, keeps and refuses."""

from __future__ import annotations

import copy
from typing import Any

import msgpack
import pytest
from tokengate.shared.errors import SnapshotError, TokenGateError
from tokengate.shared.snapshot import AgentSnapshot, NodeShape, QuarantinePanel


def full() -> dict[str, Any]:
    """A snapshot as an agent of this version sends it: scheduler, guards, process, nested."""
    return {
        "node": "n1", "state": "running", "drain_reason": "", "uptime": 12.5,
        "topology": {"physical_cores": 2, "logical_cores": 4, "smt_enabled": True,
                     "smt_ratio": 2.0, "allowed_cpus": [0, 1, 2, 3], "quota_cores": None,
                     "usable_cores": 2,
                     "recommended_workers": {"heavy": 8, "medium": 6, "light": 4}},
        "workers": 8, "stuck": 1, "blocked": 0, "workers_per_core": 4, "mailbox_capacity": 120,
        "policy": {"heavy": [1, 2], "medium": [2], "light": [2]},
        "tokens": {"submitted": 9, "completed": 5, "failed": 1, "killed": 1, "retried": 2,
                   "reclaimed": 0, "executing": 1, "waiting": 3, "held": 1, "backlog": 0},
        "cores": [{"core": 1, "cpu": 0, "active_mailboxes": 2, "depths": [4, 0],
                   "busy": [1, 0], "stuck": [1, 0], "blocked": [0, 0], "peak_depths": [9, 1],
                   "routed": {"heavy": 5, "medium": 0, "light": 0}}],
        "storage": {"slow": {"cap": 10, "active": 1, "peak": 3}},
        "nested": {"submitted": 7, "active": 1, "completed": 5, "failed": 1, "killed": 0},
        "process": {"pid": 42, "cpu_percent": 12.4, "rss_bytes": 80 * 2**20, "threads": 19,
                    "time": 1.8e9},
        "guard_house": {"mode": "auto-block", "auto_block": True, "enforced_by": "gateway",
                        "failure_threshold": 0.5, "min_attempts": 3, "methods_tracked": 1,
                        "executions": 4, "blocked": ["m:f"], "refusals": 2,
                        "methods": {"m:f": {"attempts": 4, "successes": 1, "failures": 3,
                                            "retries": 0, "failure_rate": 75.0,
                                            "mean_time": 0.5, "health": "poor",
                                            "blocked": True, "over_threshold": True}}},
        "quarantine": {"enabled": True, "directory": "/q", "saved_this_run": 1, "on_disk": 1,
                       "recent": [{"id": "q1", "task": "m:f", "operation_type": "op",
                                   "deviation_percent": 900.0, "replayable": True,
                                   "reason": "spike", "timestamp": 5.0, "args_summary": "int"}],
                       "threshold": 3.0, "warmup": 5, "functions": {}},
        "recent_executions": [{"token_id": "t1", "operation_type": "op", "success": False,
                               "execution_time": 0.25, "core_id": 2, "worker_id": "c2w1",
                               "complexity_score": 3.0, "attempt": 1,
                               "error_type": "ValueError", "finished_at": 100.5}],
        "history": {"capacity": 1000, "recorded": 1},
        "overflow": {"enabled": False}, "convergence": {"enabled": False},
        "retry_policies": {"trivial": {"max_attempts": 4}}, "functions": {}, "metrics": {},
    }


def test_a_full_snapshot_round_trips_through_the_wire_unchanged():
    data = full()
    snap = AgentSnapshot.decode(msgpack.packb(data))
    assert snap.to_wire() == data
    assert AgentSnapshot.decode(snap.encode()) == snap
    assert snap.shape.topology.physical_cores == 2 and snap.shape.policy["heavy"] == (1, 2)
    assert snap.cores[0].depths == (4, 0) and snap.tokens.held == 1
    assert snap.guard_house is not None and snap.guard_house.methods["m:f"].failures == 3
    assert snap.quarantine is not None and snap.quarantine.recent[0].deviation_percent == 900.0
    assert snap.process is not None and snap.process.rss_bytes == 80 * 2**20
    assert set(snap.panels) == {"history", "overflow", "convergence", "retry_policies",
                                "functions", "metrics"}


def test_an_older_agents_partial_snapshot_reads_with_defaults():
    old = {"node": "n1", "state": "draining", "uptime": 3, "workers": 2,
           "tokens": {"completed": 4}, "cores": [{"core": 1, "depths": [2]}]}
    snap = AgentSnapshot.from_wire(old)
    assert snap.uptime == 3.0 and snap.stuck == 0 and snap.blocked == 0 and snap.drain_reason == ""
    assert snap.shape.workers == 2 and snap.shape.mailbox_capacity is None
    assert snap.tokens.completed == 4 and snap.tokens.submitted == 0
    core = snap.cores[0]
    assert core.depths == (2,) and core.busy == () and core.active_mailboxes is None
    assert snap.nested is None and snap.process is None and snap.guard_house is None
    assert snap.recent_executions is None and snap.panels == {}
    wire = snap.to_wire()
    assert wire["stuck"] == 0 and "guard_house" not in wire and "process" not in wire
    assert AgentSnapshot.from_wire(wire) == snap
    assert AgentSnapshot.decode(b"") == AgentSnapshot()


def test_nil_reads_as_missing_and_an_older_quarantine_summary_list_is_joined():
    snap = AgentSnapshot.from_wire({"state": None, "uptime": None, "quarantine": {
        "recent": [{"id": "q", "args_summary": ["int", "str[3]"]}]}})
    assert snap.state == "" and snap.uptime == 0.0
    assert snap.quarantine == QuarantinePanel(recent=snap.quarantine.recent)
    assert snap.quarantine.recent[0].args_summary == "int, str[3]"


def test_fields_it_does_not_know_are_kept_at_every_level():
    data = full()
    data["gpu"] = {"count": 1}
    data["tokens"]["parked"] = 2
    data["guard_house"]["window"] = 60
    data["topology"]["numa_nodes"] = 1
    snap = AgentSnapshot.from_wire(data)
    assert snap.panels["gpu"] == {"count": 1} and snap.tokens.extra == {"parked": 2}
    assert snap.guard_house is not None and snap.guard_house.extra == {"window": 60}
    assert snap.to_wire() == data


def _set(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    where = data
    for key in path[:-1]:
        where = where[key]
    where[path[-1]] = value
    return data


@pytest.mark.parametrize(("path", "value", "named"), [
    (("uptime",), "soon", "snapshot.uptime"),
    (("uptime",), True, "snapshot.uptime"),
    (("stuck",), 1.5, "snapshot.stuck"),
    (("stuck",), True, "snapshot.stuck"),
    (("state",), 3, "snapshot.state"),
    (("tokens",), [1, 2], "snapshot.tokens"),
    (("tokens", "completed"), "5", "snapshot.tokens.completed"),
    (("cores",), {"core": 1}, "snapshot.cores"),
    (("cores", 0, "depths", 1), "x", "snapshot.cores[0].depths[1]"),
    (("cores", 0, "routed", "heavy"), None, None),  # nil: missing, read as 0
    (("policy", "heavy"), 1, "snapshot.policy.heavy"),
    (("topology", "smt_enabled"), "yes", "snapshot.topology.smt_enabled"),
    (("guard_house", "methods", "m:f", "attempts"), "4",
     "snapshot.guard_house.methods.m:f.attempts"),
    (("guard_house", "blocked"), "m:f", "snapshot.guard_house.blocked"),
    (("quarantine", "recent", 0, "replayable"), 1, "snapshot.quarantine.recent[0].replayable"),
    (("process", "rss_bytes"), 1.0, "snapshot.process.rss_bytes"),
    (("recent_executions", 0, "core_id"), "2", "snapshot.recent_executions[0].core_id"),
])
def test_a_field_of_the_wrong_type_is_refused_naming_it(path, value, named):
    data = _set(full(), path, value)
    if named is None:
        assert AgentSnapshot.from_wire(data).cores[0].routed["heavy"] == 0
        return
    with pytest.raises(SnapshotError) as caught:
        AgentSnapshot.from_wire(data)
    assert str(caught.value).startswith(named + ":")
    assert isinstance(caught.value, TokenGateError)


@pytest.mark.parametrize("blob", [b"\xc1", msgpack.packb([1, 2]), msgpack.packb("x")])
def test_bytes_that_are_not_a_msgpack_map_are_refused(blob):
    with pytest.raises(SnapshotError):
        AgentSnapshot.decode(blob)


def test_the_hellos_shape_is_the_snapshots_fixed_part():
    data = full()
    shape = NodeShape.from_wire(data)
    assert shape.to_wire() == {key: data[key] for key in
                               ("topology", "workers", "workers_per_core", "mailbox_capacity",
                                "policy")}
    assert NodeShape.from_wire({"workers": 8}).topology.physical_cores is None
    with pytest.raises(SnapshotError, match=r"^topology\.workers:"):
        NodeShape.from_wire({"workers": "8"})


def test_with_panels_types_the_guards_part_and_keeps_the_rest():
    base = AgentSnapshot(node="n1", state="running")
    panels = {key: full()[key] for key in ("guard_house", "quarantine", "recent_executions",
                                           "history", "metrics")}
    snap = base.with_panels(panels)
    assert snap.guard_house is not None and snap.guard_house.refusals == 2
    assert snap.recent_executions is not None and snap.recent_executions[0].token_id == "t1"
    assert set(snap.panels) == {"history", "metrics"} and snap.node == "n1"
    with pytest.raises(SnapshotError, match=r"^panels\.guard_house\.refusals:"):
        base.with_panels({"guard_house": {"refusals": "2"}})
