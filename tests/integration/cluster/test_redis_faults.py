"""Redis restarts, outages and stalls under load: the gateway comes back with Redis, a short
outage delays calls instead of failing them, and a stall is not taken for a dead agent.

Real processes: a redis-server on its append-only file as ``tokengate up`` runs it, a gateway
and two agents; runs are counted by their side effect on disk, outcomes by what the gateway
pushed to the client (before the client's own bookkeeping could hide a second one).
"""

from __future__ import annotations

import msgpack
import pytest
from conftest import HEARTBEAT_TIMEOUT, TOKEN, Cluster, wait_until
from faultkit import DurableRedis, SideEffects, SteadyLoad, WireAgent, call
from tokengate.shared.client import ClusterClient
from tokengate.shared.client_config import ClientConfig
from tokengate.shared.errors import RedisUnavailable
from tokengate.shared.rpc import tokengate_pb2 as pb

pytestmark = pytest.mark.slow


@pytest.fixture
def durable_redis(tmp_path):
    server = DurableRedis(tmp_path / "redis").start()
    yield server
    if server.process is not None:
        server.thaw()  # a test that failed while it was frozen
    server.stop()


def _settle(cluster: Cluster, load: SteadyLoad, tokens: dict, timeout: float = 60.0) -> None:
    """Every call completed with its own key, was told once and ran exactly once."""
    results = {key: token.get(timeout=timeout) for key, token in tokens.items()}
    assert results == {key: key for key in tokens}
    told = load.client.outcomes()
    twice = {key: told.get(t.token_id) for key, t in tokens.items()
             if len(told.get(t.token_id, [])) != 1}
    assert not twice, f"told other than once: {dict(list(twice.items())[:5])}"
    runs = load.effects.counts()
    assert set(runs) == set(tokens)
    assert not load.effects.twice(), f"ran twice: {load.effects.twice()}"
    _, orphans, sample = cluster.redis.orphans()
    assert orphans == 0, sample


def test_a_gateway_serves_more_sessions_in_its_life_than_a_redis_pool_holds(shared_cluster):
    """Each client session is served by a thread of its own, and each such thread took a
    Redis connection that the pool never counted back: the hundredth session in a gateway's
    life, and every one after it, was refused with "Too many connections"."""
    for i in range(150):
        client = ClusterClient(ClientConfig(address=shared_cluster.address, token=TOKEN))
        try:
            client.connect()
            assert client.submit_by_name("cluster_tasks:add", (i, 1)).get(timeout=20) == i + 1
        finally:
            client.close()
    assert "Too many connections" not in shared_cluster.log("gateway")


def test_redis_restarts_under_load_lose_nothing_and_the_open_session_keeps_working(
        make_cluster, durable_redis, effects: SideEffects):
    """SIGKILL and restart Redis three times under a steady load from one open session: the
    gateway keeps serving that session, calls refused while Redis was away are offered again
    by the client (not failed), and every call completes once, told once."""
    cluster = make_cluster(("a1", "a2"), redis=durable_redis.url)
    load = SteadyLoad(cluster.client(recording=True), effects, rate=150).start()
    try:
        for _ in range(3):
            load.wait_submitted(300)
            durable_redis.crash_and_restart()
        load.wait_submitted(300)
    finally:
        tokens = load.stop()
    assert not load.errors
    _settle(cluster, load, tokens)
    log = cluster.log("gateway")
    assert "Too many connections" not in log
    assert "declared lost" not in log, "a Redis restart is not an agent loss"
    assert cluster.gateway.poll() is None


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_a_redis_outage_fails_calls_only_after_the_clients_submit_timeout(make_cluster,
                                                                         durable_redis, how):
    """Redis away (crashed, or shut down cleanly: either way the gateway's connections to it
    are closed): a call is offered again until submit_timeout, then fails with
    RedisUnavailable saying so; the gateway keeps running and serves again once Redis is
    back."""
    cluster = make_cluster(("a1",), redis=durable_redis.url)
    client = cluster.client(submit_timeout=2.0)
    assert client.submit_by_name("cluster_tasks:add", (1, 1)).get(timeout=20) == 2
    if how == "SIGKILL":
        durable_redis.crash()
    else:
        durable_redis.stop()
    refused = client.submit_by_name("cluster_tasks:add", (2, 2))
    with pytest.raises(RedisUnavailable, match="offered again for 2s"):
        refused.get(timeout=30)
    assert cluster.gateway.poll() is None
    durable_redis.restart()
    assert client.submit_by_name("cluster_tasks:add", (3, 3)).get(timeout=30) == 6


