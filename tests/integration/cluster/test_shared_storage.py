"""A shared storage's writer cap holds across the cluster: three agents that all declare
``--storage nas1=SLOW`` run at most 10 calls of a SLOW-tagged task at once between them
(counted by the tasks themselves), and more than one agent writes at once. The control:
the same agents without ``--storage`` keep only their per-agent caps, and together run more
than 10 at once."""

from __future__ import annotations

import pytest
import storage_tasks
from conftest import Cluster

CALLS = 60
SECONDS = 0.05
AGENTS = ("s1", "s2", "s3")


def run_writers(cluster: Cluster, marks: str) -> tuple[int, int]:
    tokens = [storage_tasks.slow_write(marks, SECONDS, i) for i in range(CALLS)]
    assert [t.get(timeout=60) for t in tokens] == list(range(CALLS))
    return storage_tasks.most_at_once(marks)


@pytest.mark.parametrize("shared", [True, False], ids=["nas1=SLOW", "local-disks"])
def test_a_shared_storage_cap_holds_across_agents(redis_url, tmp_path, shared):
    extra = ["--include", "storage_tasks", "--workers-per-core", "8"]
    if shared:
        extra += ["--storage", "nas1=SLOW"]
    cluster = Cluster(redis_url, tmp_path)
    try:
        cluster.start_gateway()
        for name in AGENTS:
            cluster.start_agent(name, wait=False, extra=tuple(extra))
        cluster.wait_nodes(lambda nodes: all(nodes.get(n) == "UP" for n in AGENTS),
                           "agents up")
        cluster.client(install=True)
        most, agents_at_once = run_writers(cluster, str(tmp_path / "marks"))
        nodes = {n["name"]: n for n in cluster.status()["nodes"]}
    finally:
        cluster.stop()
    if shared:
        assert most <= 10, f"{most} writers at once on nas1 (SLOW: 10)"
        assert most > 3 and agents_at_once > 1, (most, agents_at_once)
        for name in AGENTS:  # status shows the declaration, the cap, and every slot back
            assert nodes[name]["storage"] == {"declared": "nas1=SLOW", "cap": 10, "out": 0}
    else:
        assert most > 10, f"only {most} at once: the control shows nothing"
        assert all("storage" not in node for node in nodes.values())
