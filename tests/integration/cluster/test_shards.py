"""Shards: several gateways on one Redis or one Redis Cluster, each on a shard of its own,
and the fencing epoch that stops a gateway whose shard another one took."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from conftest import HEARTBEAT_TIMEOUT, TOKEN, Cluster, wait_until
from faultkit import SideEffects, call
from redis_cluster import RedisCluster
from tokengate.gateway.ledger.schema import shard_prefix
from tokengate.shared.client import ClusterClient
from tokengate.shared.client_config import ClientConfig
from tokengate.shared.errors import BadRequest, GatewayUnavailable
from tokengate.shared.status import describe

SHARDS = ("a", "b", "c")  # their hash tags fall on the three masters' slot ranges


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    with RedisCluster(tmp_path / "rc") as cluster:
        yield cluster


def test_three_gateways_spread_one_cluster_over_a_three_master_redis_cluster(
        redis_cluster: RedisCluster, tmp_path: Path) -> None:
    """One TokenGate cluster (one key prefix) with a gateway per shard, on a real Redis
    Cluster of three masters: every script runs there (its keys in one slot), each shard's
    tokens live on the master that owns its slot, and every call completes."""
    key_prefix = f"tg-rc-{uuid.uuid4().hex[:6]}:"
    nodes = redis_cluster.clients()
    owners = {shard: redis_cluster.port_of_slot(int(nodes[0].execute_command(
        "CLUSTER", "KEYSLOT", shard_prefix(key_prefix, shard) + "epoch"))) for shard in SHARDS}
    assert len(set(owners.values())) == 3, "the shards' slots are on three masters"
    gateways: list[Cluster] = []
    try:
        for shard in SHARDS:
            gw = Cluster(redis_cluster.url, tmp_path / shard, shard=shard, key_prefix=key_prefix)
            (tmp_path / shard).mkdir()
            gateways.append(gw)
            gw.start_gateway()
            gw.start_agent(f"agent-{shard}", wait=False)
        for gw in gateways:
            gw.wait_nodes(lambda n, s=gw.shard: n.get(f"agent-{s}") == "UP", "agent up")
        for i, gw in enumerate(gateways):
            client = gw.client()
            tokens = [client.submit_by_name("cluster_tasks:add", (i, k)) for k in range(40)]
            assert [t.get(timeout=30) for t in tokens] == [i + k for k in range(40)]
        for gw in gateways:
            counts = redis.Redis(port=owners[gw.shard]).hgetall(gw.prefix + "counts")
            assert int(counts[b"submitted"]) == 40 and int(counts[b"completed"]) == 40, \
                f"shard {gw.shard}'s bookkeeping is on the master of its slot"
    finally:
        for gw in gateways:
            gw.stop()
        for node in nodes:
            node.close()


def test_a_gateway_paused_while_another_took_its_shard_writes_nothing(
        redis_url: str, tmp_path: Path) -> None:
    """SIGSTOP gateway A past its lease; gateway B starts on the same shard and takes it
    (epoch + 1); a call A's client sent meanwhile reaches A when it wakes (SIGCONT). A must
    not store it: the lease alone let it write until its next renewal; the epoch refuses the
    write (Fenced, so the client offers it elsewhere), and A exits."""
    key_prefix = f"tg-fence-{uuid.uuid4().hex[:6]}:"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = Cluster(redis_url, tmp_path / "a", key_prefix=key_prefix)
    second = Cluster(redis_url, tmp_path / "b", key_prefix=key_prefix)
    try:
        first.start_gateway()
        session = first.raw_session()
        session.submit([call("before", "cluster_tasks:noop")])
        wait_until(lambda: first.redis.state("before") == "waiting", 10, "stored")
        assert first.gateway is not None
        first.gateway.send_signal(signal.SIGSTOP)
        second.start_gateway()  # takes the shard once A's lease lapsed (3 s)
        session.submit([call("after", "cluster_tasks:noop")])
        first.gateway.send_signal(signal.SIGCONT)
        session.wait(lambda: bool(session.rejected.get("after")), 15, "the refusal")
        assert session.rejected["after"][0].error_type == "Fenced"
        assert first.gateway.wait(15) != 0, "the fenced gateway stops"
        assert second.redis.state("after") is None, "nothing of A's reached Redis"
        assert second.redis.state("before") == "waiting", "what A stored before stays"
        assert second.client().submit_by_name("cluster_tasks:add", (1, 2)).token_id
    finally:
        for cluster in (first, second):
            if cluster.gateway is not None and cluster.gateway.poll() is None:
                cluster.gateway.send_signal(signal.SIGCONT)
            try:
                cluster.stop()
            except subprocess.TimeoutExpired:
                pass


def _client_on(first: str, other: str) -> ClusterClient:
    client = ClusterClient(ClientConfig(address=f"{first},{other}", token=TOKEN, spread=False))
    return client.connect()


def test_sigkill_one_of_two_gateways_under_load(redis_url: str, tmp_path: Path,
                                               effects: SideEffects) -> None:
    """Two gateways, active at once on shards a and b of one cluster, an agent and a client
    on each. SIGKILL gateway a under load: its agent and its client move to gateway b (their
    second address) within two heartbeat timeouts, b adopts shard a (raising its epoch),
    and every call of both clients completes, each run exactly once (no agent was lost).
    Gateway a started again takes its shard back from b, and its agent and client return."""
    key_prefix = f"tg-2gw-{uuid.uuid4().hex[:6]}:"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    gw_a = Cluster(redis_url, tmp_path / "a", shard="a", key_prefix=key_prefix)
    gw_b = Cluster(redis_url, tmp_path / "b", shard="b", key_prefix=key_prefix)
    clients: list[ClusterClient] = []
    try:
        for gw in (gw_a, gw_b):
            gw.start_gateway()
        gw_a.start_agent("agent-a", gateway=f"{gw_a.address},{gw_b.address}")
        gw_b.start_agent("agent-b", gateway=f"{gw_b.address},{gw_a.address}")
        clients = [_client_on(gw_a.address, gw_b.address), _client_on(gw_b.address, gw_a.address)]
        assert [c.shard for c in clients] == ["a", "b"]
        tokens = {f"{side}{i}": client.submit_by_name(
                      "cluster_tasks:record", (str(effects), f"{side}{i}", 0.01))
                  for side, client in zip("ab", clients, strict=True) for i in range(150)}
        wait_until(lambda: effects.counts() and sum(effects.counts().values()) >= 60, 30,
                   "work under way")
        killed_at = time.monotonic()
        gw_a.kill(gw_a.gateway)
        wait_until(lambda: clients[0].connected.is_set() and
                   clients[0].address == gw_b.address, 15, "client a on gateway b")
        moved = {n["name"]: n["state"] for n in describe(clients[0].status())["nodes"]}
        wait_until(lambda: {n["name"]: n["state"] for n in describe(clients[0].status())[
            "nodes"]}.get("agent-a") == "UP", 15, "agent a on gateway b, shard a")
        took = time.monotonic() - killed_at
        assert took < 2 * HEARTBEAT_TIMEOUT, f"moved in {took:.1f}s ({moved})"
        assert {k: t.get(timeout=60) for k, t in tokens.items()} == {k: k for k in tokens}
        assert effects.twice() == {}, "no call ran twice"
        assert set(effects.counts()) == set(tokens), "every call ran"
        epoch = gw_b.redis.client.get(shard_prefix(key_prefix, "a") + "epoch")
        assert epoch is not None and epoch.startswith(b"2:"), "b raised shard a's epoch"

        # Gateway a again: b gives shard a back, and its agent and client go home.
        gw_a.start_gateway()
        wait_until(lambda: clients[0].connected.is_set() and
                   clients[0].address == gw_a.address, 20, "client a back on gateway a")
        gw_a.wait_nodes(lambda n: n.get("agent-a") == "UP", "agent a back on gateway a")
        epoch = gw_b.redis.client.get(shard_prefix(key_prefix, "a") + "epoch")
        assert epoch is not None and epoch.startswith(b"3:"), "a took its shard back"
        more = {f"c{i}": clients[0].submit_by_name(
                    "cluster_tasks:record", (str(effects), f"c{i}", 0.0)) for i in range(50)}
        assert {k: t.get(timeout=30) for k, t in more.items()} == {k: k for k in more}
        assert effects.twice() == {}, "no call ran twice"
    finally:
        for client in clients:
            client.close()
        for gw in (gw_a, gw_b):
            gw.stop()


def test_a_dead_gateways_waiting_calls_are_not_left_behind(redis_url: str,
                                                          tmp_path: Path) -> None:
    """Gateway a dies with calls waiting in its shard (no agent serves them) and nobody of
    shard a comes to gateway b (one address each). Gateway b finds shard a without a gateway
    (the cluster's shard directory) and adopts it: the calls fail visibly after its
    placement timeout instead of waiting for a gateway that may never return."""
    key_prefix = f"tg-orphan-{uuid.uuid4().hex[:6]}:"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    options = ("--placement-timeout", "2")
    gw_a = Cluster(redis_url, tmp_path / "a", shard="a", key_prefix=key_prefix,
                   gateway_options=options)
    gw_b = Cluster(redis_url, tmp_path / "b", shard="b", key_prefix=key_prefix,
                   gateway_options=options)
    try:
        gw_b.start_gateway()
        gw_b.start_agent("agent-b")
        gw_a.start_gateway()
        session = gw_a.raw_session()
        ids = [f"w{i}" for i in range(20)]
        session.submit([call(i, "cluster_tasks:heavy_where") for i in ids])
        session.wait(lambda: len(session.accepted) == len(ids), 15, "stored")
        gw_a.kill(gw_a.gateway)
        wait_until(lambda: all(gw_a.redis.state(i) == "failed" for i in ids), 30,
                   "shard a's waiting calls failed visibly on gateway b")
        assert "adopted shard 'a'" in gw_b.log("gateway")
    finally:
        for gw in (gw_a, gw_b):
            gw.stop()


def test_a_cluster_drain_reaches_every_gateway(redis_url: str, tmp_path: Path) -> None:
    """Drain the cluster through gateway a: gateway b's shard drains too (calls through b
    wait), and a resume through b releases both."""
    key_prefix = f"tg-drain-{uuid.uuid4().hex[:6]}:"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    gw_a = Cluster(redis_url, tmp_path / "a", shard="a", key_prefix=key_prefix)
    gw_b = Cluster(redis_url, tmp_path / "b", shard="b", key_prefix=key_prefix)
    try:
        for gw in (gw_a, gw_b):
            gw.start_gateway()
            gw.start_agent(f"agent-{gw.shard}")
        gw_a.client(connect=False).drain(reason="maintenance")
        for gw in (gw_a, gw_b):
            wait_until(lambda gw=gw: gw.status()["reason"] == "maintenance", 15,
                       f"shard {gw.shard} draining")
        client_b = gw_b.client()
        waiting = client_b.submit_by_name("cluster_tasks:add", (1, 2))
        wait_until(lambda: sum(gw_b.status()["pending"].values()) >= 1, 10,
                   "the call waits in shard b")
        gw_b.client(connect=False).resume()
        assert waiting.get(timeout=20) == 3
        for gw in (gw_a, gw_b):
            wait_until(lambda gw=gw: gw.status()["reason"] == "", 15,
                       f"shard {gw.shard} resumed")
    finally:
        for gw in (gw_a, gw_b):
            gw.stop()


def test_kill_and_detail_find_a_token_in_another_gateways_shard(redis_url: str,
                                                                tmp_path: Path) -> None:
    """A token lives in its client's shard; an operator asking gateway b about a token of
    shard a is answered UNAVAILABLE ("served by another gateway"), and a client given both
    addresses goes on to gateway a, which answers."""
    key_prefix = f"tg-kill-{uuid.uuid4().hex[:6]}:"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    gw_a = Cluster(redis_url, tmp_path / "a", shard="a", key_prefix=key_prefix)
    gw_b = Cluster(redis_url, tmp_path / "b", shard="b", key_prefix=key_prefix)
    operator = None
    try:
        for gw in (gw_a, gw_b):
            gw.start_gateway()
        queued = gw_a.client().submit_by_name("cluster_tasks:add", (1, 1))  # no agent: waits
        wait_until(lambda: gw_a.redis.state(queued.token_id) == "waiting", 10, "stored")
        only_b = gw_b.client(connect=False)
        with pytest.raises(GatewayUnavailable, match="another gateway"):
            only_b.token_detail(queued.token_id)
        operator = ClusterClient(ClientConfig(address=f"{gw_b.address},{gw_a.address}",
                                              token=TOKEN, spread=False))  # b first: it does
                                                                          # not hold the token
        assert operator.token_detail(queued.token_id).state == "waiting"
        assert operator.kill(queued.token_id).outcome == "killed"
        assert gw_a.redis.state(queued.token_id) == "killed"
    finally:
        if operator is not None:
            operator.close()
        for gw in (gw_a, gw_b):
            gw.stop()


def test_the_gateway_follows_its_shard_to_a_promoted_replica(
        redis_cluster: RedisCluster, tmp_path: Path, effects: SideEffects) -> None:
    """A Redis Cluster fails over the master of a gateway's shard (CLUSTER FAILOVER on its
    replica: the replica takes the slot, the old master answers MOVED) under load. The
    gateway follows the slot to the new master, and every call runs exactly once."""
    key_prefix = f"tg-rcfo-{uuid.uuid4().hex[:6]}:"
    seed = redis.Redis(port=redis_cluster.servers[0].port)
    slot = int(seed.execute_command("CLUSTER", "KEYSLOT", shard_prefix(key_prefix, "a")))
    seed.close()
    master_port = redis_cluster.port_of_slot(slot)
    replica = redis_cluster.add_replica(tmp_path / "replica", master_port)
    (tmp_path / "a").mkdir()
    gw = Cluster(redis_cluster.url, tmp_path / "a", shard="a", key_prefix=key_prefix)
    try:
        gw.start_gateway()
        gw.start_agent("agent-a")
        client = gw.client()
        first = [client.submit_by_name("cluster_tasks:record", (str(effects), f"k{i}", 0.01))
                 for i in range(100)]
        wait_until(lambda: sum(effects.counts().values()) >= 20, 30, "work under way")
        redis_cluster.fail_over(replica)
        promoted = redis.Redis(port=replica.port)
        then = [client.submit_by_name("cluster_tasks:record", (str(effects), f"m{i}", 0.0))
                for i in range(100)]
        assert [t.get(timeout=60) for t in first] == [f"k{i}" for i in range(100)]
        assert [t.get(timeout=60) for t in then] == [f"m{i}" for i in range(100)]
        assert effects.twice() == {}, "no call ran twice"
        counts = promoted.hgetall(shard_prefix(key_prefix, "a") + "counts")
        assert int(counts[b"completed"]) == 200, "the shard's bookkeeping is on the new master"
        promoted.close()
        assert "is served by" in gw.log("gateway") and f":{replica.port} now" in \
            gw.log("gateway"), "the gateway said where it followed the slot"
    finally:
        gw.stop()


def test_a_header_cannot_make_a_gateway_serve_a_shard_that_does_not_exist(
        redis_url: str, tmp_path: Path) -> None:
    """Naming a shard no gateway ever served is refused (BadRequest), not adopted: a client
    must not make a gateway create shards by naming them."""
    cluster = Cluster(redis_url, tmp_path, shard="a")
    try:
        cluster.start_gateway()
        client = ClusterClient(ClientConfig(address=cluster.address, token=TOKEN,
                                            shard="made-up"))
        with pytest.raises(BadRequest, match="ever served shard"):
            client.status()
        client.close()
        assert "adopted" not in cluster.log("gateway")
    finally:
        cluster.stop()
