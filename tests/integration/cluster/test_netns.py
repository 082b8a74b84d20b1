"""Hosts of their own: agents in network namespaces of their own, reaching a gateway on a
bridge address over TLS; one agent's cable pulled under load (its process untouched) and
put back.

Skipped where network namespaces cannot be made (not root, no ``ip``): see :mod:`netns`.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cluster_tasks  # noqa: F401 - registers the tasks
import netns
import pytest
from conftest import HEARTBEAT_TIMEOUT, Cluster, wait_until
from tokengate.shared.channel import TlsConfig
from tokengate.shared.client import ClusterClient
from tokengate.shared.errors import AgentLost

logger = logging.getLogger(__name__)

KEEPALIVE = 2.0  # seconds: TOKENGATE_KEEPALIVE and _TIMEOUT of the gateway and the agents
DEAD_PEER_BOUND = KEEPALIVE + KEEPALIVE + 3.0  # interval + timeout, and slack for a busy CPU


@pytest.fixture
def network() -> Iterator[netns.Network]:
    reason = netns.unavailable() or (None if shutil.which("ss") else "ss (iproute2) is needed")
    if reason:
        pytest.skip(reason)
    with netns.Network() as net:
        yield net


def _certificate(folder: Path, address: str) -> tuple[str, str]:
    """A self-signed server certificate for ``address`` (an IP in subjectAltName)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = folder / "gateway.pem", folder / "gateway.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=tokengate-gateway",
         "-addext", f"subjectAltName=IP:{address}"], check=True, capture_output=True)
    return str(cert), str(key)


class HostsCluster(Cluster):
    """The gateway on the bridge's address in the root namespace, TLS on; each agent in a
    namespace of its own; clients (this process) in the root namespace."""

    def __init__(self, redis_url: str, tmp: Path, network: netns.Network) -> None:
        self.cert, key = _certificate(tmp, network.gateway_ip)
        super().__init__(redis_url, tmp, gateway_options=("--tls-cert", self.cert,
                                                          "--tls-key", key),
                         agent_options=("--cores", "2", "--workers-per-core", "2",
                                        "--mailbox-capacity", "10", "--tls-ca", self.cert))
        self.address = f"{network.gateway_ip}:{self.port}"
        self.env.update(TOKENGATE_KEEPALIVE=str(KEEPALIVE),
                        TOKENGATE_KEEPALIVE_TIMEOUT=str(KEEPALIVE))
        self.network = network
        self.hosts: dict[str, netns.Host] = {}

    def start_agent(self, name: str, wait: bool = True, **options: Any) -> None:
        self.hosts[name] = self.network.add()
        super().start_agent(name, wait, **options)

    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        host = self.hosts.get(name)
        return super()._spawn(name, host.command(cmd) if host else cmd)

    def client(self, **options: Any) -> ClusterClient:
        options.setdefault("tls", TlsConfig(ca=self.cert))
        return super().client(**options)

    def gateway_links(self, name: str) -> int:
        """Established TCP connections between the gateway and agent ``name``'s host."""
        out = subprocess.run(["ss", "-tnH", "state", "established", "dst",
                              self.hosts[name].address], capture_output=True, text=True,
                             check=True, timeout=10).stdout
        return len(out.splitlines())


@pytest.fixture
def hosts_cluster(network, redis_url, tmp_path) -> Iterator[HostsCluster]:
    cluster = HostsCluster(redis_url, tmp_path, network)
    try:
        cluster.start_gateway()
        cluster.start_agent("a1", wait=False)
        cluster.start_agent("a2", wait=False)
        cluster.wait_nodes(lambda n: n.get("a1") == "UP" and n.get("a2") == "UP", "agents up")
        yield cluster
    finally:
        cluster.stop()  # before the network goes (the fixture above this one)


def _submit(client, effects, tag: str, n: int, seconds: float = 0.0, once: int = 0) -> list:
    """``n`` recorded calls keyed ``tag<i>``; the first ``once`` must never run twice."""
    return [client.submit_by_name(
        "cluster_tasks:record_once" if i < once else "cluster_tasks:record",
        (str(effects), f"{tag}{i}", seconds)) for i in range(n)]


def _runs(effects, key: str, pids: dict[str, int]) -> dict[str, int]:
    """Runs of ``key`` per agent name, from its side effect."""
    names = {pid: name for name, pid in pids.items()}
    counts: dict[str, int] = {}
    for pid in effects.pids(key):
        counts[names[pid]] = counts.get(names[pid], 0) + 1
    return counts


