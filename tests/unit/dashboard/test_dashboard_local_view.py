"""The embedded host's snapshot as the cluster dashboard's data (pure: no threads, no I/O)."""

from __future__ import annotations

from typing import Any

import pytest
from tokengate.dashboard import local_view, model
from tokengate.dashboard.embedded import SeriesBuckets, row_times
from tokengate.dashboard.source import token_data
from tokengate.shared.rpc import tokengate_pb2 as pb


def _snapshot(state: str = "running", **tokens: int) -> dict[str, Any]:
    return {
        "node": "box", "state": state, "drain_reason": "maintenance" if state != "running"
        else "", "uptime": 12.34, "workers": 4, "workers_per_core": 2, "mailbox_capacity": 10,
        "policy": {"heavy": [1, 2], "medium": [2], "light": [2]},
        "topology": {"physical_cores": 2, "logical_cores": 4, "usable_cores": 2},
        "tokens": {"submitted": 9, "completed": 5, "failed": 1, "killed": 1, "retried": 2,
                   "waiting": 3, "executing": 1, "held": 1, **tokens},
        "cores": [{"core": 1, "active_mailboxes": 1, "depths": [4, 9]},
                  {"core": 2, "active_mailboxes": 2, "depths": [1, 2]}],
        "guard_house": {"methods": {"m:f": {"attempts": 4, "successes": 1, "failures": 3,
                                            "mean_time": 0.5, "health": "poor",
                                            "blocked": True}}},
        "quarantine": {"recent": [{"id": "q1", "task": "m:f", "deviation_percent": 900.0,
                                   "timestamp": 5.0, "replayable": True, "args_summary": "1"}]},
        "recent_executions": [{"token_id": "t1", "operation_type": "op", "success": False,
                               "execution_time": 0.25, "core_id": 2, "worker_id": "c2w1",
                               "attempt": 1, "error_type": "ValueError",
                               "finished_at": 100.5}],
    }


def _status(snapshot: dict[str, Any], drain_since: float = 0.0) -> dict[str, Any]:
    node = local_view.node_row(snapshot, host="h", pid=7, at=101.0, tasks=[])
    return local_view.status(snapshot, node, drain_since)


@pytest.mark.parametrize(("state", "cluster", "node"), [
    ("running", "RUNNING", "UP"), ("draining", "DRAINING", "DRAINING"),
    ("drained", "DRAINED", "DRAINED")])
def test_states_read_as_the_cluster_names_them(state, cluster, node):
    status = _status(_snapshot(state), drain_since=50.0)
    assert status["state"] == cluster and status["nodes"][0]["state"] == node
    assert status["drain_since"] == (0.0 if state == "running" else 50.0)


def test_the_status_panel_shows_this_hosts_workers_and_physical_cores():
    panel = model.cluster_panel(_status(_snapshot()), 101.0)
    assert (panel["workers"], panel["physical_cores"], panel["hosts"]) == (4, 2, 1)
    assert panel["capacity"] == 40


def test_counts_inflight_and_held_follow_the_scheduler():
    status = _status(_snapshot())
    # in flight: queued (waiting less held) and executing; a held call is not admitted
    assert (status["inflight"], status["executing"], status["held"]) == (3, 1, 1)
    assert status["counts"] == {"submitted": 9, "completed": 5, "failed": 1, "killed": 1,
                                "requeued": 2, "lost": 0}
    pool = model.pool_panel(status)
    assert (pool["admitted"], pool["held"], pool["waiting"]) == (2, 1, dict.fromkeys(
        model.WEIGHTS, 0))
    assert model.cluster_panel(status, 101.0)["redis"]["note"] == "none (embedded)"


def test_credits_are_the_free_slots_of_active_mailboxes_per_class():
    # core 1: one active box at depth 4 -> 6 free; core 2: two at 1 and 2 -> 17 free
    assert local_view.credits(_snapshot()) == {"heavy": 23, "medium": 17, "light": 17}


def test_guards_and_recent_rows_carry_the_node():
    guards = local_view.guards(_snapshot(), "box")
    assert guards["functions"][0]["blocked_on"] == ["box"]
    assert guards["quarantine"][0]["node"] == "box" and guards["quarantine"][0]["deviation"] == 900
    rows = model.function_rows(guards)
    assert rows["m:f"]["success_rate"] == 25.0
    panel = model.guard_house_panel(guards)  # the Guard House summary line: mode and totals
    assert (panel["mode"], panel["executions"], panel["success_rate"]) == ("passive", 4, 25.0)
    assert panel["blocked"] == ["m:f"]
    recent = _status(_snapshot())["recent"][0]
    assert (recent["state"], recent["node"], recent["duration"]) == ("failed", "box", 0.25)


def test_series_buckets_add_growth_per_second_and_latency_once():
    buckets = SeriesBuckets()
    row = {"token_id": "t", "attempt": 1, "finished_at": 100.2, "duration": 0.5}
    buckets.add(100.3, {"completed": 2, "submitted": 3}, [row])
    buckets.add(100.9, {"completed": 1, "failed": 1}, [row])  # same second, same row
    buckets.add(101.1, {"completed": 4}, [])
    points = buckets.since(0.0)
    assert [(p["t"], p["completed"], p["failed"], p["submitted"]) for p in points] == [
        (100.0, 3, 1, 3), (101.0, 4, 0, 0)]
    assert points[0]["p50"] == 0.5 and points[1]["p95"] == 0.0
    assert [p["t"] for p in buckets.since(101.0)] == [101.0]


def test_percentile_is_nearest_rank():
    assert local_view.percentile([], 0.5) == 0.0
    assert local_view.percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.0
    assert local_view.percentile([float(i) for i in range(1, 101)], 0.95) == 95.0


@pytest.mark.parametrize(("state", "execution_time"), [
    ("completed", 0.25), ("failed", 0.25), ("killed", None)])
def test_a_finished_rows_token_detail_keeps_its_execution_time(state, execution_time):
    row = local_view.recent_rows(_snapshot(), "box")[0] | {"state": state}
    detail = token_data(pb.TokenDetail(token_id="t1", state=state, times=row_times(row)))
    assert model.history_record(detail)["execution_time"] == execution_time
