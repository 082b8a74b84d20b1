"""Defects 11 and 12 (issue 8): what the gateway must refuse, and what it must keep doing.

11. A second gateway on the same Redis and prefix refuses to start (exit 2, "another
    gateway"); the first keeps delivering every result; after a SIGKILL of the only gateway
    a new one starts within a few seconds.
12. Free text is bounded (a 22 MiB drain reason is refused, Status keeps working); Ping,
    Status and agents get through when client sessions hold every gRPC worker; a plaintext
    client against a TLS gateway is told TLS is the likely cause; an agent whose token is
    refused exits with code 2 and says why.
"""

from __future__ import annotations

import signal
import time

import grpc
import pytest
from _faults2 import (
    TASKS,
    TOKEN,
    RawSession,
    Runs,
    f2_clusters,
    inflight_ids,
    make_certificate,
    metadata,
    results,
    task_item,
    wait_exit,
    wait_until,
)
from tokengate.gateway.config import GatewayConfig
from tokengate.gateway.server import create_server, stop_server
from tokengate.shared.channel import CHANNEL_OPTIONS, TlsConfig
from tokengate.shared.client import ClusterClient, open_client
from tokengate.shared.client_config import ClientConfig
from tokengate.shared.errors import GatewayBusy, GatewayUnavailable
from tokengate.shared.redis_server import free_port
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.rpc import tokengate_pb2_grpc as rpc

from tokengate.cli_up import role_command


@pytest.fixture
def f2_cluster(redis_url, tmp_path):
    yield from f2_clusters(redis_url, tmp_path)


SECOND_GATEWAY_EXIT = 15.0  # it may wait a few seconds for the lease before giving up
RESTART_WITHIN = 8.0  # the contract says ~5 s after a SIGKILL; slack for a loaded 2-core host

# -- defect 11: two gateways on one Redis -----------------------------------------------------


def _ping_within(address: str, seconds: float) -> float:
    """Seconds until a gateway at ``address`` answers Ping (GatewayUnavailable past them)."""
    start = time.monotonic()
    client = ClusterClient(ClientConfig(address=address, token=TOKEN))  # no session opened
    try:
        client.ping(timeout=seconds)
    finally:
        client.close()
    return time.monotonic() - start


def test_second_gateway_on_the_same_prefix_refuses_and_the_first_keeps_serving(
        f2_cluster, tmp_path):
    cluster = f2_cluster({"a1": ("--cores", "2", "--mailbox-capacity", "5")})
    runs = Runs(tmp_path, "two")
    client = cluster.client()
    # 400 held calls: a1 takes ~24, the rest wait in Redis, where a second gateway that
    # runs would claim them for an agent of its own, as in the issue: their results then
    # reach no client of the first.
    tokens = [client.submit_by_name(f"{TASKS}:gated_light", runs.args(i)) for i in range(400)]
    second_address = f"127.0.0.1:{free_port()}"
    second = cluster.spawn("gateway2", cluster.gateway_command(second_address))
    cluster.spawn("a2", role_command("agent", "--gateway", second_address, "--name", "a2",
                                     "--include", TASKS, "--cores", "2", verbose=True))
    store = cluster.redis()
    try:
        wait_until(lambda: second.poll() is not None
                   or inflight_ids(store, cluster.prefix, "a2"),
                   timeout=SECOND_GATEWAY_EXIT, what="the second gateway to exit (or claim)")
    finally:
        runs.open_gate()
    deadline = time.monotonic() + 10  # 400 calls take about a second on one agent
    for token in tokens:  # what counts is what arrived by the deadline
        token.wait(max(0.0, deadline - time.monotonic()))
    delivered = sum(t.done() for t in tokens)
    code = wait_exit(second, 1.0)
    assert code == 2, (f"the second gateway is still running (exit {code}); of 400 results "
                       f"through the first, {delivered} were delivered")
    assert "another gateway" in cluster.log("gateway2").lower()
    assert delivered == 400, "the first gateway delivers every result"
    assert [t.get(timeout=1) for t in tokens] == list(range(400))
    counts = runs.counts()
    assert len(counts) == 400 and set(counts.values()) == {1}, "each ran exactly once"


def test_gateway_restarts_quickly_after_a_sigkill(f2_cluster):
    cluster = f2_cluster()
    cluster.kill(cluster.gateway, signal.SIGKILL)
    cluster.gateway = cluster.spawn("gateway-restarted", cluster.gateway_command(cluster.address))
    took = _ping_within(cluster.address, RESTART_WITHIN)
    assert cluster.gateway.poll() is None, cluster.log("gateway-restarted")[-2000:]
    assert took < RESTART_WITHIN
    cluster.wait_nodes(lambda nodes: nodes.get("a1") == "UP", "a1 back on the new gateway")


# -- defect 12: bounds and room -----------------------------------------------------------------


def _raw_stub(address: str) -> tuple[grpc.Channel, rpc.GatewayStub]:
    channel = grpc.insecure_channel(address, options=[
        *[(k, v) for k, v in CHANNEL_OPTIONS if k != "grpc.max_send_message_length"],
        ("grpc.max_send_message_length", 128 * 2**20)])
    return channel, rpc.GatewayStub(channel)


