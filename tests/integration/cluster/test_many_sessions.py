"""A thousand clients on one gateway (issue 14, item 2), with real processes.

(a) A gateway with default settings serves 1,000 concurrent client sessions opened from four
    processes (``benchmarks.sessions_bench.SessionFleet``: each session a ``ClusterClient`` of
    its own, with its own channel, TCP connection and ``Session`` stream). Every session gets
    its own call's result (``add(session, seq)`` comes back as their sum), and while they are
    open and calling now and then, a probe client's calls complete and Ping and Status answer.
(b) A gateway started with ``--max-sessions 20`` holds twenty sessions and refuses the 21st
    with ``GatewayBusy`` naming the limit; at the limit Ping, Status and the controls answer,
    and a new agent joins and runs a call submitted on a session that was already open.
"""

from __future__ import annotations

import re
import time
import uuid

import grpc
import pytest
from conftest import TOKEN, Cluster
from faultkit import RawSession, call
from tokengate.shared import codec
from tokengate.shared.errors import GatewayBusy
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.wire_errors import error_from_rpc

from benchmarks.sessions_bench import SessionFleet

SESSIONS = 1000
PROCESSES = 4
LIMIT = 20
ADD = "cluster_tasks:add"


def _value(result: pb.ResultItem) -> object:
    assert result.state == pb.COMPLETED, (result.error_type, result.error_message)
    return codec.decode_result(result.payload, result.codec, allow_pickle=False)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_default_gateway_serves_a_thousand_sessions(make_cluster, tmp_path):
    cluster: Cluster = make_cluster()
    probe = cluster.client()
    fleet = SessionFleet(cluster.address, token=TOKEN, sessions=SESSIONS, processes=PROCESSES,
                         task=ADD, check="add", period=(2.0, 4.0), open_timeout=180.0,
                         env=cluster.env, logdir=tmp_path)
    with fleet:
        opened = fleet.wait_open()
        assert opened.sessions == SESSIONS and not opened.errors, (
            f"{opened.sessions} of {SESSIONS} sessions had their own call answered; errors: "
            f"{opened.errors}")
        # every session open, each calling every 2-4 s: the probe, Ping and Status get through
        for i in range(20):
            assert probe.submit_by_name(ADD, (i, 1000)).get(timeout=60) == i + 1000
        assert probe.ping(timeout=30).version, "Ping answers"
        status = probe.status()
        assert status.state == "RUNNING", "Status answers"
        assert {node.name for node in status.nodes} >= {"a1", "a2"}
        done = fleet.stop()
    assert not done.errors, f"the sessions saw errors: {done.errors}"
    assert done.total("sessions_ok") == SESSIONS
    assert done.total("answered") == done.total("submitted") >= SESSIONS


def _hold(cluster: Cluster, n: int) -> list[RawSession]:
    """``n`` sessions, each open and served: its own call answered with its own result."""
    sessions = [cluster.raw_session(f"holder{i}-{uuid.uuid4().hex[:6]}") for i in range(n)]
    ids = [f"hold-{i}-{uuid.uuid4().hex}" for i in range(n)]
    for i, (session, token_id) in enumerate(zip(sessions, ids, strict=True)):
        session.submit([call(token_id, ADD, i, 1)])
    for i, (session, token_id) in enumerate(zip(sessions, ids, strict=True)):
        session.wait_results([token_id], timeout=30)
        assert _value(session.results[token_id][-1]) == i + 1, f"session {i}'s own result"
    return sessions


@pytest.mark.timeout(180)
def test_past_max_sessions_a_session_is_refused_and_the_rest_still_answers(make_cluster):
    cluster: Cluster = make_cluster(gateway_options=("--max-sessions", str(LIMIT)))
    sessions = _hold(cluster, LIMIT)

    extra = cluster.raw_session("one-too-many")
    extra.submit([call(f"extra-{uuid.uuid4().hex}", ADD, 1, 2)])
    extra.wait_ended(timeout=30)
    assert isinstance(extra.error, grpc.RpcError), f"the 21st session: {extra.summary()}"
    refusal = error_from_rpc(extra.error, "session")
    assert isinstance(refusal, GatewayBusy), f"{extra.error.code()} {extra.error.details()}"
    assert re.search(rf"\b{LIMIT}\b", str(refusal)), f"names the limit: {refusal}"
    assert not extra.results, "the refused session ran nothing"

    admin = cluster.client(connect=False)  # unary calls only: no session of its own
    start = time.monotonic()
    assert admin.ping(timeout=10).version, "Ping answers at the limit"
    assert admin.status().state == "RUNNING", "Status answers at the limit"
    assert time.monotonic() - start < 10
    try:
        for node in ("a1", "a2"):  # controls answer too; the newcomer is the one left to run
            admin.drain(node=node, reason="only the late agent runs")
        cluster.start_agent("late")  # joins at the limit
        token_id = f"late-{uuid.uuid4().hex}"
        sessions[0].submit([call(token_id, "cluster_tasks:where", 7)])
        sessions[0].wait_results([token_id], timeout=30)
        result = sessions[0].results[token_id][-1]
        assert _value(result)["tag"] == 7
        assert result.node == "late", f"ran on {result.node}"
    finally:
        for node in ("a1", "a2"):
            admin.resume(node=node)
    for i, session in enumerate(sessions):  # every held session is still served
        token_id = f"again-{i}-{uuid.uuid4().hex}"
        session.submit([call(token_id, ADD, i, 2)])
        session.wait_results([token_id], timeout=30)
        assert _value(session.results[token_id][-1]) == i + 2
