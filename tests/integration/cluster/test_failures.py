"""Redis is the truth: SIGKILL an agent or the gateway under load and lose nothing."""

from __future__ import annotations

import signal
import time

import cluster_tasks  # noqa: F401 - registers the tasks
import psutil
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


def test_sigkill_an_agent_under_load_requeues_its_tokens(make_cluster, effects, gates):
    cluster = make_cluster(agent_options=("--workers-per-core", "2", "--mailbox-capacity", "10"))
    client = cluster.client()
    gate = gates("blockers")
    # 2 medium workers per agent: the 4 non-idempotent calls occupy all of them (until the
    # gate opens), then 300 more queue behind them on both agents and in Redis.
    once = [client.submit_by_name("cluster_tasks:gated_once", (str(effects), f"once{i}",
                                                               str(gate))) for i in range(4)]
    wait_until(lambda: all(effects.count(f"once{i}") for i in range(4)),
               what="non-idempotent tokens running")
    tokens = [client.submit_by_name("cluster_tasks:record", (str(effects), f"t{i}"))
              for i in range(300)]
    wait_until(lambda: len(cluster.redis.inflight("a1")) > 2, what="a1 holding queued work")
    cluster.kill(cluster.agents["a1"], signal.SIGKILL)
    gate.open()
    results = _outcomes(tokens)
    assert sorted(v for kind, v in results.values()) == sorted(f"t{i}" for i in range(300)), \
        "every token completes"
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
    assert [effects.count(f"once{i}") for i in range(4)] == [1] * 4
    info = cluster.wait_nodes(lambda n: "a1" not in n, "a1 declared lost")
    assert info["counts"]["requeued"] == len(requeued)
    assert info["counts"]["lost"] == len(lost)
    assert info["inflight"] == 0 and sum(info["pending"].values()) == 0, "nothing stuck"



def test_an_agent_leaving_starts_nothing_once_its_link_is_gone(make_cluster, effects, gates):
    """SIGTERM with a short grace: the call running past it holds a1's one medium worker;
    ten never-twice calls wait behind it. Once a1's link is gone the gateway gives the ten
    to a2; the worker freed on a1 then must not start them too (it did: the work lease
    stayed open while the scheduler stopped, and they ran on both agents)."""
    cluster = make_cluster(agents=("a1",), agent_options=(
        "--workers-per-core", "1", "--mailbox-capacity", "20", "--stop-grace", "0.3"))
    client = cluster.client()
    gate = gates("holder")
    holder = client.submit_by_name("cluster_tasks:gated_once",
                                   (str(effects), "holder", str(gate)))
    wait_until(lambda: effects.count("holder") == 1, what="a1 running the holder")
    keys = [f"q{i}" for i in range(10)]
    queued = [client.submit_by_name("cluster_tasks:record_once", (str(effects), key))
              for key in keys]
    wait_until(lambda: len(cluster.redis.inflight("a1")) == 11, what="a1 holding all eleven")
    cluster.start_agent("a2")
    a1 = cluster.agents["a1"]
    a1.send_signal(signal.SIGTERM)
    cluster.wait_nodes(lambda n: "a1" not in n, "a1's link gone", timeout=HEARTBEAT_TIMEOUT)
    gate.open()  # a1's worker is free again while its scheduler stops
    assert [t.get(timeout=30) for t in queued] == keys
    assert {t.node for t in queued} == {"a2"}
    assert a1.wait(15) == 0
    twice = {key: effects.pids(key) for key in keys if effects.count(key) != 1}
    assert not twice, f"never-twice calls run on both agents (pids): {twice}"
    with pytest.raises(AgentLost):
        holder.get(timeout=10)

def test_sigkill_and_restart_the_gateway_under_load(make_cluster):
    cluster = make_cluster()
    client = cluster.client()
    tokens = [client.submit_by_name("cluster_tasks:sleepy", (0.002, i)) for i in range(3000)]
    wait_until(lambda: cluster.status()["counts"]["completed"] > 200, what="work under way")
    cluster.kill(cluster.gateway, signal.SIGKILL)
    waiting = sum(cluster.redis.client.llen(f"{cluster.prefix}q:{w}")
                  for w in ("heavy", "medium", "light"))
    assert waiting + len(cluster.redis.inflight("a1")) + len(cluster.redis.inflight("a2")), \
        "the crash came while work was still under way"
    more = [client.submit_by_name("cluster_tasks:add", (i, 1)) for i in range(200)]
    cluster.start_gateway()
    assert [t.get(timeout=90) for t in tokens] == list(range(3000)), "no token lost"
    assert [t.get(timeout=30) for t in more] == [i + 1 for i in range(200)]
    info = cluster.wait_nodes(lambda n: n.get("a1") == "UP" and n.get("a2") == "UP",
                              "agents reconnected")
    assert info["inflight"] == 0 and sum(info["pending"].values()) == 0


