"""Guard settings, decorator options, sharded metrics and the status panels (no scheduler)."""

from __future__ import annotations

import threading

import pytest
from tokengate.node_agent.guards.history import ExecutionHistory, ExecutionRecord
from tokengate.node_agent.guards.metrics import SchedulerMetrics
from tokengate.node_agent.guards.observer import Guards
from tokengate.node_agent.guards.options import make_options
from tokengate.node_agent.guards.settings import GuardsConfig
from tokengate.node_agent.guards.status import build_status
from tokengate.shared.errors import ConfigurationError

from tokengate import OperationsCoordinator


def test_guards_config_from_env_and_validation():
    cfg = GuardsConfig.from_env({"TOKENGATE_AUTO_BLOCK": "yes", "TOKENGATE_METRICS_PORT": "0",
                                 "TOKENGATE_SPIKE_THRESHOLD": "2.5"}, history_size=7)
    assert (cfg.auto_block, cfg.metrics_port, cfg.spike_threshold) == (True, 0, 2.5)
    assert cfg.history_size == 7 and cfg.metrics_port == 0
    assert GuardsConfig.from_env({"TOKENGATE_METRICS_PORT": "none"}).metrics_port is None
    with pytest.raises(ConfigurationError, match="TOKENGATE_AUTO_BLOCK"):
        GuardsConfig.from_env({"TOKENGATE_AUTO_BLOCK": "maybe"})
    with pytest.raises(ConfigurationError, match="failure_threshold"):
        GuardsConfig(failure_threshold=0)


def test_decorator_options():
    assert make_options() is None
    opts = make_options(retries=2, spike_check=False)
    assert opts.retry.max_attempts == 3 and opts.spike_check is False
    with pytest.raises(ConfigurationError, match="spike_check"):
        make_options(spike_check="yes")


def test_coordinator_splits_scheduler_and_guard_options():
    coord = OperationsCoordinator(workers_per_core=1, auto_block=True, memory_budget_bytes=0)
    assert coord.config.workers_per_core == 1
    assert coord.guards.config.auto_block is True and coord.guards.overflow is None
    with pytest.raises(TypeError, match="guards="):
        OperationsCoordinator(guards=GuardsConfig(), auto_block=True)


def _metric_lines(metrics: SchedulerMetrics, prefix: str) -> dict[str, float]:
    lines = {}
    for line in metrics.exposition().decode().splitlines():
        if line.startswith(prefix):
            name, _, value = line.rpartition(" ")
            lines[name] = float(value)
    return lines


def test_sharded_metrics_sum_threads_and_cumulate_buckets():
    metrics = SchedulerMetrics()

    def work(seconds: float) -> None:
        for _ in range(1000):
            metrics.token_finished("op", "completed", seconds)
        metrics.queue_waited(2, seconds)

    threads = [threading.Thread(target=work, args=(s,)) for s in (0.0007, 0.003, 0.3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert metrics.token_count("op", "completed") == 3000
    lines = _metric_lines(metrics, "tokengate_execution_seconds")
    assert lines['tokengate_execution_seconds_bucket{le="0.001",operation="op"}'] == 1000
    assert lines['tokengate_execution_seconds_bucket{le="0.005",operation="op"}'] == 2000
    assert lines['tokengate_execution_seconds_bucket{le="+Inf",operation="op"}'] == 3000
    assert lines['tokengate_execution_seconds_sum{operation="op"}'] == pytest.approx(303.7)
    waits = _metric_lines(metrics, "tokengate_queue_wait_seconds_count")
    assert waits['tokengate_queue_wait_seconds_count{core="2"}'] == 3


def test_status_panels_from_a_scheduler_snapshot():
    guards = Guards(GuardsConfig(history_size=5))
    guards.history.append(ExecutionRecord("t1", "op", True, 0.01, 2, "w", 3.0, 1))
    snapshot = {
        "node": "n1", "state": "running", "uptime": 1.5, "workers": 4, "workers_per_core": 2,
        "topology": {"physical_cores": 2, "logical_cores": 2, "smt_enabled": False},
        "policy": {"heavy": [1, 2]},
        "tokens": {"submitted": 5, "completed": 4, "failed": 1, "waiting": 0, "executing": 0},
        "cores": [{"core": 1, "cpu": 0, "active_mailboxes": 2, "depths": [1, 0],
                   "busy": [1, 0], "routed": {"heavy": 3, "medium": 0, "light": 0}}],
    }
    status = build_status(snapshot, guards)
    assert status["system_status"]["active_patterns"] == {1: 2}
    assert status["token_pool"]["created"] == 5 and status["token_pool"]["failed"] == 1
    core = status["core_affinity"]["cores"][0]
    assert (core["total"], core["queued"], core["executing"]) == (3, 1, 1)
    assert [r["token_id"] for r in status["recent_executions"]] == ["t1"]
    assert status["convergence"] == {"enabled": False}
    assert status["retry_policies"]["trivial"]["max_attempts"] == 4


def test_history_recent_and_capacity():
    history = ExecutionHistory(capacity=2)
    for i in range(3):
        history.append(ExecutionRecord(f"t{i}", "op", True, 0.0, 1, "w", 1.0, 1))
    assert [r.token_id for r in history.recent(5)] == ["t1", "t2"]
    assert history.recent(0) == [] and history.total == 3
