"""Agents that differ: a call runs only on an agent that has its task and carries the labels
it requires; a call nobody can serve fails with PlacementTimeout after the gateway's
placement timeout, while the others keep flowing; a waiting call runs once a matching agent
joins; ``tokengate status`` shows each agent's labels and tasks.

One cluster for the module: ``plain`` includes cluster_tasks only; ``gpu`` also includes
gpu_tasks and carries ``gpu=a100``."""

from __future__ import annotations

import time

import cluster_tasks
import gpu_tasks
import pytest
from conftest import Cluster, wait_until
from tokengate.shared.status import format_status

from tokengate import PlacementTimeout

PLACEMENT_TIMEOUT = 8.0  # long enough for an agent to start on a loaded machine


@pytest.fixture(scope="module")
def cluster(redis_url, tmp_path_factory):
    made = Cluster(redis_url, tmp_path_factory.mktemp("labels"), gateway_options=(
        "--placement-timeout", str(PLACEMENT_TIMEOUT)))
    made.start_gateway()
    made.start_agent("plain", wait=False)
    made.start_agent("gpu", wait=False, extra=("--include", "gpu_tasks", "--label", "gpu=a100",
                                               "--label", "zone=eu"))
    made.wait_nodes(lambda nodes: nodes.get("plain") == "UP" and nodes.get("gpu") == "UP",
                    "agents up")
    made.client(install=True)
    yield made
    made.stop()


def test_a_call_runs_only_where_its_task_and_labels_are(cluster):
    labelled = [gpu_tasks.on_a100(i) for i in range(12)]
    only_there = [gpu_tasks.gpu_only(i) for i in range(12)]
    anywhere = [cluster_tasks.where(i) for i in range(24)]
    assert [t.get(timeout=30) for t in labelled] == list(range(12))
    assert [t.get(timeout=30) for t in only_there] == list(range(12))
    for token in anywhere:
        token.get(timeout=30)
    assert {t.node for t in labelled} == {"gpu"}, "gpu=a100 runs on the labelled agent only"
    assert {t.node for t in only_there} == {"gpu"}, "a task runs only where it is included"
    assert "plain" in {t.node for t in anywhere}, "calls that need nothing go anywhere"


def test_a_call_nobody_serves_fails_after_the_timeout_and_blocks_nothing(cluster):
    began = time.monotonic()
    stranded = [gpu_tasks.on_h100(i) for i in range(3)]
    # Same weight as the stranded calls, submitted behind them: they run meanwhile.
    flowing = [cluster_tasks.add(i, 1) for i in range(50)]
    assert [t.get(timeout=PLACEMENT_TIMEOUT) for t in flowing] == [i + 1 for i in range(50)]
    assert time.monotonic() - began < PLACEMENT_TIMEOUT, "the others did not wait for them"
    for token in stranded:
        with pytest.raises(PlacementTimeout, match="gpu=h100"):
            token.get(timeout=PLACEMENT_TIMEOUT + 15)
    assert time.monotonic() - began >= PLACEMENT_TIMEOUT, "they waited the timeout first"
    assert not any(t.node for t in stranded), "they never reached an agent"


def test_a_waiting_call_runs_when_a_matching_agent_joins(cluster):
    token = gpu_tasks.on_h100(7)
    time.sleep(0.5)  # not synchronization: the call is to wait a while with no agent at all
    assert not token.done()
    cluster.start_agent("h100", wait=False, extra=("--include", "gpu_tasks",
                                                    "--label", "gpu=h100"))
    assert token.get(timeout=PLACEMENT_TIMEOUT + 15) == 7
    assert token.node == "h100"


def test_status_shows_each_agents_labels_and_tasks(cluster):
    nodes = wait_until(lambda: {n["name"]: n for n in cluster.status()["nodes"]}, what="nodes")
    assert nodes["gpu"]["labels"] == {"gpu": "a100", "zone": "eu"}
    assert nodes["plain"]["labels"] == {}
    gpu_names = {t["name"] for t in nodes["gpu"]["tasks"]}
    assert "gpu_tasks:on_a100" in gpu_names and "cluster_tasks:add" in gpu_names
    assert not any(t["name"].startswith("gpu_tasks:") for t in nodes["plain"]["tasks"])
    requires = {t["name"]: t["requires"] for t in nodes["gpu"]["tasks"]}
    assert requires["gpu_tasks:on_a100"] == ["gpu=a100"]
    text = format_status(cluster.status())
    assert "gpu=a100 zone=eu" in text and "gpu_tasks:on_a100[gpu=a100]" in text
