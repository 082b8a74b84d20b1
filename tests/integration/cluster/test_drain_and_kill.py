"""Cluster and node drain (held submissions run after resume), and kill anywhere."""

from __future__ import annotations

import cluster_tasks  # noqa: F401 - registers the tasks
import pytest
from conftest import HEARTBEAT_TIMEOUT, wait_until
from tokengate.shared.errors import TokenCancelled, TokenKilled
from tokengate.shared.lifecycle import TokenState


def test_cluster_drain_holds_submissions_and_resume_runs_them(shared_cluster, effects, gates):
    client = shared_cluster.client()
    gate = gates("admitted")
    keys = [f"first{i}" for i in range(6)]
    first = [client.submit_by_name("cluster_tasks:gated", (str(effects), key, str(gate)))
             for key in keys]
    wait_until(lambda: shared_cluster.status()["inflight"] == 6, what="first tokens dispatched")
    try:
        assert "draining" in client.drain(reason="maintenance")
        info = shared_cluster.status()
        assert info["state"] == "DRAINING" and info["reason"] == "maintenance", "work is held"
        held = [client.submit_by_name("cluster_tasks:add", (i, 1)) for i in range(50)]
        gate.open()
        assert [t.get(timeout=10) for t in first] == keys, "admitted work finishes"
        info = wait_until(lambda: (s := shared_cluster.status())["state"] == "DRAINED"
                          and s["pending"]["light"] == 50 and s, what="DRAINED with 50 held")
        assert info["inflight"] == 0 and info["counts"]["failed"] == 0
        assert {n["state"] for n in info["nodes"]} == {"DRAINED"}, "every layer agrees"
        assert all(t.state is TokenState.WAITING for t in held), "held, not run, not lost"
    finally:
        client.resume()
    assert [t.get(timeout=15) for t in held] == [i + 1 for i in range(50)]
    assert shared_cluster.status()["state"] == "RUNNING"


def test_node_drain_sends_work_elsewhere(shared_cluster):
    client = shared_cluster.client()
    client.drain(node="a1", reason="disk swap")
    try:
        shared_cluster.wait_nodes(lambda n: n["a1"] == "DRAINED", "a1 drained")
        tokens = [client.submit_by_name("cluster_tasks:where", (i,)) for i in range(60)]
        assert {t.get(timeout=15)["tag"] for t in tokens} == set(range(60))
        assert {t.node for t in tokens} == {"a2"}
        nodes = {n["name"]: n for n in shared_cluster.status()["nodes"]}
        assert nodes["a1"]["reason"] == "disk swap"
    finally:
        client.resume(node="a1")
    shared_cluster.wait_nodes(lambda n: n["a1"] == "UP", "a1 resumed")


def test_kill_a_token_waiting_at_the_gateway(shared_cluster):
    client = shared_cluster.client()
    client.drain(reason="kill test")
    try:
        victim = client.submit_by_name("cluster_tasks:add", (1, 1))
        survivor = client.submit_by_name("cluster_tasks:add", (2, 2))
        wait_until(lambda: shared_cluster.status()["pending"]["light"] >= 2, what="held")
        reply = client.kill(victim)
        assert reply.ok and reply.outcome == "killed"
        with pytest.raises(TokenKilled):
            victim.get(timeout=10)
    finally:
        client.resume()
    assert survivor.get(timeout=10) == 4
    assert client.kill(victim).outcome == "finished"


def test_kill_reaches_agents_queued_token_and_asks_a_running_one_to_stop(shared_cluster,
                                                                         effects, gates):
    """An agent's queued tokens are killed there; a running one is asked to stop (a task
    that never looks runs to its end, and its owner gets TokenCancelled then)."""
    client = shared_cluster.client()
    gate = gates("blockers")
    # Each agent has 2 medium workers (core 2, 2 workers per core): 4 blockers fill them.
    blockers = [client.submit_by_name("cluster_tasks:gated", (str(effects), f"b{i}", str(gate)))
                for i in range(4)]
    wait_until(lambda: all(effects.count(f"b{i}") for i in range(4)), what="blockers running")
    queued = [client.submit_by_name("cluster_tasks:record", (str(effects), f"q{i}"))
              for i in range(2)]
    wait_until(lambda: shared_cluster.status()["inflight"] == 6, what="dispatched")
    outcomes = [client.kill(t) for t in queued]
    assert {o.outcome for o in outcomes} == {"killed"}, [o.message for o in outcomes]
    for token in queued:
        with pytest.raises(TokenKilled):
            token.get(timeout=10)
    running = client.kill(blockers[0])
    assert (running.ok, running.outcome) == (True, "cancel_requested"), running.message
    assert not blockers[0].wait(0.2), "a thread cannot be stopped: it runs on"
    gate.open()
    with pytest.raises(TokenCancelled):
        blockers[0].get(timeout=10)
    assert [t.get(timeout=10) for t in blockers[1:]] == [f"b{i}" for i in range(1, 4)]
    assert effects.count("b0") == 1, "the cancelled call ran to its end, once"
    assert [effects.count(f"q{i}") for i in range(2)] == [0, 0], "killed before they ran"


def test_unknown_token_kill_and_unknown_node_drain_are_clear(shared_cluster):
    from tokengate.shared.errors import BadRequest, UnknownToken
    client = shared_cluster.client()
    with pytest.raises(UnknownToken):
        client.kill("no-such-token")
    with pytest.raises(BadRequest, match="no agent"):
        client.drain(node="nope")


def test_a_full_gateway_pushes_back_and_nothing_is_lost(make_cluster):
    cluster = make_cluster(agents=("a1",), gateway_options=("--max-pending", "50"))
    client = cluster.client(window=400)
    client.drain(reason="fill it")
    try:
        tokens = [client.submit_by_name("cluster_tasks:add", (i, 0)) for i in range(300)]
        info = wait_until(lambda: (s := cluster.status())["pending"]["light"] >= 50 and s,
                          what="gateway full")
        assert info["pending"]["light"] <= 51 and not any(t.done() for t in tokens)
    finally:
        client.resume()
    assert [t.get(timeout=30) for t in tokens] == list(range(300)), "busy calls were retried"


def test_a_long_drain_never_looks_like_agent_loss(shared_cluster):
    import time

    client = shared_cluster.client()
    client.drain(reason="long")
    try:
        deadline = time.monotonic() + 2 * HEARTBEAT_TIMEOUT
        while time.monotonic() < deadline:  # watch the whole window, not just its end
            nodes = {n["name"]: n["state"] for n in shared_cluster.status()["nodes"]}
            assert nodes == {"a1": "DRAINED", "a2": "DRAINED"}
            time.sleep(0.25)
        assert shared_cluster.status()["counts"]["lost"] == 0
    finally:
        client.resume()
    assert client.submit_by_name("cluster_tasks:add", (1, 1)).get(timeout=10) == 2