def test_a_short_redis_outage_delays_calls_instead_of_failing_them(make_cluster,
                                                                   durable_redis,
                                                                   effects: SideEffects):
    """Redis down for about two seconds under load (stopped, then started again on its
    AOF): every call made meanwhile completes."""
    cluster = make_cluster(("a1", "a2"), redis=durable_redis.url)
    load = SteadyLoad(cluster.client(recording=True), effects, rate=150).start()
    try:
        load.wait_submitted(300)
        durable_redis.crash()
        load.wait_submitted(300)  # about two seconds of calls while Redis is away
        durable_redis.restart()
        load.wait_submitted(300)
    finally:
        tokens = load.stop()
    assert not load.errors
    _settle(cluster, load, tokens)


def test_a_redis_stall_is_not_taken_for_a_dead_agent(make_cluster, durable_redis,
                                                     effects: SideEffects):
    """SIGSTOP redis-server for twice the heartbeat timeout while calls run and wait, then
    SIGCONT: the agents' links stayed up, so none is declared lost, nothing runs twice and
    every outcome is told once. (The calls take 50 ms, so both agents have outcomes on their
    way when Redis stops: their links' readers wait on it, and read no heartbeat meanwhile.)"""
    cluster = make_cluster(("a1", "a2"), redis=durable_redis.url)
    load = SteadyLoad(cluster.client(recording=True), effects, rate=150, seconds=0.05).start()
    try:
        load.wait_submitted(300)
        durable_redis.freeze()
        load.wait_submitted(int(150 * HEARTBEAT_TIMEOUT * 2))  # calls pile up meanwhile
        durable_redis.thaw()
        wait_until(lambda: cluster.status()["nodes"], what="the gateway answering status")
        load.wait_submitted(300)
    finally:
        tokens = load.stop()
    assert not load.errors
    _settle(cluster, load, tokens)
    assert "declared lost" not in cluster.log("gateway")


def test_a_results_frame_resent_on_a_new_stream_is_not_pushed_twice(make_cluster):
    """An agent resends every results frame not acked when its link drops, and the gateway
    may have stored (and pushed) one whose ack was lost with the link. Told by hand on the
    wire: the resent frame is acked, and its outcome is not pushed to the client again."""
    cluster = make_cluster(())
    agent = WireAgent(cluster.address, TOKEN, "w1", ["cluster_tasks:add"]).connect()
    try:
        cluster.wait_nodes(lambda nodes: nodes.get("w1") == "UP", "wire agent up")
        session = cluster.raw_session()  # never sends receipts: the token stays in Redis
        session.submit([call("t-1", "cluster_tasks:add", 1, 2)])
        (item,) = agent.wait_tasks(1)
        outcome = pb.ResultItem(token_id=item.token_id, state=pb.COMPLETED, attempt=item.attempt,
                                payload=msgpack.packb(3), node="w1", session=item.session)
        agent.send(pb.AgentFrame(seq=1, results=[outcome]))
        agent.wait_ack(1)
        session.wait_results(["t-1"])
        agent.connect(held=["t-1"])  # the same process, a new stream: it resends the frame
        agent.send(pb.AgentFrame(seq=1, results=[outcome]))
        agent.wait_ack(1)
        session.watch(["t-2-unknown"])  # a later reply on the same stream: a sync point
        session.wait(lambda: bool(session.rejected.get("t-2-unknown")), 15, "the watch answer")
        assert [r.state for r in session.outcomes()["t-1"]] == [pb.COMPLETED]
        assert cluster.redis.state("t-1") == "completed"
    finally:
        agent.close()
