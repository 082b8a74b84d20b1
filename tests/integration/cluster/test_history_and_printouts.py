"""Issue 17 items 4 and 6 against real processes: ``tokengate history`` gathers the records of
every agent into one file; ``tokengate guards report`` prints the seed's classes for the
cluster; an agent logs the start-up banner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, Cluster, wait_until

SEED_FIELDS = {"token_id", "operation_type", "success", "execution_time", "core_id",
               "worker_id", "complexity_score", "node", "attempt"}


def cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokengate.cli", *args, "--gateway", cluster.address],
        env=cluster.env, cwd=str(ROOT), capture_output=True, text=True, timeout=60)


def _run_on(client: Any, node: str, other: str, calls: int) -> dict[str, bool]:
    """Run ``calls`` of add and one boom on ``node`` (``other`` drained meanwhile); token id ->
    whether it should have succeeded."""
    client.drain(other, "history test")
    try:
        tokens = [client.submit_by_name("cluster_tasks:add", (i, 1)) for i in range(calls)]
        failing = client.submit_by_name("cluster_tasks:boom", ("history",))
        assert [t.get(timeout=15) for t in tokens] == [i + 1 for i in range(calls)]
        with pytest.raises(ValueError):
            failing.get(timeout=15)
    finally:
        client.resume(other)
    return {**{t.token_id: True for t in tokens}, failing.token_id: False}


@pytest.fixture(scope="module")
def ran(shared_cluster: Cluster) -> dict[str, tuple[str, bool]]:
    """Calls that ran on a1 and on a2: token id -> (node, succeeded)."""
    client = shared_cluster.client()
    expected = {tid: ("a1", ok) for tid, ok in _run_on(client, "a1", "a2", 6).items()}
    expected |= {tid: ("a2", ok) for tid, ok in _run_on(client, "a2", "a1", 6).items()}
    return expected


def test_history_writes_one_file_with_every_nodes_records(shared_cluster, ran, tmp_path):
    out = cli(shared_cluster, "history", "--out", str(tmp_path / "dumps"))
    assert out.returncode == 0, out.stderr
    path = out.stdout.splitlines()[0]
    assert path.startswith(str(tmp_path / "dumps" / "cluster_history_")) and path.endswith(".json")
    assert [p.name for p in (tmp_path / "dumps").iterdir()] == [path.rpartition("/")[2]]
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    assert {n["node"] for n in document["nodes"] if n["answered"]} == {"a1", "a2"}
    records = {r["token_id"]: r for r in document["records"]}
    assert set(ran) <= set(records)
    for token_id, (node, ok) in ran.items():
        record = records[token_id]
        assert SEED_FIELDS <= set(record)
        assert (record["node"], record["success"], record["attempt"]) == (node, ok, 1)
        assert record["operation_type"] in ("add", "boom")
        assert record["core_id"] >= 1 and record["worker_id"].startswith("worker_")
        assert record["execution_time"] >= 0 and record["complexity_score"] >= 0
    one = cli(shared_cluster, "history", "--out", str(tmp_path / "one"), "--node", "a2",
              "--limit", "3")
    assert one.returncode == 0, one.stderr
    limited = json.loads(Path(one.stdout.splitlines()[0]).read_text(encoding="utf-8"))
    assert limited["count"] == 3 and {r["node"] for r in limited["records"]} == {"a2"}


def test_history_of_an_unknown_node_is_refused(shared_cluster, tmp_path):
    out = cli(shared_cluster, "history", "--out", str(tmp_path), "--node", "nobody")
    assert out.returncode == 2 and "BadRequest" in out.stderr and "nobody" in out.stderr


def test_guards_report_prints_the_seeds_classes_for_the_cluster(shared_cluster, ran):
    def reported() -> str | None:
        text = cli(shared_cluster, "guards", "report").stdout
        return text if "(0/2)" in text else None  # both nodes' boom counted
    text = wait_until(reported, 20, "both nodes' guard snapshots in the report")
    lines = text.splitlines()
    assert "GUARD HOUSE REPORT (cluster, 2 nodes)" in lines
    assert "Mode: passive on every node" in lines
    excellent = lines.index("EXCELLENT PERFORMERS (>95% success):")
    assert any(line.startswith("add ") for line in lines[excellent:excellent + 4])
    poor = lines.index("POOR PERFORMERS (<=50% success):")
    assert lines[poor + 2].startswith("boom ")


def test_agent_logs_the_start_up_banner(shared_cluster):
    log = shared_cluster.log("a1")
    banner = [line.partition("tokengate.node_agent.runtime: ")[2] for line in log.splitlines()
              if " INFO tokengate.node_agent.runtime: " in line]
    assert "TokenGate node a1" in banner
    for expected in ("Recommended worker counts:", "Overflow guard budget: 75 MB",
                     "Guard House: passive monitoring (auto-blocking DISABLED, observation only)",
                     "  Heavy: [1, 2] (preferred: 1)", "Core-worker mapping:",
                     "  Core 1: Workers [0, 1]", "  Core 2: Workers [2, 3]"):
        assert expected in banner, expected
