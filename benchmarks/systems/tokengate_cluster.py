"""TokenGate cluster, all local: the run's redis-server, a gateway and two agents pinned to
disjoint CPUs (their defaults: one core each x 4 workers, 8 slots), the client in this process
through ``tokengate.connect``.
"""

from __future__ import annotations

from typing import Any

from benchmarks import cluster_bench_tasks
from benchmarks.local_cluster import LocalCluster
from benchmarks.systems.base import Context
from benchmarks.systems.local import TokenTasks

AGENTS = 2
WORKERS_PER_AGENT = 4  # the scheduler's default on one core


class ClusterSystem(TokenTasks):
    name = "tokengate-cluster"
    uses_redis = True
    tasks = cluster_bench_tasks

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.cluster: LocalCluster | None = None

    def start(self) -> None:
        self.cluster = LocalCluster(
            agents=AGENTS, includes=("benchmarks.cluster_bench_tasks", "tokengate.workloads"),
            redis_url=self.context.redis_db(0), redis_pid=self.context.redis_pid,
            logdir=self.context.logdir or None)
        self.slots = AGENTS * WORKERS_PER_AGENT
        try:
            self.cluster.start()
        finally:
            for name, pid in self.cluster.pids().items():
                self.procs.add(name, pid)

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None

    def version(self) -> str:
        from importlib.metadata import version

        return f"tokengate {version('tokengate')}"

    def setup(self) -> str:
        return (f"redis-server, `tokengate gateway`, {AGENTS} `tokengate agent --cpus N` (one "
                f"CPU each, {WORKERS_PER_AGENT} workers: the defaults); the client "
                "through `tokengate.connect`; W3 runs on the agents' threads (one process per "
                "CPU)")

    def warm_cpu(self) -> None:
        for handle in [self.spin(1_000) for _ in range(4)]:
            self.result(handle, 120)

    def abandon(self, handles: Any) -> None:
        """Nothing per token: closing the client fails what is left, and stopping the agents
        drops what they hold (one ``kill`` RPC per token would take longer than the flood)."""
