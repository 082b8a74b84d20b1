"""The view model: each panel's plain data from a reading, stable between polls."""

from __future__ import annotations

import pytest
from tokengate.dashboard import model
from tokengate.dashboard.memory import ViewMemory
from view_factories import NOW, node, outcome, reading, status


def test_node_card_carries_every_field_of_the_issue():
    card = model.node_card(node("n1"), NOW)
    assert card["host"] == "h1" and card["state"] == "UP" and card["pid"] == 42
    assert card["credits"] == {"heavy": 3, "medium": 4, "light": 5}
    assert card["cpu"] == 12 and card["rss"] == 80
    assert card["tasks"] == ["m:a", "m:b"]
    assert card["nested"] == {"submitted": 7, "active": 1, "completed": 5, "failed": 1,
                              "killed": 0}
    assert card["wpc"] == 4 and card["capacity"] == 120
    core = card["cores"][0]
    assert core["active"] == 4 and core["depths"] == [1, 0, 0, 0] and core["busy"] == [1, 0, 0, 0]
    assert core["routed"] == {"heavy": 5, "medium": 0, "light": 0}


def test_node_card_without_process_figures_says_none():
    card = model.node_card(node("n1", process=False), NOW)
    assert card["cpu"] is None and card["rss"] is None
    assert card["cores"][0]["queued"] == 1 and card["cores"][0]["executing"] == 1
    assert card["completed"] == 10 and card["failed"] == 1 and card["workers"] == 8


@pytest.mark.parametrize(("age", "shown"), [(0.3, 0), (1.9, 0), (2.0, 2), (7.8, 7)])
def test_heartbeat_age_is_zero_while_fresh_so_healthy_cards_do_not_change(age, shown):
    assert model.heartbeat_age(NOW - age, NOW) == shown


def test_cluster_panel_is_stable_between_two_polls_a_second_apart():
    first = model.cluster_panel(status(uptime=100.2), NOW)
    second = model.cluster_panel(status(uptime=101.2), NOW + 1.0)
    assert first == second  # uptime becomes a start time
    assert first["node_states"] == {"UP": 2} and first["redis"]["ok"] is True


def test_the_status_panel_sums_workers_over_agents_and_physical_cores_over_hosts():
    nodes = [node("n1", physical_cores=8), node("n2", physical_cores=8),  # one host, 2 agents
             node("n3", host="h2", physical_cores=4),
             node("gone", host="h3", state="DISCONNECTED", physical_cores=16)]
    panel = model.cluster_panel(status(nodes=nodes), NOW)
    assert panel["workers"] == 24 and panel["capacity"] == 24 * 120
    assert panel["physical_cores"] == 12 and panel["hosts"] == 2
    older = dict(node("n1"), topology={"workers": 8})  # an agent that sends no topology block
    assert model.capacity_totals([older]) == {"workers": 8, "physical_cores": 0, "hosts": 1,
                                              "capacity": 0}
    assert model.capacity_totals([]) == {"workers": 0, "physical_cores": 0, "hosts": 0,
                                         "capacity": 0}


def test_the_token_view_says_where_and_how_long_it_ran_in_the_seeds_fields():
    times = [{"state": "waiting", "at": NOW}, {"state": "executing", "at": NOW + 0.5},
             {"state": "failed", "at": NOW + 0.5062}]
    detail = {"token_id": "t", "state": "failed", "operation_type": "cpu_heavy", "attempt": 2,
              "node": "a1", "core": 1, "worker": "worker_0_core_1", "times": times}
    assert model.token_view(detail, False)["record"] == {
        "token_id": "t", "operation_type": "cpu_heavy", "success": False,
        "execution_time": 0.0062, "core_id": 1, "worker_id": "worker_0_core_1",
        "attempt": 2, "node": "a1"}
    queued = dict(detail, state="waiting", node="", core=0, worker="", times=times[:1])
    record = model.history_record(queued)
    assert record["success"] is None and record["execution_time"] is None
    assert record["node"] is record["core_id"] is record["worker_id"] is None
    running = dict(detail, state="executing", times=times[:2])
    assert model.history_record(running)["execution_time"] is None