@pytest.mark.parametrize("reason_chars", [22 * 2**20, 600])
def test_oversized_drain_reason_is_refused_and_status_keeps_working(f2_cluster, reason_chars):
    # Two agents: each node's status repeats a drain's reason, so 22 MiB became 66 MiB, past
    # every client's 64 MiB limit, and Status failed for everyone until a resume.
    cluster = f2_cluster({"a1": ("--cores", "2"), "a2": ("--cores", "2")})
    channel, stub = _raw_stub(cluster.address)
    try:
        with pytest.raises(grpc.RpcError) as refused:
            stub.Drain(pb.DrainRequest(reason="r" * reason_chars), metadata=metadata(),
                       timeout=30)
        status = cluster.status()  # through the Python client, as the CLI reads it
    finally:
        stub.Resume(pb.DrainRequest(), metadata=metadata(), timeout=10)
        channel.close()
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith("BadRequest")
    assert status["state"] == "RUNNING" and status["reason"] == "", "nothing changed"
    assert {n["reason"] for n in status["nodes"]} == {""}


def test_drain_reason_and_actor_at_their_limits(f2_cluster):
    cluster = f2_cluster()
    channel, stub = _raw_stub(cluster.address)
    try:
        stub.Drain(pb.DrainRequest(reason="r" * 512, actor="a" * 128), metadata=metadata(),
                   timeout=10)
        assert stub.Status(pb.StatusRequest(), metadata=metadata(), timeout=10).reason == \
            "r" * 512
        stub.Resume(pb.DrainRequest(), metadata=metadata(), timeout=10)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Drain(pb.DrainRequest(reason="ok", actor="a" * 129), metadata=metadata(),
                       timeout=10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert stub.Status(pb.StatusRequest(), metadata=metadata(), timeout=10).state == \
            "RUNNING"
    finally:
        stub.Resume(pb.DrainRequest(), metadata=metadata(), timeout=10)
        channel.close()


def test_past_max_sessions_a_session_is_refused_and_controls_and_agents_still_get_in(
        f2_cluster):
    limit = 6
    cluster = f2_cluster(gateway_options=("--max-sessions", str(limit)))
    sessions: list[RawSession] = []
    try:
        for i in range(limit + 1):  # sessions, each served, until the gateway refuses one
            session = RawSession(cluster.address, client_id=f"holder{i}")
            sessions.append(session)
            session.send(pb.ClientFrame(submit=[task_item("noop", ())]))
            got = session.collect(lambda got: len(results(got)) >= 1, timeout=5)
            if session.error is not None:
                break
            assert results(got), f"session {i} was neither served nor refused in 5 s"
        assert len(sessions) == limit + 1, f"refused at {len(sessions)}, before the limit"
        refused = sessions[-1].error
        assert refused is not None, f"took {limit + 1} sessions at --max-sessions {limit}"
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused
        assert refused.details().startswith("GatewayBusy"), refused.details()
        assert f"at most {limit} sessions" in refused.details(), refused.details()
        admin = cluster.client(connect=False)
        start = time.monotonic()
        assert admin.ping(timeout=5).version, "Ping answers"
        assert admin.status().state == "RUNNING", "Status answers"
        assert time.monotonic() - start < 5
        with pytest.raises(GatewayBusy, match=f"at most {limit} sessions"):
            cluster.client()  # the Python client says so at connect(), instead of waiting
        cluster.add_agent("late", "--cores", "2", wait=False)
        cluster.wait_nodes(lambda nodes: nodes.get("late") == "UP", "a new agent registers",
                           timeout=15)
        holder = sessions[0]  # a session already open still submits and gets its result
        holder.send(pb.ClientFrame(submit=[task_item("noop", ())]))
        got = holder.collect(lambda got: len(results(got)) >= 1, timeout=10)
        assert len(results(got)) == 1, "an open session is served at the limit"
    finally:
        for session in sessions:
            session.close()


def test_plaintext_client_against_tls_gateway_is_told_tls(redis_url, tmp_path):
    cert, key = make_certificate(tmp_path)
    config = GatewayConfig(listen="127.0.0.1:0", redis_url=redis_url, token=TOKEN,
                           key_prefix=f"tg-f2tls-{free_port()}:",
                           tls=TlsConfig(cert=str(cert), key=str(key)))
    server, port, gateway = create_server(config)
    try:
        start = time.monotonic()
        with pytest.raises(GatewayUnavailable) as refused:
            open_client(f"127.0.0.1:{port}", token=config.token, connect_timeout=3.0)
        took = time.monotonic() - start
    finally:
        stop_server(server, gateway)
    assert "tls" in str(refused.value).lower(), f"no hint of TLS in: {refused.value}"
    assert took < 3.0 + 1.5, "within the connect timeout"


def test_agent_with_a_wrong_token_exits_with_code_2(f2_cluster):
    cluster = f2_cluster({})
    env = dict(cluster.env, TOKENGATE_TOKEN="not-the-cluster-token-0000")
    agent = cluster.spawn("intruder", role_command(
        "agent", "--gateway", cluster.address, "--name", "intruder", "--include", TASKS),
        env=env)
    code = wait_exit(agent, 10.0)
    output = cluster.log("intruder")
    assert code == 2, f"the agent still retries after 10 s (exit {code}): {output[-500:]}"
    assert "token" in output.lower(), output[-2000:]
    assert "intruder" not in {n["name"] for n in cluster.status()["nodes"]}

