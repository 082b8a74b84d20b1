"""Results, routing and errors through a real gateway and two real agent processes."""

from __future__ import annotations

import threading

import cluster_tasks
import pytest
from conftest import wait_until
from tokengate.shared.errors import BadArguments, TaskFailed, UnknownTask
from tokengate.shared.registry import lookup


def test_results_correct_under_concurrent_clients(shared_cluster):
    clients = [shared_cluster.client() for _ in range(4)]
    spec = lookup("cluster_tasks:add")
    outcomes: dict[int, list[tuple[int, int, str]]] = {}

    def run(index: int) -> None:
        tokens = [(i, clients[index].submit(spec, (index * 1000, i), {})) for i in range(500)]
        outcomes[index] = [(i, t.get(timeout=60), t.node) for i, t in tokens]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert sorted(outcomes) == [0, 1, 2, 3]
    nodes = set()
    for index, rows in outcomes.items():
        assert [value for _, value, _ in rows] == [index * 1000 + i for i, _, _ in rows]
        nodes.update(node for _, _, node in rows)
    assert nodes == {"a1", "a2"}, "work spread over both agents"


def test_decorated_calls_and_task_errors(shared_cluster):
    shared_cluster.client(install=True)
    token = cluster_tasks.add(2, 40)
    assert token.get(timeout=10) == 42
    assert token.node in ("a1", "a2") and token.attempt == 1 and token.worker_id
    recent = wait_until(lambda: [r for r in shared_cluster.status()["recent"]
                                 if r["token_id"] == token.token_id], what="executions feed")
    assert recent[0]["operation_type"] == "add" and recent[0]["state"] == "completed"
    with pytest.raises(ValueError, match="no good") as info:
        cluster_tasks.boom("no good").get(timeout=10)
    assert "boom" in "".join(getattr(info.value, "__notes__", []))


def test_weights_routed_per_policy_on_each_agent(shared_cluster):
    client = shared_cluster.client()
    tokens = {weight: [client.submit(lookup(name), (i,), {}) for i in range(40)]
              for weight, name in (("heavy", "cluster_tasks:heavy_where"),
                                   ("medium", "cluster_tasks:where"))}
    tokens["light"] = [client.submit(lookup("cluster_tasks:add"), (i, 1), {}) for i in range(40)]
    for batch in tokens.values():
        for token in batch:
            token.get(timeout=30)
    # 2 cores per agent: heavy may use cores 1-2, medium and light only core 2 (seed fallback).
    assert {t.core_id for t in tokens["medium"]} == {2}
    assert {t.core_id for t in tokens["light"]} == {2}
    assert {t.core_id for t in tokens["heavy"]} <= {1, 2}
    assert {t.node for batch in tokens.values() for t in batch} == {"a1", "a2"}


def test_unknown_task_wrong_arguments_and_unencodable_result(shared_cluster):
    client = shared_cluster.client()
    with pytest.raises(UnknownTask, match="no_such"):
        client.submit_by_name("cluster_tasks:no_such", (1,)).get(timeout=10)
    with pytest.raises(TypeError):
        client.submit_by_name("cluster_tasks:add", (1,)).get(timeout=10)
    with pytest.raises(BadArguments, match="result"):
        client.submit_by_name("cluster_tasks:unencodable").get(timeout=10)
    with pytest.raises(BadArguments):
        client.submit_by_name("cluster_tasks:add", (object(), 1))
    assert client.submit_by_name("cluster_tasks:add", (1, 2)).get(timeout=10) == 3


def test_task_failure_of_unknown_type_keeps_its_name(shared_cluster):
    client = shared_cluster.client()
    with pytest.raises(TaskFailed, match="it broke") as info:
        client.submit_by_name("cluster_tasks:custom_boom", ("it broke",)).get(timeout=10)
    assert info.value.error_type == "ShapeError"
    assert "raise ShapeError(message)" in "".join(getattr(info.value, "__notes__", []))



def test_a_failure_whose_text_is_not_valid_utf8_still_reaches_its_client(shared_cluster):
    """The agent makes the text valid (it used to fail building the report, and the
    client waited forever)."""
    client = shared_cluster.client()
    with pytest.raises(ValueError, match=r"cannot open b\?d\.txt"):
        client.submit_by_name("cluster_tasks:surrogate_boom").get(timeout=10)
    assert client.submit_by_name("cluster_tasks:add", (1, 2)).get(timeout=10) == 3

def test_many_threads_share_one_client_and_large_payloads_cross(shared_cluster):
    client = shared_cluster.client()
    spec = lookup("cluster_tasks:add")
    results: dict[int, list[int]] = {}

    def run(index: int) -> None:
        tokens = [client.submit(spec, (index, i), {}) for i in range(300)]
        results[index] = [t.get(timeout=60) for t in tokens]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert results == {i: [i + j for j in range(300)] for i in range(8)}
    big = b"\x07" * (3 * 1024 * 1024)
    assert client.submit(lookup("cluster_tasks:size_of"), (big,), {}).get(timeout=30) == len(big)


def test_a_burst_of_large_calls_is_split_into_frames_under_the_grpc_limit(shared_cluster):
    client = shared_cluster.client()
    spec = lookup("cluster_tasks:size_of")
    big = b"\x01" * (3 * 1024 * 1024)
    tokens = [client.submit(spec, (big,), {}) for _ in range(30)]  # 90 MiB in one burst
    assert [t.get(timeout=60) for t in tokens] == [len(big)] * 30


def test_results_a_client_received_leave_redis_at_once(shared_cluster):
    client = shared_cluster.client()
    store = shared_cluster.redis.client
    before = shared_cluster.status()["counts"]["completed"]
    client.drain(reason="look at the keys first")
    try:
        tokens = [client.submit_by_name("cluster_tasks:add", (i, i)) for i in range(100)]
        keys = [f"{shared_cluster.prefix}t:{t.token_id}" for t in tokens]
        wait_until(lambda: store.exists(*keys) == 100, what="the 100 tokens stored")
    finally:
        client.resume()
    assert [t.get(timeout=20) for t in tokens] == [2 * i for i in range(100)]
    wait_until(lambda: store.exists(*keys) == 0, what="received results deleted")
    assert shared_cluster.status()["counts"]["completed"] - before == 100, \
        "counted before deleted"
