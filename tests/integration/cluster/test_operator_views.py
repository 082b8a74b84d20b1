"""The operator's side of the contract, for real: token detail, the cluster-wide Guard House
and quarantine (re-enable, replay and drop forwarded to the agent that holds the call), the
per-second series, the audit log, and the operator token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, Cluster, wait_until
from tokengate.shared.errors import BadRequest, PermissionDenied, UnknownToken

GUARDED = {"TOKENGATE_AUTO_BLOCK": "1", "TOKENGATE_MIN_ATTEMPTS": "4",
           "TOKENGATE_FAILURE_THRESHOLD": "0.5", "TOKENGATE_SPIKE_DETECTION": "1",
           "TOKENGATE_SPIKE_WARMUP": "5", "TOKENGATE_SPIKE_THRESHOLD": "2.0"}


@pytest.fixture
def guarded(redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    """Agents with auto-block and spike detection on, and the guard test tasks."""
    cluster = Cluster(redis_url, tmp_path, agent_options=(
        "--include", "guard_tasks", "--path", str(ROOT / "tests" / "integration")))
    cluster.env.update(GUARDED)
    try:
        cluster.start_gateway()
        for name in ("a1", "a2"):  # each host keeps its own quarantine
            cluster.env["TOKENGATE_QUARANTINE_DIR"] = str(tmp_path / f"quarantine-{name}")
            cluster.start_agent(name, wait=False)
        cluster.wait_nodes(lambda n: n.get("a1") == "UP" and n.get("a2") == "UP", "agents up")
        yield cluster
    finally:
        cluster.stop()


def test_token_detail_shows_states_times_place_and_error(shared_cluster):
    client = shared_cluster.client()
    done = client.submit_by_name("cluster_tasks:add", (20, 22))
    assert done.get(timeout=15) == 42
    detail = client.token_detail(done.token_id)
    states = [t.state for t in detail.times]
    assert states[0] == "waiting" and states[-1] == "completed" and "executing" in states
    assert [t.at for t in detail.times] == sorted(t.at for t in detail.times)
    assert detail.node in ("a1", "a2") and detail.core >= 1 and detail.worker
    failed = client.submit_by_name("cluster_tasks:boom", ("no luck",))
    with pytest.raises(ValueError):
        failed.get(timeout=15)
    detail = client.token_detail(failed.token_id)
    assert detail.state == "failed" and detail.error_type == "ValueError"
    assert "no luck" in detail.error_message and "Traceback" in detail.traceback
    assert detail.args_summary == "(str[7])", "a shape, never the arguments themselves"
    with pytest.raises(UnknownToken):
        client.token_detail("no-such-token")


def test_series_and_audit_follow_the_cluster(shared_cluster):
    client = shared_cluster.client()
    tokens = [client.submit_by_name("cluster_tasks:noop") for _ in range(50)]
    for token in tokens:
        token.get(timeout=15)
    # a second is listed once it is over: the 50 may straddle two, so wait for their sum
    points = wait_until(lambda: [p for p in client.series(60).points if p.completed]
                        if sum(p.completed for p in client.series(60).points) >= 50 else None,
                        timeout=5, what="the seconds with the 50 completions")
    assert sum(p.completed for p in points) >= 50
    assert all(0 < p.p50 <= p.p95 for p in points)
    client.drain(reason="audit me", actor="tester")
    client.resume(actor="tester")
    entries = [(e.actor, e.action, e.target, e.ok) for e in client.audit(10).entries]
    assert entries[-2:] == [("tester", "drain", "cluster", True),
                            ("tester", "resume", "cluster", True)]


def test_a_quarantined_call_is_listed_replayed_on_its_node_and_dropped(guarded):
    client = guarded.client()
    for i in range(12):  # spread over both agents (ties in credit rotate): 6 each, past warm-up
        client.submit_by_name("guard_tasks:checksum", (b"x" * 10,), {"salt": i}).get(timeout=15)
    spike = client.submit_by_name("guard_tasks:checksum", (b"y" * 200_000,), {"salt": 7})
    with pytest.raises(Exception, match="quarantined"):
        spike.get(timeout=15)
    listed = wait_until(lambda: client.guards().quarantine, timeout=10,
                        what="the quarantined call listed")
    (call,) = listed
    assert call.task == "guard_tasks:checksum" and call.replayable and call.node in ("a1", "a2")
    assert "bytes[200000]" in call.args_summary and call.deviation > 0
    reply = client.quarantine(call.id, "replay", actor="tester")
    assert reply.ok and "completed" in reply.message and call.node in reply.message
    wait_until(lambda: not client.guards().quarantine, timeout=10,
               what="the replayed call dropped")
    with pytest.raises(BadRequest, match="no connected agent lists"):
        client.quarantine(call.id, "drop")  # already gone
    assert client.quarantine(call.id, "drop", node=call.node).ok is False
    assert [e.action for e in client.audit(5).entries][-2:] == ["quarantine_replay",
                                                                "quarantine_drop"]


def test_controls_need_the_operator_token_when_the_gateway_has_one(make_cluster, tmp_path):
    secret = tmp_path / "operator"
    secret.write_text("operator-secret-0123456789")
    cluster = make_cluster(gateway_options=("--operator-token-file", str(secret)))
    plain = cluster.client()
    with pytest.raises(PermissionDenied):
        plain.drain(reason="not allowed")
    assert plain.status().state == "RUNNING", "views need no operator rights"
    operator = cluster.client(token="operator-secret-0123456789")
    assert "draining" in operator.drain(reason="allowed")
    assert operator.status().state in ("DRAINING", "DRAINED")
    with pytest.raises(PermissionDenied):
        plain.resume()
    assert plain.status().state in ("DRAINING", "DRAINED"), "the refused resume changed nothing"
    assert operator.resume() == "cluster resumed"
    assert plain.status().state == "RUNNING"
    with pytest.raises(PermissionDenied):  # every client's token ids: an operator's read
        plain.history()
    assert [(n.node, n.answered) for n in operator.history().nodes] == [("a1", True),
                                                                        ("a2", True)]
