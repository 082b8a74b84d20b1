"""Defect 7 (issue 8) and defect 4 (issue 13): an agent whose every worker is stuck.

It must receive no more calls than it can hold (the rest wait at the gateway), obey a kill of
a token it holds queued, show SATURATED while stuck, and a task time limit must free it. The
gateway must never wait on an agent that stops reading its link. Once its workers have run
one call each past ``--stuck-after``, it shows STUCK and what waits behind them runs on other
agents (work stealing), never-twice calls included, none of them twice.

The hung agent has 2 cores x 2 workers with mailboxes of 5: it can hold
workers x (mailbox + 1) = 24 calls (one running per worker, five queued behind each); heavy,
medium and light calls all share core 2, so their credits overlap.
"""

from __future__ import annotations

import time
from collections import Counter

import faults2_tasks
import pytest
from _faults2 import (
    TASKS,
    RawAgent,
    Runs,
    f2_clusters,
    inflight_ids,
    token_state,
    topology_of,
    wait_until,
)
from tokengate.shared.errors import TaskTimeLimit, TokenKilled


@pytest.fixture
def f2_cluster(redis_url, tmp_path):
    yield from f2_clusters(redis_url, tmp_path)


HUNG = ("--cores", "2", "--workers-per-core", "2", "--mailbox-capacity", "5")
WEIGHTS = ("heavy", "medium", "light")
PER_WEIGHT = 20  # 60 calls: credits per weight (20/10/10 at idle) add up past the 24 it holds


def _capacity(cluster, name: str) -> tuple[int, int]:
    """(workers, calls the agent can hold), from the topology it registered."""
    topology = topology_of(cluster.node(name))
    return topology["workers"], topology["workers"] * (topology["mailbox_capacity"] + 1)


def _fill(client, runs: Runs) -> tuple[list, list[str]]:
    tags = [f"{w}{i}" for w in WEIGHTS for i in range(PER_WEIGHT)]
    tokens = [client.submit_by_name(f"{TASKS}:gated_{tag.rstrip('0123456789')}", runs.args(tag))
              for tag in tags]
    return tokens, tags


def _stuck(cluster, client, runs: Runs) -> tuple[list, list[str], int]:
    """Submit the 60 gated calls and wait until every worker of "hung" runs one."""
    workers, capacity = _capacity(cluster, "hung")
    tokens, tags = _fill(client, runs)
    wait_until(lambda: runs.total() >= workers, what=f"all {workers} workers stuck")
    return tokens, tags, capacity


def test_stuck_agent_receives_no_more_than_it_holds_and_shows_saturated(f2_cluster, tmp_path):
    cluster = f2_cluster({"hung": HUNG})
    runs = Runs(tmp_path)
    client = cluster.client()
    try:
        tokens, tags, capacity = _stuck(cluster, client, runs)
        # Watch two seconds (several dispatch rounds and credit syncs), not only one instant.
        samples = []
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            reply = cluster.status_reply()
            node = next(n for n in reply.nodes if n.name == "hung")
            samples.append((node.inflight, node.state, sum(reply.pending.values()),
                            {c.weight: c.count for c in node.credits}))
        peak = max(sample[0] for sample in samples)
        inflight, state, pending, credits = samples[-1]
        assert peak <= capacity, (
            f"the gateway sent the stuck agent {peak} calls; it can hold {capacity}")
        assert pending == len(tokens) - inflight, "the rest wait at the gateway"
        assert state == "SATURATED", (f"a stuck agent holding {inflight} shows {state} with "
                                      f"credits {credits} while {pending} wait")
    finally:
        runs.open_gate()
    assert [t.get(timeout=20) for t in tokens] == tags
    assert runs.counts() == Counter(tags), "each ran exactly once"


def test_kill_is_applied_to_a_token_queued_on_a_stuck_agent(f2_cluster, tmp_path):
    cluster = f2_cluster({"hung": HUNG})
    runs = Runs(tmp_path)
    client = cluster.client()
    store = cluster.redis()
    try:
        tokens, tags, _ = _stuck(cluster, client, runs)
        held = inflight_ids(store, cluster.prefix, "hung")
        started = set(runs.counts())
        queued = [t for t, tag in zip(tokens, tags, strict=True)
                  if t.token_id in held and tag not in started]
        assert queued, "the stuck agent holds queued calls"
        victim = queued[-1]  # the last one sent: furthest behind a blocked link
        client.kill(victim)
        with pytest.raises(TokenKilled):
            victim.get(timeout=10)  # while every worker is still stuck
    finally:
        runs.open_gate()
    victim_tag = tags[tokens.index(victim)]
    rest = [(t, tag) for t, tag in zip(tokens, tags, strict=True) if t is not victim]
    assert [t.get(timeout=20) for t, _ in rest] == [tag for _, tag in rest]
    # Its client has the outcome, so Redis has dropped the token; the counter keeps the kill.
    assert token_state(store, cluster.prefix, victim.token_id) in ("killed", "")
    assert cluster.status_reply().counts["killed"] == 1
    assert runs.counts()[victim_tag] == 0, "a killed token never runs"
    assert runs.counts() == Counter(tag for _, tag in rest)