def test_redis_reachability_and_memory():
    assert model.redis_panel(status()) == {"ok": True, "memory": 2**20, "note": ""}
    down = dict(status(), redis={"ok": False, "memory": 0})
    assert model.redis_panel(down) == {"ok": False, "memory": 0, "note": "unreachable"}


def test_pool_panel_splits_in_flight_into_admitted_and_executing():
    pool = model.pool_panel(status(pending=7))
    assert pool["waiting"] == {"heavy": 0, "medium": 7, "light": 0}
    assert pool["admitted"] == 2 and pool["executing"] == 1 and pool["created"] == 20


def test_sample_feed_keeps_failures_first_then_the_newest():
    items = [model.feed_item(outcome(f"t{i}", NOW + i)) for i in range(50)]
    items[3] = model.feed_item(outcome("bad", NOW + 3, state="failed"))
    kept = model.sample_feed(items, 10)
    assert len(kept) == 10 and kept[0]["token_id"] == "bad"
    assert [k["token_id"] for k in kept[1:]] == [f"t{i}" for i in range(41, 50)]
    assert [k["at"] for k in kept] == sorted(k["at"] for k in kept)


def test_payloads_are_hidden_unless_asked_for():
    guards = {"functions": [], "quarantine": [{
        "id": "q1", "node": "n1", "task": "m:f", "operation_type": "f", "deviation": 412.345,
        "reason": "spike", "args_summary": "(10**12,)", "at": NOW, "replayable": True}]}
    assert model.quarantine_rows(guards, False)["q1"]["args"] is None
    assert model.quarantine_rows(guards, True)["q1"]["args"] == "(10**12,)"
    detail = {"token_id": "t", "args_summary": "(1, 2)"}
    assert model.token_view(detail, False)["args_summary"] is None
    assert model.token_view(detail, True)["args_summary"] == "(1, 2)"


def test_function_rows_give_success_rate_and_mean_in_ms():
    guards = {"functions": [{"name": "m:f", "attempts": 8, "successes": 6, "failures": 2,
                             "mean_time": 0.0123456, "health": "fair", "blocked_on": ["n2"]}]}
    row = model.function_rows(guards)["m:f"]
    assert row == {"attempts": 8, "successes": 6, "failures": 2, "success_rate": 75.0,
                   "mean_ms": 12.3, "health": "fair", "blocked_on": ["n2"], "blocked": False}


def test_the_guard_house_panel_says_the_mode_and_the_cluster_totals():
    functions = [{"name": "m:f", "attempts": 8, "successes": 6, "failures": 2,
                  "mean_time": 0.01, "health": "fair", "blocked_on": [], "blocked": True}]
    house = {"mode": "auto-block", "failure_threshold": 0.25, "min_attempts": 4,
             "executions": 8, "failures": 2, "blocked": ["m:f"], "refusals": 3}
    assert model.guard_house_panel({"functions": functions, "house": house}) == {
        "mode": "auto-block", "threshold_percent": 25.0, "min_attempts": 4,
        "methods_tracked": 1, "executions": 8, "success_rate": 75.0, "blocked": ["m:f"],
        "refusals": 3}
    assert model.function_rows({"functions": functions})["m:f"]["blocked"] is True
    assert model.guard_house_panel({"functions": []}) == {}  # an older gateway: no panel


def test_memory_shows_each_outcome_once_and_keeps_the_pool_chart():
    memory = ViewMemory(feed_per_push=5)
    recent = [outcome(f"t{i}", NOW + i / 10) for i in range(3)]
    first = memory.step(reading(status=status(recent=recent)))
    again = memory.step(reading(at=NOW + 1, status=status(recent=recent)))
    assert [f["token_id"] for f in first["streams"]["feed"]] == ["t0", "t1", "t2"]
    assert again["streams"]["feed"] == first["streams"]["feed"]
    assert [p["t"] for p in again["streams"]["pool_series"]] == [int(NOW), int(NOW) + 1]


