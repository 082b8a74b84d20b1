"""Helpers of the defect 7-12 tests: clusters whose agents load ``faults2_tasks``, raw gRPC
sessions and agent links (the wire a client in any language sees), side-effect counts, Redis
reads of the stable layout, and test certificates.

Built on the shared :class:`conftest.Cluster` (a real gateway and real agents as processes,
a Redis prefix of their own); nothing here replaces a part of the system under test.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import msgpack
import pytest
import redis
from conftest import TOKEN, Cluster, wait_until
from tokengate.shared import codec
from tokengate.shared.channel import CHANNEL_OPTIONS
from tokengate.shared.redis_server import child_env
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.rpc import tokengate_pb2_grpc as rpc

from tokengate.cli_up import role_command

TASKS = "faults2_tasks"
CLIENT_KEY = "tokengate-client"  # the contract's metadata naming a session's client id


# -- clusters ----------------------------------------------------------------------------------


class F2Cluster(Cluster):
    """A conftest Cluster whose agents load ``faults2_tasks``, each with options of its own."""

    def __init__(self, redis_url: str, tmp: Path, **options: Any) -> None:
        super().__init__(redis_url, tmp, **options)
        self.base_agent_options = self.agent_options
        self._redis: redis.Redis | None = None

    def add_agent(self, name: str, *options: str, wait: bool = True) -> None:
        self.agent_options = (*self.base_agent_options, "--include", TASKS, *options)
        try:
            self.start_agent(name, wait=wait)
        finally:
            self.agent_options = self.base_agent_options

    def spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None,
              ) -> subprocess.Popen[bytes]:
        """Any other process of the cluster (a second gateway, a misconfigured agent), with
        output in ``<tmp>/<name>.log``; stopped with the cluster."""
        with open(self.tmp / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(cmd, env=child_env(env or self.env), stdout=log,
                                    stderr=subprocess.STDOUT, cwd=str(self.tmp))
        self.agents[name] = proc  # Cluster.stop() ends every process it lists
        return proc

    def gateway_command(self, address: str, *options: str) -> list[str]:
        from conftest import HEARTBEAT_TIMEOUT

        return role_command("gateway", "--listen", address, "--redis", self.redis_url,
                            "--heartbeat-timeout", str(HEARTBEAT_TIMEOUT), *options)

    def node(self, name: str) -> pb.NodeStatus | None:
        """The raw NodeStatus of one agent (fields the contract adds included)."""
        for node in self.status_reply().nodes:
            if node.name == name:
                return node
        return None

    def status_reply(self) -> pb.StatusReply:
        admin = self.clients[0] if self.clients else self.client(connect=False)
        return admin.status()

    def redis(self) -> redis.Redis:
        """One Redis client for the test's own reads of the stable key layout."""
        if self._redis is None:
            self._redis = redis.Redis.from_url(self.redis_url)
        return self._redis

    def stop(self) -> None:
        super().stop()
        if self._redis is not None:
            self._redis.close()


def f2_clusters(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., F2Cluster]]:
    """The body of each test module's ``f2_cluster`` fixture: yields
    ``make(agents={"a1": ("--cores", "2")}, gateway_options=(), env={})``, which starts a
    gateway and those agents (all UP); every process stops at teardown."""
    made: list[F2Cluster] = []

    def make(agents: dict[str, tuple[str, ...]] | None = None, *,
             gateway_options: tuple[str, ...] = (), env: dict[str, str] | None = None,
             ) -> F2Cluster:
        cluster = F2Cluster(redis_url, tmp_path, gateway_options=gateway_options)
        cluster.env.update(env or {})
        made.append(cluster)
        cluster.start_gateway()
        agents = {"a1": ("--cores", "2")} if agents is None else agents
        for name, options in agents.items():
            cluster.add_agent(name, *options, wait=False)
        names = tuple(agents)
        if names:
            cluster.wait_nodes(lambda nodes: all(nodes.get(n) == "UP" for n in names),
                               f"agents {names} up")
        return cluster

    yield make
    for cluster in made:
        cluster.stop()


# -- side effects and gates --------------------------------------------------------------------


class Runs:
    """A gate file and a side-effect log: every execution of a faults2 task adds one line."""

    def __init__(self, tmp: Path, name: str = "runs") -> None:
        self.gate = tmp / f"{name}.gate"
        self.log = tmp / f"{name}.runs"

    def open_gate(self) -> None:
        self.gate.touch()

    def counts(self) -> Counter[str]:
        if not self.log.exists():
            return Counter()
        return Counter(self.log.read_text().split())

    def total(self) -> int:
        return sum(self.counts().values())

    def args(self, tag: object) -> tuple[str, str, object]:
        return (str(self.gate), str(self.log), tag)


def token_state(client: redis.Redis, prefix: str, token_id: str) -> str:
    value = client.hget(f"{prefix}t:{token_id}", "s")
    return value.decode() if value else ""


def inflight_ids(client: redis.Redis, prefix: str, agent: str) -> set[str]:
    return {m.decode() for m in client.smembers(f"{prefix}inflight:{agent}")}


