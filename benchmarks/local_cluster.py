"""A whole TokenGate cluster on this machine, for the benchmarks.

A real redis-server (started here, or one the caller already runs), a ``tokengate gateway``
and N ``tokengate agent`` processes pinned to disjoint CPUs, each started as ``tokengate up``
starts them; the client connects through ``tokengate.connect``. Used by
``benchmarks/cluster_bench.py``, ``benchmarks/fairness_bench.py`` (a cluster per mode, its
gateway's ``--fair-depth`` passed with ``gateway_options``) and the harness's
``tokengate-cluster`` system.

Owner: the thread that made it; ``close()`` stops every child it started, in a ``finally``.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tokengate.shared.client import ClusterClient
from tokengate.shared.errors import GatewayUnavailable
from tokengate.shared.redis_server import RedisServer, child_env, free_port
from tokengate.shared.status import describe

import tokengate
from tokengate.cli_up import role_command, split_cpus

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TOKEN = "bench-token-0123456789abcdef"
READY_TIMEOUT = 30.0


class LocalCluster:
    """Redis + gateway + ``agents`` agents + a connected client, all local."""

    def __init__(self, *, agents: int = 2, includes: Sequence[str] = ("cluster_bench_tasks",),
                 redis_url: str | None = None, redis_pid: int | None = None,
                 workers_per_core: int | None = None, pythonpath: Sequence[str] = (),
                 logdir: str | None = None, agent_options: Sequence[str] = (),
                 pin: bool = True, ready_timeout: float = READY_TIMEOUT,
                 env: dict[str, str] | None = None, gateway_options: Sequence[str] = ()) -> None:
        self.agents = agents
        self.agent_options = tuple(agent_options)  # extra flags of every agent
        self.gateway_options = tuple(gateway_options)  # extra flags of the gateway
        self.pin = pin  # agents on disjoint CPUs when there are enough of them
        self.ready_timeout = ready_timeout
        self.env = dict(env or {})  # extra variables of every child (TOKENGATE_* settings)
        self.includes = ",".join(includes)
        self.workers_per_core = workers_per_core
        self.own_redis = RedisServer() if redis_url is None else None
        self.redis_url = redis_url or ""
        self.redis_pid = redis_pid
        self.logdir = Path(logdir or tempfile.mkdtemp(prefix="tokengate-bench-"))
        self.pythonpath = os.pathsep.join([str(ROOT), *pythonpath])
        self.address = ""
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.client: ClusterClient | None = None

    def start(self) -> LocalCluster:
        if self.own_redis is not None:
            self.own_redis.start()
            self.redis_url = self.own_redis.url
            self.redis_pid = self.own_redis.process.pid  # type: ignore[union-attr]
        self.address = f"127.0.0.1:{free_port()}"
        env = self.environment()
        self.procs["gateway"] = self._spawn("gateway", env, "--listen", self.address,
                                            "--redis", self.redis_url, *self.gateway_options)
        cpu_sets = split_cpus(sorted(os.sched_getaffinity(0)), self.agents) if self.pin else []
        for i in range(1, self.agents + 1):
            options = ["--gateway", self.address, "--name", f"bench{i}",
                       "--include", self.includes]
            if cpu_sets:
                options += ["--cpus", cpu_sets[i - 1]]
            if self.workers_per_core:
                options += ["--workers-per-core", str(self.workers_per_core)]
            options += self.agent_options
            self.procs[f"agent{i}"] = self._spawn("agent", env, *options, name=f"agent{i}")
        self.client = tokengate.connect(self.address, token=TOKEN,
                                        connect_timeout=self.ready_timeout)
        self._wait_agents()
        return self

    def environment(self) -> dict[str, str]:
        """The environment of the cluster's processes (and of any other the caller starts
        against it): its token, its settings, and the benchmarks' modules on the path."""
        return dict(os.environ, **self.env, TOKENGATE_TOKEN=TOKEN, PYTHONPATH=self.pythonpath)

    def _spawn(self, role: str, env: dict[str, str], *args: str,
               name: str | None = None) -> subprocess.Popen[bytes]:
        with open(self.logdir / f"{name or role}.log", "wb") as log:
            return subprocess.Popen(role_command(role, *args), env=child_env(env), stdout=log,
                                    stderr=subprocess.STDOUT)

    def _wait_agents(self) -> None:
        assert self.client is not None
        deadline = time.monotonic() + self.ready_timeout
        while len(describe(self.client.status())["nodes"]) < self.agents:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise GatewayUnavailable(f"{name} exited with code {proc.returncode}; "
                                             f"logs in {self.logdir}")
            if time.monotonic() > deadline:
                raise GatewayUnavailable(f"agents did not register; logs in {self.logdir}")
            time.sleep(0.05)  # polling the gateway's registry: no event to wait on

    def pids(self) -> dict[str, int]:
        """Every process of the cluster by role (the client is the caller's own)."""
        out = {name: proc.pid for name, proc in self.procs.items()}
        if self.redis_pid:
            out["redis"] = self.redis_pid
        return out

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.procs.clear()
        if self.own_redis is not None:
            self.own_redis.stop()

    def __enter__(self) -> LocalCluster:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()