def test_a_failed_source_keeps_its_last_data_and_says_why():
    memory = ViewMemory()
    guards = {"functions": [{"name": "m:f", "attempts": 1, "successes": 1, "failures": 0,
                             "mean_time": 0.001, "health": "excellent", "blocked_on": []}],
              "quarantine": []}
    memory.step(reading(guards=guards))
    view = memory.step(reading(at=NOW + 1, errors={"guards": "this gateway does not ..."}))
    assert "m:f" in view["keyed"]["functions"]
    assert view["panels"]["sources"]["guards"] == "this gateway does not ..."
    assert view["panels"]["sources"]["status"] == ""


def test_gateway_unreachable_keeps_the_last_cluster_and_flags_it():
    memory = ViewMemory(gateway="gw:1")
    memory.step(reading())
    view = memory.step(reading(at=NOW + 1, status=None, errors={"status": "down"}))
    assert view["panels"]["gateway"] == {"address": "gw:1", "ok": False, "error": "down"}
    assert view["panels"]["cluster"]["state"] == "RUNNING" and len(view["keyed"]["nodes"]) == 2


def test_series_points_in_ms_and_ten_minutes_kept():
    memory = ViewMemory()
    points = [{"t": NOW - 700 + i, "completed": 5, "failed": 0, "submitted": 5, "p50": 0.0012,
               "p95": 0.0034} for i in range(701)]
    view = memory.step(reading(series=points))
    series = view["streams"]["series"]
    assert len(series) <= 600 and series[-1]["t"] == int(NOW)
    assert series[-1]["p50"] == 1.2 and series[-1]["p95"] == 3.4
    assert memory.series_since == NOW


def test_launches_noted_from_another_thread_join_the_audit_stream():
    memory = ViewMemory()
    memory.note_control({"at": NOW, "actor": "dashboard:x", "action": "launch",
                         "target": "m:f -> t1", "ok": True, "result": "submitted"})
    audit = [{"at": NOW - 1, "actor": "cli", "action": "drain", "target": "", "ok": True,
              "result": "cluster draining"}]
    view = memory.step(reading(audit=audit))
    assert [(e["action"], e["source"]) for e in view["streams"]["audit"]] == [
        ("drain", "gateway"), ("launch", "dashboard")]


def test_task_choices_union_the_nodes_tasks_with_their_weight():
    assert model.task_choices(status()) == [{"name": "m:a", "weight": "heavy"},
                                            {"name": "m:b", "weight": "light"}]


@pytest.mark.parametrize("reported_held", [0, 4])
def test_calls_submitted_during_a_drain_show_as_held_not_waiting(reported_held):
    drained = dict(status(state="DRAINED", pending=4), held=reported_held)
    pool = model.pool_panel(drained)
    assert pool["held"] == 4 and pool["waiting"] == {"heavy": 0, "medium": 0, "light": 0}
    assert model.cluster_panel(drained, NOW)["waiting"] == 0
    running = model.pool_panel(status(pending=4))
    assert running["held"] == 0 and running["waiting"]["medium"] == 4


def test_node_card_shows_the_agents_labels_and_what_its_tasks_require():
    raw = node("n1")
    raw["labels"] = {"zone": "eu", "gpu": "a100"}
    raw["tasks"].append({"name": "m:c", "weight": "light", "idempotent": True,
                         "time_limit": 0, "requires": ["gpu=a100"]})
    card = model.node_card(raw, NOW)
    assert card["labels"] == ["gpu=a100", "zone=eu"]
    assert card["tasks"] == ["m:a", "m:b", "m:c [gpu=a100]"]
    assert model.node_card(node("n2"), NOW)["labels"] == []
