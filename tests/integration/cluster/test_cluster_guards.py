"""The Guard House judges the cluster: records summed over the nodes, calls of a blocked
function refused at the gateway, one re-enable (``tokengate reenable``) for every node, and a
restarted gateway that blocks again from the agents' next reports."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from conftest import ROOT, Cluster, wait_until
from tokengate.shared.errors import MethodBlockedException

FUNCTION = "guard_tasks:odd_fails"
GUARDED = {"TOKENGATE_AUTO_BLOCK": "1", "TOKENGATE_MIN_ATTEMPTS": "4",
           "TOKENGATE_FAILURE_THRESHOLD": "0.5"}


@pytest.fixture
def pinned(redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    """Two auto-blocking agents, each labelled with its name so a call can be pinned."""
    cluster = Cluster(redis_url, tmp_path, agent_options=(
        "--include", "guard_tasks", "--path", str(ROOT / "tests" / "integration")))
    cluster.env.update(GUARDED)
    try:
        cluster.start_gateway()
        for name in ("a1", "a2"):
            cluster.start_agent(name, wait=False, extra=("--label", f"node={name}"))
        cluster.wait_nodes(lambda n: n.get("a1") == "UP" and n.get("a2") == "UP", "agents up")
        yield cluster
    finally:
        cluster.stop()


def _on(client: Any, node: str, i: int) -> Any:
    return client.submit_by_name(FUNCTION, (i,), tags={"weight": "light",
                                                       "requires": {"node": node}})


def _node_records(client: Any) -> dict[str, dict[str, Any]]:
    """Each node's own Guard House record of FUNCTION, from its snapshot."""
    records = {}
    for node in client.status().nodes:
        snapshot = msgpack.unpackb(node.snapshot, raw=False, strict_map_key=False)
        records[node.name] = snapshot["guard_house"]["methods"].get(FUNCTION, {})
    return records


def _blocked(client: Any) -> Any:
    reply = client.guards()
    return reply if FUNCTION in reply.blocked else None


def test_failures_summed_over_two_nodes_block_at_the_gateway_until_reenabled(pinned):
    client = pinned.client()
    failing = [_on(client, node, i) for node in ("a1", "a2") for i in (1, 3)]
    for token in failing:
        with pytest.raises(ValueError, match="odd"):
            token.get(timeout=15)
    assert {t.node for t in failing} == {"a1", "a2"}
    guards = wait_until(lambda: _blocked(client), timeout=10, what="blocked cluster-wide")
    assert guards.mode == "auto-block" and guards.min_attempts == 4
    assert (guards.executions, guards.failures) == (4, 4)
    health = next(f for f in guards.functions if f.name == FUNCTION)
    assert health.blocked and (health.attempts, health.failures) == (4, 4)
    records = _node_records(client)
    assert [records[n]["attempts"] for n in ("a1", "a2")] == [2, 2]  # neither alone: 4
    assert not any(r["blocked"] or r["over_threshold"] for r in records.values())

    refused = client.submit_by_name(FUNCTION, (2,))
    with pytest.raises(MethodBlockedException, match="4/4 attempts summed over the nodes"):
        refused.get(timeout=10)
    assert refused.node is None and client.guards().refusals == 1  # no agent was sent it

    pinned.restart_gateway()  # nothing kept in Redis: rebuilt from the agents' next reports
    wait_until(lambda: _blocked(client), timeout=20, what="blocked again after a restart")

    out = subprocess.run(
        [sys.executable, "-m", "tokengate.cli", "reenable", FUNCTION, "--gateway",
         pinned.address, "--actor", "tester"], env=pinned.env, cwd=str(ROOT),
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "reenabled" in out.stdout and "records reset on a1, a2" in out.stdout
    assert FUNCTION not in client.guards().blocked
    wait_until(lambda: not any(f.attempts for f in client.guards().functions
                               if f.name == FUNCTION), timeout=5, what="records reset")
    assert client.submit_by_name(FUNCTION, (4,)).get(timeout=15) == 4
    assert client.audit(5).entries[-1].action == "reenable"