def snapshot_of(node: pb.NodeStatus | None) -> dict[str, Any]:
    if node is None or not node.snapshot:
        return {}
    return msgpack.unpackb(node.snapshot, strict_map_key=False)


def topology_of(node: pb.NodeStatus | None) -> dict[str, Any]:
    if node is None or not node.topology:
        return {}
    return msgpack.unpackb(node.topology, strict_map_key=False)


# -- raw gRPC peers ----------------------------------------------------------------------------


def metadata(token: str = TOKEN, client_id: str | None = None) -> list[tuple[str, str]]:
    md = [("authorization", f"Bearer {token}")]
    if client_id:
        md.append((CLIENT_KEY, client_id))
    return md


def task_item(task: str, args: tuple[Any, ...], token_id: str | None = None,
              weight: str = "light") -> pb.TaskItem:
    return pb.TaskItem(token_id=token_id or uuid.uuid4().hex, task=f"{TASKS}:{task}",
                       payload=codec.encode_call(args, {}), codec=pb.MSGPACK, weight=weight,
                       operation_type=task)


class RawSession:
    """A client session spoken directly on the wire: frames in, replies out.

    With ``read=False`` nothing reads the replies until :meth:`start_reading`: gRPC then
    stops taking them once its flow-control window is full (a client that never reads).
    """

    def __init__(self, address: str, *, token: str = TOKEN, client_id: str | None = None,
                 read: bool = True) -> None:
        self.channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        self._requests: queue.SimpleQueue[pb.ClientFrame | None] = queue.SimpleQueue()
        self.replies: queue.SimpleQueue[pb.ClientReply] = queue.SimpleQueue()
        self.error: grpc.RpcError | None = None
        self.ended = threading.Event()
        self.call = rpc.GatewayStub(self.channel).Session(
            iter(self._requests.get, None), metadata=metadata(token, client_id))
        self._reader: threading.Thread | None = None
        if read:
            self.start_reading()

    def send(self, frame: pb.ClientFrame) -> None:
        self._requests.put(frame)

    def start_reading(self) -> None:
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for reply in self.call:
                self.replies.put(reply)
        except grpc.RpcError as exc:
            self.error = exc
        finally:
            self.ended.set()

    def collect(self, done: Callable[[list[pb.ClientReply]], bool], timeout: float,
                ) -> list[pb.ClientReply]:
        """Replies until ``done(replies)`` holds, the stream ends, or ``timeout`` passes."""
        got: list[pb.ClientReply] = []
        deadline = time.monotonic() + timeout
        while not done(got):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                got.append(self.replies.get(timeout=min(left, 0.1)))
            except queue.Empty:
                if self.ended.is_set() and self.replies.empty():
                    break
        return got

    def close(self) -> None:
        self._requests.put(None)
        self.call.cancel()
        self.channel.close()


def rejected(replies: list[pb.ClientReply]) -> list[pb.Rejected]:
    return [rej for reply in replies for rej in reply.rejected]


def results(replies: list[pb.ClientReply]) -> list[pb.ResultItem]:
    return [res for reply in replies for res in reply.results]


def accepted(replies: list[pb.ClientReply]) -> list[str]:
    return [token_id for reply in replies for token_id in reply.accepted]


class RawAgent:
    """An agent link spoken directly on the wire: a hello, then heartbeats, and it never
    reads what the gateway sends it (an agent whose link thread is stuck)."""

    def __init__(self, address: str, name: str, credits: dict[str, int], tasks: list[str],
                 *, heartbeat: float = 0.2) -> None:
        self.channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        self.stop = threading.Event()
        hello = pb.AgentFrame(
            hello=pb.Hello(name=name, incarnation=uuid.uuid4().hex, host="raw-agent",
                           pid=os.getpid(), tasks=tasks,
                           topology=msgpack.packb({"workers": 1, "mailbox_capacity": 1}),
                           task_info=[pb.TaskInfo(name=t, weight="light", idempotent=True)
                                      for t in tasks]),
            credits=[pb.Credit(weight=w, count=n) for w, n in credits.items()])

        def frames() -> Iterator[pb.AgentFrame]:
            yield hello
            while not self.stop.wait(heartbeat):
                yield pb.AgentFrame()

        self.call = rpc.GatewayStub(self.channel).AgentLink(frames(), metadata=metadata())

    def close(self) -> None:
        self.stop.set()
        self.call.cancel()
        self.channel.close()


# -- processes and certificates ----------------------------------------------------------------


def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """The exit code, or None if still running after ``timeout`` seconds."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        return proc.wait(timeout)
    return None


def make_certificate(directory: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True)
    return cert, key


__all__ = ["TOKEN", "F2Cluster", "RawAgent", "RawSession", "Runs", "accepted", "f2_clusters",
           "inflight_ids", "make_certificate", "metadata", "rejected", "results",
           "snapshot_of", "task_item", "token_state", "topology_of", "wait_exit", "wait_until"]