def test_agents_on_hosts_of_their_own_survive_a_pulled_cable(hosts_cluster, effects):
    cluster = hosts_cluster
    client = cluster.client()
    pids = {name: proc.pid for name, proc in cluster.agents.items()}

    # Calls from the root namespace run on both agents, over TLS, across the bridge.
    warm = _submit(client, effects, "warm", 120, seconds=0.01)
    assert [t.get(timeout=30) for t in warm] == [f"warm{i}" for i in range(120)]
    assert {t.node for t in warm} == {"a1", "a2"}
    assert all(_runs(effects, f"warm{i}", pids) == {t.node: 1} for i, t in enumerate(warm))

    # Under load, a1's cable is pulled: its process runs on, but no packet gets through.
    load = _submit(client, effects, "load", 400, seconds=0.02, once=8)
    wait_until(lambda: len(cluster.redis.inflight("a1")) > 10, what="a1 holding work")
    assert cluster.gateway_links("a1") == 1
    link_lost = cluster.log("a1").count("link to gateway")  # the agent's "link ... lost"
    cut_at = time.monotonic()
    cluster.hosts["a1"].cut()

    cluster.wait_nodes(lambda n: "a1" not in n, "a1 declared lost", timeout=HEARTBEAT_TIMEOUT + 10)
    lost_after = time.monotonic() - cut_at
    outcomes: dict[int, Any] = {}
    for i, token in enumerate(load):
        try:
            outcomes[i] = token.get(timeout=40)
        except AgentLost as exc:
            outcomes[i] = exc
    for i, token in enumerate(load):
        runs = _runs(effects, f"load{i}", pids)
        if isinstance(outcomes[i], AgentLost):  # only a never-twice call, held by a1
            assert i < 8 and "a1" in str(outcomes[i]) and runs.get("a2", 0) == 0, (i, runs)
            continue
        assert outcomes[i] == f"load{i}" and runs.get(token.node) == 1, (i, token.node, runs)
        if token.attempt == 1:
            assert sum(runs.values()) == 1, (i, runs)  # exactly once
        else:  # requeued from the lost agent: at most its one run there before, once on a2
            assert token.node == "a2" and i >= 8 and runs.get("a1", 0) <= 1, (i, runs)
    requeued = [t for t in load if t.attempt > 1]
    assert requeued, "a1 held work when its cable was pulled: some ran again on a2"

    # Both ends noticed the dead peer in bounded time, with the cable still out: the
    # agent's stream failed (it reconnects), and the gateway dropped its TCP connection.
    wait_until(lambda: cluster.log("a1").count("link to gateway") > link_lost, DEAD_PEER_BOUND,
               "a1 noticing its link is dead")
    wait_until(lambda: cluster.gateway_links("a1") == 0,
               HEARTBEAT_TIMEOUT + DEAD_PEER_BOUND, "the gateway dropping a1's connection")
    dead_after = time.monotonic() - cut_at
    logger.info("cable out: a1 lost after %.1fs, dead peer noticed by both ends after %.1fs; "
                "%d of 400 calls requeued, %d never-twice calls failed AgentLost", lost_after,
                dead_after, len(requeued), sum(isinstance(o, AgentLost) for o in outcomes.values()))

    # The cable goes back: the same process reconnects, rejoins, and gets work again.
    cluster.hosts["a1"].mend()
    cluster.wait_nodes(lambda n: n.get("a1") == "UP", "a1 back", timeout=20)
    assert cluster.agents["a1"].poll() is None, "the same process, not a restart"
    assert cluster.log("a1").count("registered with gateway") == 2
    after = _submit(client, effects, "after", 160, seconds=0.01)
    assert [t.get(timeout=30) for t in after] == [f"after{i}" for i in range(160)]
    assert {t.node for t in after} == {"a1", "a2"}
    assert all(_runs(effects, f"after{i}", pids) == {t.node: 1} for i, t in enumerate(after))
    info = cluster.status()
    assert info["inflight"] == 0 and sum(info["pending"].values()) == 0, "nothing stuck"
    # A gateway whose loop was held up (a busy machine) gives every agent a full timeout
    # afresh before judging it, so the bound on loss allows for one such restart.
    assert lost_after < 2 * HEARTBEAT_TIMEOUT + 5, lost_after
    assert "Traceback" not in cluster.log("gateway"), "a link ended by the gateway is no error"
