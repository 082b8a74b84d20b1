"""Fifty real agent processes on one gateway, on this 2-CPU machine.

Every agent is a ``tokengate agent`` process with one scheduler core and one worker. They are
started all at once (about a second of CPU each, so registration takes 10-40 s here,
depending on what else runs) and the test waits on the gateway's status, not on sleeps.
Then calls that hold their worker spread over all fifty and run exactly once each (counted by
the line each run appends to a file), short calls travel in chunks and are answered once
each, no agent is ever declared lost, and the credits the gateway holds for every agent come
back to full.
Stopped all at once, every agent is let go as stopped, none as silent.
"""

from __future__ import annotations

import signal
from collections import Counter

import cluster_tasks  # noqa: F401  (registers the tasks submitted here)
import pytest
from conftest import wait_until
from tokengate.shared.registry import lookup

pytestmark = pytest.mark.slow

AGENTS = 50
HELD_CALLS = 1000
HELD = 0.15  # seconds each held call keeps its worker: the run outlasts the heartbeat timeout
FIRST = 200
SHORT_CALLS = 3000
CAPACITY = 120  # the agents' mailbox capacity: one worker, so their credit when idle


@pytest.mark.timeout(150)
def test_fifty_agents_register_stay_alive_and_every_one_runs_work(make_cluster, effects):
    cluster = make_cluster(agents=(), agent_options=(
        "--cores", "1", "--workers-per-core", "1", "--mailbox-capacity", str(CAPACITY)))
    names = {f"n{i:02d}" for i in range(AGENTS)}
    try:
        for name in sorted(names):
            cluster.start_agent(name, wait=False)
        cluster.wait_nodes(lambda nodes: sum(nodes.get(n) == "UP" for n in names) == AGENTS,
                           f"{AGENTS} agents up", timeout=90)
        pids = {n["pid"]: n["name"] for n in cluster.status()["nodes"]}
        assert set(pids.values()) == names and len(pids) == AGENTS
        client = cluster.client()
        record = lookup("cluster_tasks:record")

        # Calls that hold their worker: they spread over every agent by credit.
        held = [client.submit(record, (str(effects), f"held{i}", HELD), {})
                for i in range(HELD_CALLS)]
        assert [t.get(timeout=60) for t in held] == [f"held{i}" for i in range(HELD_CALLS)]
        ran_on = Counter(t.node for t in held)
        assert set(ran_on) == names, f"agents without work: {names - set(ran_on)}"
        assert max(ran_on.values()) <= 3 * HELD_CALLS // AGENTS, f"uneven: {ran_on}"

        # Short calls, once their run time is known (after a first batch, spread), go to
        # agents in chunks: far fewer frames than calls, each call answered once, right.
        # (A pure-CPU call: one that writes a file gives up the GIL in its system calls and,
        # with fifty busy processes on two CPUs, often waits milliseconds to get it back.)
        add = lookup("cluster_tasks:add")
        first = [client.submit(add, (i, 1), {}) for i in range(FIRST)]
        assert [t.get(timeout=60) for t in first] == [i + 1 for i in range(FIRST)]
        before = cluster.status()["counts"]
        short = [client.submit(add, (i, 2), {}) for i in range(SHORT_CALLS)]
        assert [t.get(timeout=60) for t in short] == [i + 2 for i in range(SHORT_CALLS)]
        info = cluster.status()
        counts = info["counts"]
        frames = counts["gateway_direct_frames"] - before["gateway_direct_frames"]
        # (here: ~30 frames; 300-800 with chunking off, TOKENGATE_CHUNK_BUDGET=0)
        assert frames < SHORT_CALLS / 30, f"{frames} dispatch frames for {SHORT_CALLS} calls"
        assert counts["gateway_agent_results"] - before["gateway_agent_results"] == SHORT_CALLS
        assert {t.node for t in short} <= names

        # The held calls ran exactly once each, on the agent that reported them.
        runs = effects.counts()
        assert runs.keys() == {f"held{i}" for i in range(HELD_CALLS)}
        assert set(runs.values()) == {1}
        for i, token in enumerate(held):
            assert pids[effects.pids(f"held{i}")[0]] == token.node
        # Nobody lost, nothing requeued, fifty nodes UP, every credit back to full.
        assert counts["lost"] == 0 and counts["requeued"] == 0 and counts["failed"] == 0
        assert counts["completed"] == HELD_CALLS + FIRST + SHORT_CALLS
        assert "declared lost" not in cluster.log("gateway")
        wait_until(lambda: {n["name"]: (n["state"], n["credits"]["medium"])
                            for n in cluster.status()["nodes"]}
                   == dict.fromkeys(names, ("UP", CAPACITY)), what="fifty UP, credits full")

        # All fifty stop at once (SIGTERM): each says so before its link closes, so the
        # gateway lets it go at once, not a heartbeat timeout later as if it were lost.
        stop_all(cluster)
        for proc in cluster.agents.values():
            proc.wait(30)
        wait_until(lambda: cluster.log("gateway").count("declared lost: it stopped") == AGENTS,
                   what="every agent let go as stopped")
        assert "no heartbeat" not in cluster.log("gateway")
    finally:
        stop_all(cluster)


def stop_all(cluster) -> None:
    """SIGTERM every agent at once (the fixture's one by one takes a second each)."""
    for proc in cluster.agents.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