def test_time_limit_fails_stuck_tokens_and_frees_the_agent(f2_cluster, tmp_path):
    assert faults2_tasks.TIME_LIMIT_SUPPORTED, "the 'timeout' tag is refused: no time limits"
    cluster = f2_cluster({"hung": HUNG})
    runs = Runs(tmp_path, "limited")
    client = cluster.client()
    try:
        workers, _ = _capacity(cluster, "hung")
        stuck = [client.submit_by_name(f"{TASKS}:limited_heavy", runs.args(f"s{i}"))
                 for i in range(workers + 2)]
        for token in stuck:
            with pytest.raises(TaskTimeLimit):
                token.get(timeout=15)
        # The abandoned threads still sit in their calls (a thread cannot be killed) and are
        # counted; fresh workers serve the mailboxes meanwhile.
        node = wait_until(lambda: (n := cluster.node("hung")) is not None
                          and n.state == "UP" and n.stuck == len(stuck) and n,
                          what="the agent UP again, its abandoned workers counted")
        assert node.state == "UP"
        fresh = Runs(tmp_path, "fresh")
        tokens = [client.submit_by_name(f"{TASKS}:record", (str(fresh.log), f"n{i}"))
                  for i in range(20)]
        assert [t.get(timeout=10) for t in tokens] == [f"n{i}" for i in range(20)]
        assert {t.node for t in tokens} == {"hung"}, "new work runs on the freed agent"
        assert fresh.counts() == Counter(f"n{i}" for i in range(20))
    finally:
        runs.open_gate()


def test_gateway_never_waits_on_an_agent_that_stops_reading(f2_cluster, tmp_path):
    # a1 grants 20 light credits, the silent agent 100: placement by most credits sends the
    # silent one about 80 calls before a1 gets any.
    cluster = f2_cluster({"a1": ("--cores", "2", "--mailbox-capacity", "5")})
    client = cluster.client()
    silent = RawAgent(cluster.address, "silent", {"light": 100}, [f"{TASKS}:padded"])
    try:
        cluster.wait_nodes(lambda nodes: nodes.get("silent") == "UP", "silent agent up")
        log = tmp_path / "padded.runs"
        padding = "x" * 65536  # 100 calls of 64 KiB fill any flow-control window
        tokens = [client.submit_by_name(f"{TASKS}:padded", (str(log), i, padding))
                  for i in range(300)]

        def settled():
            held = len(inflight_ids(cluster.redis(), cluster.prefix, "silent"))
            return held and sum(t.done() for t in tokens) == len(tokens) - held and held
        held = wait_until(settled, what="every call not held by the silent agent done")
        assert 0 < held <= 100, "the silent agent holds calls, never more than its credits"
        assert client.ping(timeout=2).version
        assert cluster.status()["state"] == "RUNNING"
    finally:
        silent.close()  # its link closes: what it held goes to a1
    assert sorted(t.get(timeout=20) for t in tokens) == list(range(300))
    runs = Counter(log.read_text().split())
    assert len(runs) == 300 and set(runs.values()) == {1}, "each ran exactly once"


def test_work_queued_behind_hung_workers_runs_on_another_agent(f2_cluster, tmp_path):
    """Every worker of "hung" runs a call that never returns (no time limit) and quick calls
    queue behind them, sent while "hung" was the only agent. A second agent joins: the quick
    calls run there, each once (never-twice ones too), while the hung calls still run, and
    "hung" shows STUCK until they return."""
    cluster = f2_cluster({"hung": (*HUNG, "--stuck-after", "2")})
    held = Runs(tmp_path, "held")
    quick = Runs(tmp_path, "quick")
    client = cluster.client()
    try:
        workers, _ = _capacity(cluster, "hung")
        hung = [client.submit_by_name(f"{TASKS}:gated_heavy", held.args(f"h{i}"))
                for i in range(workers)]
        wait_until(lambda: held.total() >= workers, what=f"all {workers} workers held")
        tags = [f"q{i}" for i in range(40)]
        tokens = [client.submit_by_name(f"{TASKS}:record_once" if i % 2 else f"{TASKS}:record",
                                        (str(quick.log), tag)) for i, tag in enumerate(tags)]
        node = wait_until(lambda: (n := cluster.node("hung")) is not None
                          and n.state == "STUCK" and n, what="the hung agent STUCK")
        assert node.blocked == workers
        cluster.add_agent("spare", "--cores", "2")
        assert [t.get(timeout=30) for t in tokens] == tags, "they ran while hung still hangs"
        assert {t.node for t in tokens} == {"spare"}
        assert quick.counts() == Counter(tags), "each ran exactly once"
        assert held.counts() == Counter(f"h{i}" for i in range(workers))
        assert not any(t.done() for t in hung)
        assert "go back to the gateway" in cluster.log("hung"), "some had been sent to hung"
    finally:
        held.open_gate()
    assert [t.get(timeout=20) for t in hung] == [f"h{i}" for i in range(workers)]
    wait_until(lambda: (n := cluster.node("hung")) is not None and n.state == "UP",
               what="the hung agent UP again once its calls returned")
