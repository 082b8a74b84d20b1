"""Patches: only what changed, and apply(old, diff(old, new)) == new."""

from __future__ import annotations

import json
import random

from tokengate.dashboard.diff import apply, diff
from tokengate.dashboard.memory import ViewMemory
from view_factories import NOW, node, outcome, reading, status


def _views(steps: list) -> list[dict]:
    memory = ViewMemory(feed_per_push=10)
    return [memory.step(step) for step in steps]


def test_first_patch_is_the_whole_view():
    (view,) = _views([reading()])
    assert apply(None, diff(None, view)) == view


def test_nothing_changed_sends_only_the_time():
    first, second = _views([reading(), reading(at=NOW + 0.5, status=status(uptime=100.7))])
    patch = diff(first, second)
    assert set(patch) <= {"now", "streams"}
    assert set(patch.get("streams", {})) <= {"pool_series"}


def test_one_node_changing_sends_only_its_changed_fields():
    nodes = [node(f"n{i}") for i in range(50)]
    busy = [dict(n) for n in nodes]
    busy[7] = dict(busy[7], inflight=9)
    first, second = _views([reading(status=status(nodes=nodes)),
                            reading(at=NOW + 1, status=status(nodes=busy, uptime=101.2))])
    patch = diff(first, second)
    assert patch["keyed"] == {"nodes": {"set": {"n7": {"inflight": 9}}}}
    assert "panels" not in patch  # cluster and pool unchanged
    assert len(json.dumps(patch)) < 300


def test_removed_nodes_and_fields_are_named():
    first, second = _views([reading(), reading(at=NOW + 1, status=status(nodes=[node("n1")]))])
    patch = diff(first, second)
    assert patch["keyed"]["nodes"]["del"] == ["n2"]
    old = {"now": 0, "panels": {}, "keyed": {"k": {"a": {"x": 1, "y": 2}}}, "streams": {}}
    new = {"now": 1, "panels": {}, "keyed": {"k": {"a": {"x": 1}}}, "streams": {}}
    assert diff(old, new)["keyed"]["k"]["set"]["a"] == {"__del__": ["y"]}
    assert apply(old, diff(old, new)) == new


def test_streams_send_new_items_only():
    recent1 = [outcome("t1", NOW)]
    recent2 = [outcome("t1", NOW), outcome("t2", NOW + 0.5)]
    first, second = _views([reading(status=status(recent=recent1)),
                            reading(at=NOW + 1, status=status(recent=recent2))])
    feed = diff(first, second)["streams"]["feed"]
    assert [item["token_id"] for item in feed] == ["t2"]


def test_a_revised_chart_second_is_sent_again():
    point = {"t": NOW, "completed": 1, "failed": 0, "submitted": 1, "p50": 0.001, "p95": 0.002}
    grown = dict(point, completed=5)
    first, second = _views([reading(series=[point]), reading(at=NOW + 1, series=[grown])])
    assert diff(first, second)["streams"]["series"][0]["completed"] == 5
    assert apply(first, diff(first, second)) == second


def _random_status(rng: random.Random, step: int) -> dict:
    names = [f"n{i}" for i in range(rng.randint(1, 6))]
    nodes = [node(name, host=f"h{rng.randint(1, 2)}", state=rng.choice(["UP", "DRAINED"]),
                  last_seen=NOW + step - rng.random() * 4, routed=rng.randint(0, 9))
             for name in names]
    recent = [outcome(f"t{step}-{i}", NOW + step + i / 100,
                      state=rng.choice(["completed", "completed", "failed"]))
              for i in range(rng.randint(0, 30))]
    return status(nodes=nodes, recent=recent, completed=step * 3, pending=rng.randint(0, 3))


def test_apply_of_diff_rebuilds_every_view_of_a_random_run():
    rng = random.Random(9)
    steps = [reading(at=NOW + i, status=_random_status(rng, i)) for i in range(60)]
    views = _views(steps)
    shown = None
    for view in views:
        shown = apply(shown, diff(shown, view))
        assert shown == view
    assert json.loads(json.dumps(shown)) == shown  # plain JSON data
