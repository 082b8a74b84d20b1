"""Redis is the truth: SIGKILL an agent or the gateway under load and lose nothing."""

from __future__ import annotations

import signal
import time

import cluster_tasks  # noqa: F401 - registers the tasks
import pytest
from conftest import HEARTBEAT_TIMEOUT, wait_until
from tokengate.shared.errors import AgentLost


def _outcomes(tokens, timeout=60.0):
    deadline = time.monotonic() + timeout
    done = {}
    for token in tokens:
        try:
            done[token.token_id] = ("ok", token.get(timeout=max(0.1, deadline - time.monotonic())))
        except AgentLost as exc:
            done[token.token_id] = ("lost", str(exc))
    return done


def test_sigkill_an_agent_under_load_requeues_its_tokens(make_cluster, tmp_path):
    cluster = make_cluster(agent_options=("--workers-per-core", "2", "--mailbox-capacity", "10"))
    client = cluster.client()
    # 2 medium workers per agent: the 4 non-idempotent calls occupy all of them, then
    # 300 more queue behind them on both agents.
    once = [client.submit_by_name("cluster_tasks:mark_and_sleep_once",
                                  (str(tmp_path / f"once{i}"), 2.0)) for i in range(4)]
    wait_until(lambda: sum((tmp_path / f"once{i}").exists() for i in range(4)) == 4,
               what="non-idempotent tokens running")
    tokens = [client.submit_by_name("cluster_tasks:sleepy", (0.01, i)) for i in range(300)]
    wait_until(lambda: {n["name"]: n["inflight"] for n in cluster.status()["nodes"]}
               .get("a1", 0) > 2, what="a1 holding queued work")
    cluster.kill(cluster.agents["a1"], signal.SIGKILL)
    results = _outcomes(tokens)
    assert sorted(v for kind, v in results.values()) == list(range(300)), "every token completes"
    requeued = [t for t in tokens if t.attempt > 1]
    assert requeued and all(t.attempt == 2 and t.node == "a2" for t in requeued)
    lost = []
    for token in once:
        try:
            token.get(timeout=30)
        except AgentLost as exc:
            assert "a1" in str(exc)
            lost.append(token)
    assert len(lost) == 2, "the non-idempotent calls on a1 failed instead of running again"
    info = cluster.wait_nodes(lambda n: "a1" not in n, "a1 declared lost")
    assert info["counts"]["requeued"] == len(requeued)
    assert info["counts"]["lost"] == len(lost)
    assert info["inflight"] == 0 and sum(info["pending"].values()) == 0, "nothing stuck"


def test_sigkill_and_restart_the_gateway_under_load(make_cluster):
    cluster = make_cluster()
    client = cluster.client()
    tokens = [client.submit_by_name("cluster_tasks:sleepy", (0.002, i)) for i in range(3000)]
    wait_until(lambda: cluster.status()["counts"]["completed"] > 200, what="work under way")
    cluster.kill(cluster.gateway, signal.SIGKILL)
    more = [client.submit_by_name("cluster_tasks:add", (i, 1)) for i in range(200)]
    cluster.start_gateway()
    assert [t.get(timeout=90) for t in tokens] == list(range(3000)), "no token lost"
    assert [t.get(timeout=30) for t in more] == [i + 1 for i in range(200)]
    info = cluster.wait_nodes(lambda n: n.get("a1") == "UP" and n.get("a2") == "UP",
                              "agents reconnected")
    assert info["inflight"] == 0 and sum(info["pending"].values()) == 0


def test_restarted_agent_reruns_its_work_then_attempts_run_out(make_cluster, tmp_path):
    cluster = make_cluster(agents=("a1",), gateway_options=("--max-attempts", "2"))
    client = cluster.client()
    token = client.submit_by_name("cluster_tasks:mark_and_sleep", (str(tmp_path / "m"), 30.0))
    wait_until((tmp_path / "m").exists, what="running on a1")
    cluster.kill(cluster.agents["a1"], signal.SIGKILL)
    (tmp_path / "m").unlink()
    cluster.start_agent("a1", wait=False)  # same name, new process: its old work comes back
    wait_until((tmp_path / "m").exists, timeout=30, what="attempt 2 running on the new a1")
    cluster.kill(cluster.agents["a1"], signal.SIGKILL)
    with pytest.raises(AgentLost, match="a1"):
        token.get(timeout=30)
    assert token.attempt == 2
    assert cluster.status()["counts"]["lost"] == 1


def test_sigterm_an_agent_finishes_what_it_can_and_hands_back_the_rest(make_cluster):
    cluster = make_cluster(agent_options=("--workers-per-core", "2", "--mailbox-capacity", "10",
                                          "--stop-grace", "0.5"))
    client = cluster.client()
    tokens = [client.submit_by_name("cluster_tasks:sleepy", (0.1, i)) for i in range(60)]
    wait_until(lambda: {n["name"]: n["inflight"] for n in cluster.status()["nodes"]}
               .get("a1", 0) > 5, what="a1 holding queued work")
    cluster.kill(cluster.agents["a1"], signal.SIGTERM)
    assert cluster.agents["a1"].returncode == 0
    cluster.wait_nodes(lambda n: "a1" not in n, "a1 gone at once", timeout=HEARTBEAT_TIMEOUT)
    assert sorted(t.get(timeout=30) for t in tokens) == list(range(60)), "nothing fails"
    info = cluster.status()
    assert info["counts"]["failed"] == 0 and info["counts"]["requeued"] > 0
    assert {t.node for t in tokens} == {"a1", "a2"}