def test_restarted_agent_reruns_its_work_then_attempts_run_out(make_cluster, effects, gates):
    cluster = make_cluster(agents=("a1",), gateway_options=("--max-attempts", "2"))
    client = cluster.client()
    never = gates("never")  # the task holds its worker until its agent dies
    token = client.submit_by_name("cluster_tasks:gated", (str(effects), "m", str(never)))
    wait_until(lambda: effects.count("m") == 1, what="running on a1")
    cluster.kill(cluster.agents["a1"], signal.SIGKILL)
    cluster.start_agent("a1", wait=False)  # same name, new process: its old work comes back
    wait_until(lambda: effects.count("m") == 2, timeout=30, what="attempt 2 on the new a1")
    cluster.kill(cluster.agents["a1"], signal.SIGKILL)
    with pytest.raises(AgentLost, match="a1"):
        token.get(timeout=30)
    assert token.attempt == 2
    assert cluster.status()["counts"]["lost"] == 1


def test_sigterm_an_agent_finishes_what_it_can_and_hands_back_the_rest(make_cluster, effects,
                                                                       gates):
    cluster = make_cluster(agent_options=("--workers-per-core", "2", "--mailbox-capacity", "10",
                                          "--stop-grace", "1.5"))
    client = cluster.client()
    keys = [f"k{i}" for i in range(60)]
    gate = {key: gates(key) for key in keys}  # one gate per token
    tokens = [client.submit_by_name("cluster_tasks:gated", (str(effects), key, str(gate[key])))
              for key in keys]
    key_of = {t.token_id: key for t, key in zip(tokens, keys, strict=True)}
    # 20 medium slots per agent: each holds 20, the other 20 wait in Redis.
    wait_until(lambda: cluster.status()["inflight"] == 40, what="both agents full")
    held = cluster.redis.inflight("a1")
    wait_until(lambda: sum(effects.count(key_of[i]) for i in held) == 2, what="a1 running 2")
    running = [key_of[i] for i in held if effects.count(key_of[i])]
    a1 = cluster.agents["a1"]
    a1.send_signal(signal.SIGTERM)  # it stops taking work and finishes what it can ...
    for key in running:
        gate[key].open()  # ... which is these two: the rest stays gated through its grace
    assert a1.wait(15) == 0
    cluster.wait_nodes(lambda n: "a1" not in n, "a1 gone at once", timeout=HEARTBEAT_TIMEOUT)
    for key in keys:
        gate[key].open()
    assert [t.get(timeout=30) for t in tokens] == keys, "nothing fails"
    info = cluster.status()
    assert info["counts"]["failed"] == 0 and info["counts"]["requeued"] > 0
    assert {t.node for t in tokens if key_of[t.token_id] in running} == {"a1"}
    assert {t.node for t in tokens} == {"a1", "a2"}


def _connections_to(port: int) -> int:
    return sum(1 for c in psutil.Process().net_connections(kind="tcp")
               if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED)


def test_a_new_client_after_a_gateway_crash_is_answered_at_once(make_cluster):
    """gRPC shares one connection between every channel of a process to one address, unless
    told not to: a client made just after the gateway died sent its first call on the
    connection an older client still held to the dead gateway, and got "Stream removed"."""
    cluster = make_cluster(agents=())
    before = _connections_to(cluster.port)
    first, second = cluster.client(), cluster.client()
    assert first.ping() and second.ping()
    assert _connections_to(cluster.port) - before == 2, "each client a connection of its own"
    for _ in range(5):
        cluster.restart_gateway()  # SIGKILL, start, and one ping from a client made now
        cluster.client(connect=False).ping(timeout=5)
    assert first.ping(timeout=10) and second.ping(timeout=10)
